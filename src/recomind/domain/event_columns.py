"""Bus events decoded a batch at a time into Arrow columns, for the store's and the lake's sinks.

`events.action_from_json` decodes one event in Python (5-8 µs here); the bulk sinks take
thousands per poll and want columns, not objects. `decode_columns` decodes the whole batch and
checks the event rules on it.

It takes only events in exactly the form `VideoActionRecorded.to_json` writes: a canonical
UUID, ids of `[A-Za-z0-9._:-]{1,64}`, `view`/`like`/`skip`, an ISO 8601 time in UTC written
with `+00:00`, and a non-negative integer or no `watch_ms`, all in ASCII. A batch holding
anything else, valid or not, is refused as a whole (`None`), and the caller decodes it event
by event with the domain's rules, which also name what is wrong with a poison message. So the
two ways agree on every event they both take (`tests/unit/test_event_columns.py`).

A batch goes first to the native decoder (`_busform.c`, ADR 0012), which reads the exact bytes
`to_json` writes in one pass, six to nine times faster; it answers None for anything else, and
Arrow's JSON reader (`arrow_columns`, the reference) decides. Where the package was installed
without a C compiler, `NATIVE` is False and Arrow's reader takes every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from recomind.domain.errors import InvalidInput
from recomind.domain.events import action_from_json
from recomind.domain.model import ActedColumns, ActionType, VideoAction
from recomind.domain.ports import BusRecord, values_of
from recomind.domain.validation import CANONICAL_UUID, ID_PATTERN, MAX_WATCH_MS

try:
    from recomind.domain import _busform
except ImportError:  # installed without a C compiler (setup.py): Arrow's reader alone
    _busform = None  # type: ignore[assignment]
NATIVE = _busform is not None

COLUMNS = ("id", "user_id", "video_id", "action_type", "timestamp", "watch_ms")
_SCHEMA = pa.schema([(name, pa.string()) for name in COLUMNS[:-1]] + [("watch_ms", pa.int64())])
_PARSE = pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
# Parsed in blocks of 512 KiB on Arrow's CPU threads (one value per line, so a block ends at
# a value's end): on 2 cores, 0.45-0.55 µs an event against 0.93-0.97 in one block.
_READ = pajson.ReadOptions(use_threads=True, block_size=512 << 10)
# What datetime.isoformat() writes for an aware UTC time, years 1000-9999.
_UTC_ISO = (
    r"^[1-9][0-9]{3}-[01][0-9]-[0-3][0-9]T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{6})?\+00:00$"
)
_PATTERNS = {
    "id": f"^{CANONICAL_UUID.pattern}$",
    "user_id": ID_PATTERN.pattern,
    "video_id": ID_PATTERN.pattern,
    "timestamp": _UTC_ISO,
}
_ACTION_TYPES = pa.array([t.value for t in ActionType])
_UTC_MICROS = pa.timestamp("us", tz="UTC")


def decode_columns(values: Sequence[bytes]) -> pa.Table | None:
    """The events as a table of `COLUMNS` (timestamp as UTC microseconds), one row per value in
    order; None when any value is not an event in the bus's own form."""
    if not values:
        return None
    blob = b"\n".join(values)
    # The native decoder takes only n lines, each an event as `to_json` writes it (in ASCII,
    # without a line break), so it needs none of the checks below (1 ms for 8,500 events).
    table = native_columns(blob, len(values))
    if table is not None:
        return table
    if not all(values):
        return None
    # One line per value: a value with a line break of its own would shift every row after it.
    if blob.count(b"\n") != len(values) - 1 or b"\r" in blob:
        return None
    # The bus's own form is ASCII: `arrow_columns` checks every field it writes against an
    # ASCII pattern. So anything else goes to the rules, among it bad UTF-8 in a field Arrow ignores
    # (which orjson refuses). `isascii` scans without making a str: 0.3 ms for 7 MB here,
    # against 4 ms to decode them (and `decode_columns` of 50,000 events took 39-44 ms against
    # 53-59 ms, medians of 31 in three sets).
    if not blob.isascii():
        return None
    return arrow_columns(blob, len(values))


def native_columns(blob: bytes, n: int) -> pa.Table | None:
    """The n events of `blob` (joined by line breaks) by the native decoder; None when any is
    not byte for byte as `VideoActionRecorded.to_json` writes it, or the decoder is not built.
    Every table it makes is the one `arrow_columns` makes of the same blob."""
    if _busform is None:
        return None
    buffers = _busform.decode(blob, n)
    if buffers is None:
        return None
    *strings, micros, watch_ms, watched, absent = buffers
    arrays = [
        pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(o), pa.py_buffer(d)])
        for o, d in zip(strings[::2], strings[1::2], strict=True)
    ]
    arrays.append(pa.Array.from_buffers(_UTC_MICROS, n, [None, pa.py_buffer(micros)]))
    validity = pa.py_buffer(watched) if absent else None
    arrays.append(
        pa.Array.from_buffers(pa.int64(), n, [validity, pa.py_buffer(watch_ms)], null_count=absent)
    )
    return pa.Table.from_arrays(arrays, schema=_COLUMN_TYPES)


