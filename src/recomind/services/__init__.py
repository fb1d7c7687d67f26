"""Use cases: ingest, consume, train, serve, evaluate. They orchestrate the ports."""
