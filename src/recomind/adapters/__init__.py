"""Adapters: one module per backend, each opened from a URL by its scheme."""
