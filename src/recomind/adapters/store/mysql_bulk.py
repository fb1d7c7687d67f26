"""MariaDB / MySQL: many rows per statement, rendered as SQL literals once per row.

PyMySQL has no server-side prepared statements: it formats every parameter into the statement
text on the client anyway, through a generic escaper that looks up each value's type. Here the
renderer of each column is chosen once from the table's column types, the rows are joined into
multi-row `INSERT … VALUES (…), (…)` statements of up to about a megabyte, and id lists become
literal `IN (…)` lists. That keeps one statement per table and batch, as on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC
from typing import IO, Any, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from pymysql.constants import SERVER_STATUS  # type: ignore[import-untyped]
from pymysql.converters import escape_string  # type: ignore[import-untyped]
from pymysql.err import (  # type: ignore[import-untyped]
    DataError,
    IntegrityError,
    InternalError,
    NotSupportedError,
    OperationalError,
)
from sqlalchemy.engine import Connection

from recomind.domain.event_columns import COLUMNS, in_key_order, utc_text
from recomind.domain.ports import BulkActions

# Bytes of row text per statement: well under max_allowed_packet (16 MiB on MariaDB, 64 MiB on
# MySQL 8 by default), and large enough that a batch of thousands of rows is a few statements.
MAX_STATEMENT = 1 << 20
# Ids per literal IN (…) list, and keys of several columns per `(…) IN ((…), …)` list. MariaDB
# 10.11 reads each listed key as a range of the primary key: in a table of 300,000 rows, 400 to
# 2,000 keys of two columns each took one key read per key and no reads of next rows. But at
# 5,000 keys it chose to scan a 20,000-row table's index whole instead.
IN_CHUNK = 5000
ROW_CHUNK = 1000

# MariaDB/MySQL's error code for a duplicate key.
_DUPLICATE_KEY = 1062

Render = Callable[[Any], str]
T = TypeVar("T")


def dbapi(conn: Connection) -> Any:
    """The PyMySQL connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.dbapi_connection


def escaper(conn: Connection) -> Callable[[str], str]:
    """How this session escapes text inside single quotes (NO_BACKSLASH_ESCAPES or not)."""
    if dbapi(conn).server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return lambda s: s.replace("'", "''")
    return escape_string


def quote(name: str) -> str:
    return f"`{name}`"


def _renderer(column_type: sa.types.TypeEngine[Any], escape: Callable[[str], str]) -> Render:
    def text(v: Any) -> str:
        return "NULL" if v is None else f"'{escape(v)}'"

    def integer(v: Any) -> str:
        return "NULL" if v is None else str(int(v))

    def real(v: Any) -> str:
        if v is None:
            return "NULL"
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"cannot store {f} in a MariaDB/MySQL column")
        return repr(f)

    def timestamp(v: Any) -> str:
        if v is None:
            return "NULL"
        if v.tzinfo is not None:  # stored as UTC wall-clock time, read back as UTC
            v = v.astimezone(UTC).replace(tzinfo=None)
        return f"'{v.isoformat(' ', 'microseconds')}'"

    def document(v: Any) -> str:
        return "NULL" if v is None else f"'{escape(json.dumps(v))}'"

    # JSON first: its with_variant wrapper is not a String.
    if isinstance(column_type, sa.JSON):
        return document
    if isinstance(column_type, sa.DateTime):
        return timestamp
    if isinstance(column_type, sa.Float):
        return real
    if isinstance(column_type, sa.Integer):
        return integer
    if isinstance(column_type, sa.String):
        return text
    raise NotImplementedError(f"no MariaDB/MySQL literal for {column_type!r}")


def renderers(conn: Connection, table: sa.Table, columns: Sequence[str]) -> list[Render]:
    escape = escaper(conn)
    return [_renderer(table.c[c].type, escape) for c in columns]


def _statements(
    head: str, rows: Iterable[tuple[T, str]], tail: str
) -> Iterator[tuple[str, list[T]]]:
    """`head` + the rows' texts + `tail`, a statement per megabyte, each with its rows."""
    items: list[T] = []
    parts: list[str] = []
    size = 0
    for item, text in rows:
        if parts and size + len(text) > MAX_STATEMENT:
            yield head + ",".join(parts) + tail, items
            items, parts, size = [], [], 0
        items.append(item)
        parts.append(text)
        size += len(text) + 1
    if parts:
        yield head + ",".join(parts) + tail, items


