"""Entrypoints: the HTTP API, the CLI, the worker. They call services, never adapters."""
