"""Insert-or-update and insert-or-ignore, spelt the way each SQL dialect wants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert rows; where a key exists, overwrite the `update` columns (default: all others)."""
    if not rows:
        return
    columns = update if update is not None else [c for c in rows[0] if c not in keys]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
        )
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
    else:
        raise NotImplementedError(f"upsert on {dialect}")
    conn.execute(stmt, list(rows))


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that skips rows whose key already exists."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect in ("mysql", "mariadb"):
        return table.insert().prefix_with("IGNORE")
    raise NotImplementedError(f"insert_ignore on {dialect}")
