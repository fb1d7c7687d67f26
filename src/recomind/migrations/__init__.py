"""Alembic migrations of the store schema; run by the store adapter at open."""
