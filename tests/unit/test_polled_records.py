"""A poll's records kept as columns read as the `BusRecord`s they stand for."""

from __future__ import annotations

from recomind.domain.ports import (
    BusRecord,
    PolledRecords,
    joined,
    latest_offsets,
    positions_of,
    values_of,
)


def polled(topic: str, rows: list[tuple[int, int, bytes | str | None, bytes]]) -> PolledRecords:
    return PolledRecords(
        topic,
        [p for p, _, _, _ in rows],
        [o for _, o, _, _ in rows],
        [k for _, _, k, _ in rows],
        [v for _, _, _, v in rows],
    )


ROWS: list[tuple[int, int, bytes | str | None, bytes]] = [
    (0, 7, b"u1", b"a"),
    (1, 3, b"u\xff", b"b"),  # a key that is not UTF-8
    (0, 8, None, b"c"),
    (1, 2, "u2", b"d"),  # an offset lower than one polled before it on its partition
]
RECORDS = [
    BusRecord("t", 0, 7, "u1", b"a"),
    BusRecord("t", 1, 3, "u\ufffd", b"b"),
    BusRecord("t", 0, 8, "", b"c"),
    BusRecord("t", 1, 2, "u2", b"d"),
]


def test_records_read_as_tuples_by_position_slice_and_loop() -> None:
    records = polled("t", ROWS)
    assert len(records) == 4 and records
    assert list(records) == RECORDS
    assert [records[i] for i in range(4)] == RECORDS and records[-1] == RECORDS[-1]
    assert isinstance(records[1:3], PolledRecords) and list(records[1:3]) == RECORDS[1:3]
    assert records == RECORDS and RECORDS == records and records != RECORDS[:3]  # noqa: SIM300
    assert not polled("t", []) and polled("t", []) == []


def test_values_positions_and_latest_offsets_are_those_of_the_records() -> None:
    records = polled("t", ROWS)
    assert values_of(records) == values_of(RECORDS) == [b"a", b"b", b"c", b"d"]
    assert positions_of(records) == positions_of(RECORDS) == ([0, 1, 0, 1], [7, 3, 8, 2])
    assert latest_offsets(records) == latest_offsets(RECORDS) == {("t", 0): 8, ("t", 1): 3}


def test_polls_joined_stay_columns_only_when_all_are_of_one_topic() -> None:
    first, second = polled("t", ROWS[:1]), polled("t", ROWS[1:])
    both = joined([first, second])
    assert isinstance(both, PolledRecords) and both == RECORDS
    assert joined([first]) is first
    mixed = joined([first, polled("other", ROWS[1:2]), RECORDS[2:]])
    assert not isinstance(mixed, PolledRecords)
    assert mixed == [RECORDS[0], RECORDS[1]._replace(topic="other"), *RECORDS[2:]]
    assert joined([]) == []