def arrow_columns(blob: bytes, n: int) -> pa.Table | None:
    """The n events of `blob` (joined by line breaks, ASCII) by Arrow's JSON reader, checked
    against the event rules as column operations; None when any is not in the bus's form."""
    try:
        table = pajson.read_json(pa.BufferReader(blob), read_options=_READ, parse_options=_PARSE)
    except pa.ArrowInvalid:
        return None
    if table.num_rows != n:
        return None
    table = table.combine_chunks()
    for name in COLUMNS[:-1]:
        if table[name].null_count:
            return None
    checks = [pc.match_substring_regex(table[name], pattern) for name, pattern in _PATTERNS.items()]
    checks.append(pc.is_in(table["action_type"], value_set=_ACTION_TYPES))
    if not all(pc.all(check).as_py() for check in checks):
        return None
    watch_ms = table["watch_ms"]
    if watch_ms.null_count < len(watch_ms):
        bounds = pc.min_max(watch_ms).as_py()
        if bounds["min"] < 0 or bounds["max"] > MAX_WATCH_MS:
            return None
    try:  # the pattern passes a 30th of February; the cast does not
        timestamps = pc.cast(table["timestamp"], _UTC_MICROS)
    except pa.ArrowInvalid:
        return None
    return table.set_column(COLUMNS.index("timestamp"), "timestamp", timestamps)


@dataclass(frozen=True)
class EventBatch:
    """A poll's records and their columns, decoded once: `columns` is None when any record is
    not an event in the bus's own form (then a handler decodes them one by one)."""

    records: Sequence[BusRecord]
    columns: pa.Table | None

    @classmethod
    def decode(cls, records: Sequence[BusRecord]) -> EventBatch:
        return cls(records, decode_columns(values_of(records)))


def decode_each(
    records: Sequence[BusRecord],
) -> tuple[list[tuple[BusRecord, VideoAction]], list[tuple[BusRecord, str]]]:
    """The records decoded one at a time by the domain's rules (`events.action_from_json`), as
    when a batch has no columns: each one taken with its action, each one refused with the
    reason."""
    taken: list[tuple[BusRecord, VideoAction]] = []
    refused: list[tuple[BusRecord, str]] = []
    for record in records:
        try:
            taken.append((record, action_from_json(record.value)))
        except InvalidInput as exc:
            refused.append((record, str(exc)))
    return taken, refused


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTION_TYPE_OF = {t.value: t for t in ActionType}
_COLUMN_TYPES = pa.schema(
    [(name, pa.string()) for name in COLUMNS[:4]]
    + [("timestamp", pa.timestamp("us", tz="UTC")), ("watch_ms", pa.int64())]
)


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values: through NumPy, several times faster than `to_pylist` for
    strings; an integer column with nulls as `to_pylist` gives it (None, not NaN)."""
    if column.null_count:
        return column.to_pylist()
    return column.to_numpy(zero_copy_only=False).tolist()


def columns_of(actions: Sequence[VideoAction]) -> pa.Table:
    """Actions as the table `decode_columns` makes."""
    return pa.table(
        {
            "id": [a.id for a in actions],
            "user_id": [a.user_id for a in actions],
            "video_id": [a.video_id for a in actions],
            "action_type": [a.action_type.value for a in actions],
            "timestamp": [a.timestamp.astimezone(UTC) for a in actions],
            "watch_ms": [a.watch_ms for a in actions],
        },
        schema=_COLUMN_TYPES,
    )


def actions_of(table: pa.Table) -> list[VideoAction]:
    """The rows of a table of `COLUMNS` (from `decode_columns` or `columns_of`, so already
    checked) as actions."""
    micros = pc.cast(table["timestamp"], pa.int64()).to_pylist()
    return [
        VideoAction(i, u, v, _ACTION_TYPE_OF[k], _EPOCH + timedelta(microseconds=m), w)
        for i, u, v, k, m, w in zip(
            _values(table["id"]),
            _values(table["user_id"]),
            _values(table["video_id"]),
            _values(table["action_type"]),
            micros,
            _values(table["watch_ms"]),
            strict=True,
        )
    ]


def utc_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """UTC times as `YYYY-MM-DD HH:MM:SS.ffffff`, the microseconds always written. The zoned
    column is read as the naive one of the same microseconds (its UTC wall time), whose cast to
    text is about 30 times cheaper than a cast or `strftime` of the zoned one, which looks up
    the zone for every value (about 1 µs an event here)."""
    micros = pc.cast(column, pa.timestamp("us", tz="UTC"))  # no copy when it already is
    naive = pc.cast(pc.cast(micros, pa.int64()), pa.timestamp("us"))
    return pc.cast(naive, pa.string())


def keys_of(table: pa.Table) -> list[tuple[str, str]]:
    """Each row's (user_id, id), the key of `video_actions` (ADR 0011)."""
    return list(zip(_values(table["user_id"]), _values(table["id"]), strict=True))


def in_key_order(table: pa.Table) -> pa.Table:
    """The rows in order of `video_actions`' key, (user_id, id) (ADR 0011). InnoDB keeps a
    table's rows in its primary key's B-tree, so a `LOAD DATA` in key order fills its pages one
    after another, where rows in arrival order land all over it. Loads of the same 10,000 rows
    into a fresh table keyed so, 7 each: 262,235 rows/s in key order, 230,396 in order of id
    (medians). PostgreSQL appends rows to a heap, and its `COPY` of rows sorted by id gained
    nothing measurable (202,454 rows/s against 221,148 unsorted), so only MariaDB's sorts."""
    return table.sort_by([("user_id", "ascending"), ("id", "ascending")])


def first_copies(table: pa.Table) -> pa.Table:
    """The table without the later copies of a key, (user_id, id), it holds more than once."""
    ids = _values(table["id"])
    if len(set(ids)) == len(ids):  # so each key is once too
        return table
    seen: set[tuple[str, str]] = set()
    keep = [k not in seen and not seen.add(k) for k in keys_of(table)]  # type: ignore[func-returns-value]
    return table.filter(pa.array(keep))


def acted_of(table: pa.Table) -> ActedColumns:
    """Who did what to which video, per row of a table of `COLUMNS` (already checked)."""
    kinds = _ACTION_TYPE_OF
    return ActedColumns(
        _values(table["user_id"]),
        _values(table["video_id"]),
        [kinds[k] for k in _values(table["action_type"])],
    )
