"""The native decoder of the bus form (`_busform.c`) takes every event as `to_json` writes it,
and never makes a table that Arrow's reader, the reference, would not make of the same bytes.

Whatever it refuses goes on to Arrow's reader and then to the rules, so refusing more than it
must costs only time; accepting more, or reading a value differently, would store it wrong.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recomind.domain.event_columns import NATIVE, arrow_columns, decode_columns, native_columns
from recomind.domain.events import VideoActionRecorded
from recomind.domain.model import ActionType, VideoAction
from recomind.domain.validation import MAX_WATCH_MS
from tests.unit.test_event_columns import ODD_BUT_VALID, POISON, by_rules, encoded, event

ID_CHARS = string.ascii_letters + string.digits + "._:-"
ids = st.text(ID_CHARS, min_size=1, max_size=64)
uuids = st.uuids().map(str)
times = st.datetimes(
    min_value=datetime(1001, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
)
actions = st.builds(
    VideoAction,
    id=uuids,
    user_id=ids,
    video_id=ids,
    action_type=st.sampled_from(list(ActionType)),
    timestamp=times,
    watch_ms=st.none() | st.integers(0, MAX_WATCH_MS),
)


def joined(values: list[bytes]) -> bytes:
    return b"\n".join(values)


def test_the_native_decoder_is_built() -> None:
    """CI and the images build it (setup.py); without it every batch takes Arrow's slower path."""
    assert NATIVE, "recomind.domain._busform is not built: install with a C compiler (ADR 0012)"


@given(st.lists(actions, min_size=1, max_size=40))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_it_takes_every_event_as_the_bus_writes_it_and_reads_it_as_arrow_does(
    batch: list[VideoAction],
) -> None:
    values = [VideoActionRecorded(a).to_json() for a in batch]
    table = native_columns(joined(values), len(values))
    assert table is not None
    assert table.equals(arrow_columns(joined(values), len(values)))
    assert table.to_pylist() == by_rules(values)


@pytest.mark.parametrize(
    "changes",
    [
        {"watch_ms": 0},
        {"watch_ms": MAX_WATCH_MS},
        {"watch_ms": ...},
        {"user_id": "x" * 64},
        {"video_id": "A.z_0:9-"},
        {"timestamp": "2000-02-29T00:00:00+00:00"},
        {"timestamp": "1000-01-01T00:00:00.000001+00:00"},
        {"timestamp": "9999-12-31T23:59:59.999999+00:00"},
        {"timestamp": "1969-12-31T23:59:59.999999+00:00"},
    ],
    ids=repr,
)
def test_it_takes_the_edges_of_the_form(changes: dict[str, object]) -> None:
    values = encoded([event(0), event(1, **changes), event(2)])
    table = native_columns(joined(values), 3)
    assert table is not None
    assert table.equals(arrow_columns(joined(values), 3))
    assert table.to_pylist() == by_rules(values)


@pytest.mark.parametrize(
    "changes",
    [
        *ODD_BUT_VALID,
        *POISON,
        {"user_id": "x" * 65},
        {"timestamp": "1900-02-29T00:00:00+00:00"},
        {"timestamp": "2026-13-01T00:00:00+00:00"},
        {"timestamp": "2026-12-00T00:00:00+00:00"},
        {"timestamp": "2026-12-03T05:60:00+00:00"},
        {"timestamp": "0999-12-31T23:59:59+00:00"},
        {"timestamp": "2026-12-03T05:35:28.1234567+00:00"},
    ],
    ids=repr,
)
def test_anything_else_is_left_to_arrow(changes: dict[str, object]) -> None:
    values = encoded([event(0), event(1, **changes), event(2)])
    assert native_columns(joined(values), 3) is None
    table = decode_columns(values)  # as before: Arrow's reader, or the rules if it is None
    if table is not None:
        assert table.to_pylist() == by_rules(values)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"6ff5d2ac-5b53-4cca-865e-000000000001","user_id":"u","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00","watch_ms":007}',
        b'{"id":"6ff5d2ac-5b53-4cca-865e-000000000001","user_id":"u","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00","watch_ms":21474836470}',
        b'{"id":"6ff5d2ac-5b53-4cca-865e-000000000001","user_id":"u","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00"} ',
        b'{"id":"6ff5d2ac-5b53-4cca-865e-000000000001","user_id":"u","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00"',
        b'{"user_id":"u","id":"6ff5d2ac-5b53-4cca-865e-000000000001","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00"}',
        b'{"id":"6ff5d2ac-5b53-4cca-865e-000000000001", "user_id":"u","video_id":"v",'
        b'"action_type":"view","timestamp":"2026-12-03T05:35:28+00:00"}',
    ],
    ids=repr,
)
def test_bytes_other_than_to_json_writes_are_left_to_arrow(raw: bytes) -> None:
    assert native_columns(raw, 1) is None


def test_it_reads_only_bytes_which_cannot_change_while_it_parses() -> None:
    """The parse runs without the GIL, so a buffer another thread could resize is refused."""
    from recomind.domain import _busform

    blob = joined(encoded([event(0)]))
    assert _busform.decode(blob, 1) is not None
    with pytest.raises(TypeError):
        _busform.decode(bytearray(blob), 1)  # type: ignore[arg-type]


def test_the_count_of_events_must_be_the_count_given() -> None:
    values = encoded([event(n) for n in range(3)])
    assert native_columns(joined(values), 3) is not None
    for n in (0, 1, 2, 4, 10**9):
        assert native_columns(joined(values), n) is None
    assert native_columns(joined(values) + b"\n", 3) is None
    assert native_columns(b"", 1) is None


canonical = st.lists(actions, min_size=1, max_size=8).map(
    lambda batch: [VideoActionRecorded(a).to_json() for a in batch]
)
NOTABLE = b'\n\r\\"{}:,.-+0123456789Tefz \x00\x7f\xc3\xff'


@given(canonical, st.data())
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_what_it_takes_of_changed_bytes_arrow_takes_alike(
    values: list[bytes], data: st.DataObject
) -> None:
    """Bytes changed, dropped, put in or cut off anywhere in a batch: whenever the native
    decoder still takes it, Arrow's reader makes the same table of it."""
    blob = bytearray(joined(values))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(blob)))
        byte = data.draw(st.sampled_from(NOTABLE) | st.integers(0, 255))
        how = data.draw(st.sampled_from(["change", "drop", "put", "cut"]))
        if how == "change" and at < len(blob):
            blob[at] = byte
        elif how == "drop":
            del blob[at : at + 1]
        elif how == "put":
            blob.insert(at, byte)
        else:
            del blob[at:]
    table = native_columns(bytes(blob), len(values))
    if table is not None:
        assert table.equals(arrow_columns(bytes(blob), len(values)))
        assert table.to_pylist() == by_rules(bytes(blob).split(b"\n"))