def _rendered(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> tuple[list[str], Iterator[tuple[dict[str, Any], str]]]:
    """The rows' columns, and each row with its `(…)` text."""
    cols = list(rows[0])
    render = list(zip(cols, renderers(conn, table, cols), strict=True))
    return cols, ((r, "(" + ",".join([f(r[c]) for c, f in render]) + ")") for r in rows)


def insert_values(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    verb: str = "INSERT",
    tail: str = "",
) -> list[tuple[Any, ...]]:
    """`verb INTO table (…) VALUES (…), (…) tail` in as few statements as fit; returns the rows
    of a RETURNING tail, if any."""
    if not rows:
        return []
    cols, values = _rendered(conn, table, rows)
    head = f"{verb} INTO {table.name} ({', '.join(quote(c) for c in cols)}) VALUES "
    out: list[tuple[Any, ...]] = []
    with dbapi(conn).cursor() as cur:
        for statement, _ in _statements(head, values, tail):
            cur.execute(statement)
            if cur.description:
                out += cur.fetchall()
    return out


def insert_new(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert the rows whose primary key is not stored yet; returns the rows inserted.

    Optimistic: each multi-row `INSERT` goes as it is, which is all a batch seen for the first
    time needs (no lookup). A stored key fails that statement alone (InnoDB rolls back the
    statement, not the transaction); then that statement's stored keys are looked up and only
    its other rows inserted, and the batch's later statements look up first, as a replayed
    batch is usually stored whole. A lookup reads this transaction's snapshot, so a key that
    another writer committed meanwhile can fail the second `INSERT` as well: that error
    propagates, the transaction rolls back, and the retry finds the key stored."""
    if not rows:
        return []
    _, values = _rendered(conn, table, rows)
    keys = [c.name for c in table.primary_key.columns]
    head = f"INSERT INTO {table.name} ({', '.join(quote(c) for c in rows[0])}) VALUES "
    out: list[dict[str, Any]] = []
    look_up = False
    with dbapi(conn).cursor() as cur:
        for statement, part in _statements(head, values, ""):
            if not look_up:
                try:
                    cur.execute(statement)
                    out += part
                    continue
                except IntegrityError as exc:
                    if exc.args[0] != _DUPLICATE_KEY:
                        raise
                    look_up = True
            key_of = [tuple(r[k] for k in keys) for r in part]
            stored = stored_keys(conn, table, keys, key_of)
            part = [r for r, key in zip(part, key_of, strict=True) if key not in stored]
            if part:
                insert_values(conn, table, part)
            out += part
    return out


def upsert_tail(columns: Sequence[str], keys: Sequence[str]) -> str:
    """ON DUPLICATE KEY UPDATE of `columns` (a no-op update of the first key when none)."""
    sets = [f"{quote(c)} = VALUES({quote(c)})" for c in columns] or [
        f"{quote(keys[0])} = {quote(keys[0])}"
    ]
    return " ON DUPLICATE KEY UPDATE " + ", ".join(sets)


def select_in(
    conn: Connection, table: sa.Table, columns: Sequence[str], key: str, ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE key IN (ids…)`, with the ids as literals."""
    return _in_lists(conn, ", ".join(quote(c) for c in columns), table, [key], ids)


def stored_keys(
    conn: Connection, table: sa.Table, keys: Sequence[str], values: Sequence[tuple[str, ...]]
) -> set[tuple[Any, ...]]:
    """Those of `values` (each the `keys` columns of a row) that `table` holds:
    `SELECT keys… WHERE (keys…) IN ((…), …)` with literal rows, which InnoDB reads as one range
    of the index on `keys` each (a plain `key IN` for one key)."""
    if len(keys) == 1:
        return set(select_in(conn, table, keys, keys[0], [v for (v,) in values]))
    return set(_in_lists(conn, ", ".join(quote(k) for k in keys), table, keys, values))


def count_in(conn: Connection, table: sa.Table, key: str, ids: Sequence[str]) -> int:
    """How many rows' `key` is one of `ids` (literals; the id columns compare byte for byte
    since migration 0004)."""
    return sum(int(n) for (n,) in _in_lists(conn, "COUNT(*)", table, [key], ids))


def _in_lists(
    conn: Connection,
    selected: str,
    table: sa.Table,
    keys: Sequence[str],
    values: Sequence[str] | Sequence[tuple[str, ...]],
) -> list[tuple[Any, ...]]:
    """`SELECT selected FROM table WHERE key IN (…)` for one key and a sequence of values, or
    `WHERE (keys…) IN ((…), …)` for several and a sequence of tuples, in lists of `IN_CHUNK`
    values or `ROW_CHUNK` tuples."""
    escape = escaper(conn)

    def literal(value: str) -> str:
        return f"'{escape(value)}'"

    if len(keys) == 1:
        head, chunk = f"SELECT {selected} FROM {table.name} WHERE {quote(keys[0])} IN ", IN_CHUNK
        items = [literal(v) for v in values]  # type: ignore[arg-type]
    else:
        columns = ", ".join(quote(k) for k in keys)
        head, chunk = f"SELECT {selected} FROM {table.name} WHERE ({columns}) IN ", ROW_CHUNK
        items = ["(" + ",".join(literal(v) for v in row) + ")" for row in values]
    out: list[tuple[Any, ...]] = []
    with dbapi(conn).cursor() as cur:
        for start in range(0, len(items), chunk):
            cur.execute(head + "(" + ",".join(items[start : start + chunk]) + ")")
            out += cur.fetchall()
    return out


# Refusals of LOAD DATA LOCAL, by the server (`local_infile` off) or the client (a connection
# opened without it): 1148, MySQL 8's 3948, MariaDB's 4166, PyMySQL's 2068.
_LOCAL_REFUSED = {1148, 3948, 4166, 2068}


def append_new_actions(
    conn: Connection, bulk: BulkActions, without_stored: Callable[[pa.Table], pa.Table]
) -> pa.Table | None:
    """Append a table of `event_columns.COLUMNS` (each key once) to `video_actions`, leaving out
    the actions stored already (by key: user_id, id); returns the rows appended.

    Optimistic: the whole table goes first, by one `LOAD DATA LOCAL INFILE` of a CSV file
    (`bulk.data` when encoded ahead: `csv_of`), inside a savepoint. LOCAL makes a duplicate
    key a warning, as IGNORE would, so a stored action is skipped, never stored twice; but then
    the load reports fewer rows than it was given. If so, the savepoint is rolled back,
    `without_stored` looks the keys up and the rest are loaded again. That lookup reads the
    transaction's snapshot (InnoDB's REPEATABLE READ, taken at its first read), so it misses a
    key that another writer committed since: the second load then skips it too, and this raises
    rather than return it as appended (its after-commit hooks would run twice); the caller's
    transaction rolls back, and its retry finds the key stored, as `insert_new`'s does.
    None, and nothing written, if the server refuses LOCAL loads (MySQL 8 by default): then the
    caller inserts the rows (`insert_new`).
    """
    columns = bulk.columns
    with dbapi(conn).cursor() as cur:
        cur.execute("SAVEPOINT recomind_append")
        loaded = _load_csv(cur, bulk.data if bulk.data is not None else csv_of(columns))
        if loaded is None:
            cur.execute("ROLLBACK TO SAVEPOINT recomind_append")
            return None
        if loaded == columns.num_rows:
            cur.execute("RELEASE SAVEPOINT recomind_append")
            return columns
        cur.execute("ROLLBACK TO SAVEPOINT recomind_append")
        columns = without_stored(columns)
        if columns.num_rows:
            loaded = _load_csv(cur, csv_of(columns))
            if loaded != columns.num_rows:
                raise IntegrityError(
                    _DUPLICATE_KEY,
                    f"{columns.num_rows - (loaded or 0)} of the batch's actions were stored by"
                    " another writer meanwhile; the batch is retried",
                )
    return columns


def csv_of(columns: pa.Table) -> bytes:
    """A table of `event_columns.COLUMNS` (in any column order, with any others) as the CSV
    that `_load_csv` loads: those columns in that order, strings quoted, a missing `watch_ms`
    an empty, unquoted field, and a time its UTC text with its microseconds (a `DATETIME(6)`,
    `event_columns.utc_text`), in order of key (`in_key_order`: InnoDB's rows are its primary
    key's B-tree). Arrow writes it in C++, so no Python object is made per row."""
    table = in_key_order(columns.select(COLUMNS))
    table = table.set_column(COLUMNS.index("timestamp"), "timestamp", utc_text(table["timestamp"]))
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()


_LOAD_ACTIONS = (
    f"video_actions CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'"
    f" ESCAPED BY '' LINES TERMINATED BY '\\n' ({', '.join(quote(c) for c in COLUMNS[:-1])},"
    " @watch_ms) SET `watch_ms` = NULLIF(@watch_ms, '')"
)


def _load_csv(cur: Any, data: bytes) -> int | None:
    """Rows loaded, or None if the server or the connection refuses LOCAL loads.

    LOCAL turns what strict mode refuses into warnings: a value too long for its column would
    be stored cut short. Any warning but a duplicate key fails the load, as an `INSERT` would
    fail (the caller's transaction rolls back)."""
    loaded = load_local(cur, lambda fh: fh.write(data), _LOAD_ACTIONS)
    if loaded is not None and cur.warning_count:
        cur.execute("SHOW WARNINGS")
        problems = [row for row in cur.fetchall() if int(row[1]) != _DUPLICATE_KEY]
        if problems:
            level, code, message = problems[0]
            raise DataError(int(code), f"LOAD DATA of actions: {level}: {message}")
    return loaded


def load_local(cur: Any, write: Callable[[IO[bytes]], object], into: str) -> int | None:
    """`LOAD DATA LOCAL INFILE … INTO TABLE {into}` of what `write` puts in a temporary file;
    the rows loaded, or None if the server or the connection refuses LOCAL loads."""
    with tempfile.NamedTemporaryFile(prefix="recomind-load-", suffix=".csv") as fh:
        write(fh)
        fh.flush()
        path = fh.name.replace("\\", "\\\\").replace("'", "\\'")
        try:
            return int(cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {into}"))
        except (OperationalError, InternalError, NotSupportedError) as exc:
            if exc.args[0] not in _LOCAL_REFUSED:
                raise
            return None
