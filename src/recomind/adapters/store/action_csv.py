"""Actions as the CSV that the bulk loads read: PostgreSQL's `COPY … (FORMAT csv)` and
MariaDB's `LOAD DATA`.

Arrow writes the CSV in C++, so no Python object is made per row. Strings are quoted, a
missing `watch_ms` is an empty, unquoted field (both loads read it as NULL), and a time is
its UTC text with its microseconds (`event_columns.utc_text`), followed by `zone`.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recomind.domain.event_columns import COLUMNS, utc_text


def csv_of(columns: pa.Table, zone: str = "") -> bytes:
    """A table of `event_columns.COLUMNS` (in any column order, with any others) as CSV rows
    of those columns, in that order."""
    table = columns.select(COLUMNS)
    stamps = utc_text(table["timestamp"])
    if zone:
        stamps = pc.binary_join_element_wise(stamps, zone, "")
    table = table.set_column(COLUMNS.index("timestamp"), "timestamp", stamps)
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()
