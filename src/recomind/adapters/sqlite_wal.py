"""SQLite files that several processes open: the embedded store and the local event log (the
embedded bus, and the API's spool when the bus is Kafka)."""

from __future__ import annotations

import sqlite3
import time

# How long a SQLite connection waits for another one's write lock: `sqlite3.connect`'s
# `timeout`, which sets the connection's busy timeout (no `PRAGMA busy_timeout` needed).
BUSY_SECONDS = 30.0


def to_wal(conn: sqlite3.Connection | sqlite3.Cursor) -> None:
    """Put the database in WAL mode, which it keeps. The switch needs the database to itself,
    and SQLite refuses it at once, without waiting out the busy timeout, while another
    connection writes: as when processes open a new file together (the API and a worker) and
    one of them is making its tables. So it is tried again until that timeout."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
