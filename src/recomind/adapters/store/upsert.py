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
    if dialect == "postgresql" and _unnestable(table, rows[0]):
        action = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        conflict = f"ON CONFLICT ({', '.join(keys)}) DO " + (
            f"UPDATE SET {action}" if columns else "NOTHING"
        )
        unnest_insert(conn, table, rows, conflict)
        return
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


def insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], ignore: bool = False
) -> None:
    """Insert rows (skipping existing keys when `ignore`): one statement on PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and _unnestable(table, rows[0]):
        unnest_insert(conn, table, rows, "ON CONFLICT DO NOTHING" if ignore else "")
        return
    conn.execute(insert_ignore(conn, table) if ignore else table.insert(), list(rows))


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


# PostgreSQL array type per column type, for the one-statement `unnest` insert.
_PG_ARRAYS = {
    sa.String: "text[]",
    sa.Text: "text[]",
    sa.Float: "float8[]",
    sa.Integer: "int8[]",
    sa.DateTime: "timestamptz[]",
}


def _pg_array(column: sa.Column[Any]) -> str | None:
    for kind, name in _PG_ARRAYS.items():
        if isinstance(column.type, kind):
            return name
    return None


def _unnestable(table: sa.Table, row: dict[str, Any]) -> bool:
    """Every column is a scalar that unnest can carry (not an array or JSON column)."""
    return all(_pg_array(table.c[c]) is not None for c in row)


def unnest_insert(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], tail: str
) -> list[Any]:
    """PostgreSQL: all rows in one statement, one array per column (`INSERT … SELECT FROM
    unnest(…)`), instead of one statement per row. `tail` is the ON CONFLICT clause, if any,
    and may end in RETURNING, whose first column comes back."""
    cols = list(rows[0])
    params = {f"p{i}": [r[c] for r in rows] for i, c in enumerate(cols)}
    arrays = ", ".join(f"CAST(:p{i} AS {_pg_array(table.c[c])})" for i, c in enumerate(cols))
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({arrays}) {tail}"
    result = conn.execute(sa.text(sql), params)
    return list(result.scalars()) if result.returns_rows else []
