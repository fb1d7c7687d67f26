"""Insert-or-update and insert-or-ignore, spelt the way each SQL dialect wants.

PostgreSQL and MariaDB/MySQL write a whole batch in one statement (or a few) through
`pg_bulk` and `mysql_bulk`; SQLite goes through SQLAlchemy's executemany, which is already a
prepared statement run in-process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from recomind.adapters.store import mysql_bulk, pg_bulk

MYSQL = ("mysql", "mariadb")


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
    if dialect == "postgresql" and pg_bulk.unnestable(table, list(rows[0])):
        action = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        conflict = f"ON CONFLICT ({', '.join(keys)}) DO " + (
            f"UPDATE SET {action}" if columns else "NOTHING"
        )
        pg_bulk.unnest_insert(conn, table, rows, conflict)
        return
    if dialect in MYSQL:
        mysql_bulk.insert_values(conn, table, rows, tail=mysql_bulk.upsert_tail(columns, keys))
        return
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
        )
    else:
        raise NotImplementedError(f"upsert on {dialect}")
    conn.execute(stmt, list(rows))


def insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], ignore: bool = False
) -> None:
    """Insert rows (skipping existing keys when `ignore`)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql" and pg_bulk.unnestable(table, list(rows[0])):
        pg_bulk.unnest_insert(conn, table, rows, "ON CONFLICT DO NOTHING" if ignore else "")
        return
    if dialect in MYSQL:
        mysql_bulk.insert_values(conn, table, rows, verb="INSERT IGNORE" if ignore else "INSERT")
        return
    conn.execute(insert_ignore(conn, table) if ignore else table.insert(), list(rows))


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that skips rows whose key already exists."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect in MYSQL:
        return table.insert().prefix_with("IGNORE")
    raise NotImplementedError(f"insert_ignore on {dialect}")
