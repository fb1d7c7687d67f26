"""The lake's batch decoder agrees with the domain's per-event rules on every event it takes.

`decode_columns` may refuse a batch the rules would take (it then falls back to them), but
whatever it takes must decode to exactly what `VideoActionRecorded.from_json` gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from recomind.domain.errors import InvalidInput
from recomind.domain.event_columns import decode_columns
from recomind.domain.events import VideoActionRecorded
from recomind.domain.model import ActionType, VideoAction

T0 = datetime(2026, 12, 3, 5, 35, 28, 123456, tzinfo=UTC)


def event(n: int, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": f"6ff5d2ac-5b53-4cca-865e-{n:012x}",
        "user_id": f"u{n % 7}",
        "video_id": f"v.{n % 11}:x-y_z",
        "action_type": ("view", "like", "skip")[n % 3],
        "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
    }
    if n % 2:
        body["watch_ms"] = n * 100
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def encoded(bodies: list[dict[str, object]]) -> list[bytes]:
    return [orjson.dumps(b) for b in bodies]


def by_rules(values: list[bytes]) -> list[dict[str, object]] | None:
    """What the per-event rules make of each value; None when they refuse any."""
    rows = []
    for value in values:
        try:
            a = VideoActionRecorded.from_json(value).action
        except InvalidInput:
            return None
        rows.append(
            {
                "id": a.id,
                "user_id": a.user_id,
                "video_id": a.video_id,
                "action_type": a.action_type.value,
                "timestamp": a.timestamp,
                "watch_ms": a.watch_ms,
            }
        )
    return rows


def test_events_as_the_bus_writes_them_decode_as_the_rules_do() -> None:
    actions = [
        VideoAction(
            id=f"00000000-0000-4000-8000-{n:012d}",
            user_id=f"viewer-{n}",
            video_id=f"clip:{n % 4}",
            action_type=(ActionType.VIEW, ActionType.LIKE, ActionType.SKIP)[n % 3],
            # whole seconds (isoformat writes no fraction), an hour ahead of UTC, microseconds
            timestamp=[T0.replace(microsecond=0), T0.astimezone(timezone(timedelta(hours=1))), T0][
                n % 3
            ]
            + timedelta(minutes=n),
            watch_ms=None if n % 4 == 0 else n * 250,
        )
        for n in range(50)
    ]
    values = [VideoActionRecorded(a).to_json() for a in actions]
    table = decode_columns(values)
    assert table is not None
    assert table.to_pylist() == by_rules(values)


ODD_BUT_VALID = [
    {"timestamp": "2026-12-03T05:35:28Z"},
    {"timestamp": "2026-12-03T06:35:28+01:00"},
    {"timestamp": "2026-12-03 05:35:28+00:00"},
    {"timestamp": "2026-12-03T05:35:28.5+00:00"},
    {"timestamp": "2026-12-03T05:35:28"},
    {"timestamp": 1796276128},
    {"action_type": "LIKE"},
    {"action_type": " like "},
    {"id": "6FF5D2AC-5B53-4CCA-865E-A93B8E5E5AD5"},
    {"id": "6ff5d2ac5b534cca865ea93b8e5e5ad5"},
    {"watch_ms": None},
    {"extra": {"nested": [1, 2]}},
    {"note": "caf\u00e9 \u2615"},  # UTF-8 beyond ASCII, in a field the columns ignore
]
POISON = [
    {"id": "not-a-uuid"},
    {"id": ...},
    {"user_id": ""},
    {"user_id": "has space"},
    {"user_id": "x" * 65},
    {"user_id": None},
    {"video_id": 12},
    {"video_id": ...},
    {"action_type": "share"},
    {"timestamp": "2026-02-30T05:35:28+00:00"},
    {"timestamp": "2026-12-03T24:00:00+00:00"},
    {"timestamp": "yesterday"},
    {"timestamp": ...},
    {"watch_ms": -1},
    {"watch_ms": 2**31},  # over the stores' 32-bit column
    {"watch_ms": 1.5},
    {"watch_ms": True},
    {"watch_ms": "100"},
]


@pytest.mark.parametrize("changes", ODD_BUT_VALID + POISON, ids=repr)
def test_a_batch_with_one_odd_event_is_taken_only_as_the_rules_take_it(
    changes: dict[str, object],
) -> None:
    bodies = [event(n) for n in range(5)]
    bodies[2] = event(2, **changes)
    values = encoded(bodies)
    table = decode_columns(values)
    expected = by_rules(values)
    if changes in POISON:
        assert expected is None  # the rules refuse it: so must the columns
    if table is not None:
        assert table.to_pylist() == expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        [b""],
        [b"not json"],
        [b"[1, 2]"],
        [b'{"id": "a", "id": "b"}'],
        [orjson.dumps(event(1), option=orjson.OPT_INDENT_2)],  # one event over several lines
        [orjson.dumps(event(1)) + b"\n" + orjson.dumps(event(2))],  # two events in one value
        [orjson.dumps(event(1)) + b"\r" + orjson.dumps(event(2))],
        [orjson.dumps(event(1))[:-1] + b',"note":"\xff"}'],  # not UTF-8
    ],
    ids=repr,
)
def test_values_that_are_not_one_event_each_are_left_to_the_rules(values: list[bytes]) -> None:
    assert decode_columns(values) is None
    if values:  # nor does it take them beside a good event
        assert decode_columns([orjson.dumps(event(0)), *values]) is None


def test_an_event_beyond_ascii_is_left_to_the_rules_which_take_it() -> None:
    """The bus's own form is ASCII; valid UTF-8 beyond it (here in a field no one reads) sends
    the batch to the rules, which take the event."""
    values = [orjson.dumps(event(0)), orjson.dumps({**event(1), "note": "caf\u00e9"})]
    assert b"\xc3\xa9" in values[1]
    assert decode_columns(values) is None
    taken = by_rules(values)
    assert taken is not None and len(taken) == 2


def test_columns_and_actions_convert_both_ways() -> None:
    """`actions_of` reads back what the per-event rules make of the same values, `columns_of`
    makes the table `decode_columns` makes, and `acted_of` keeps who did what to which video."""
    from recomind.domain.event_columns import acted_of, actions_of, columns_of
    from recomind.domain.model import ActedOn

    values = encoded([event(n) for n in range(40)])
    table = decode_columns(values)
    assert table is not None
    actions = [VideoActionRecorded.from_json(v).action for v in values]
    assert actions_of(table) == actions
    assert columns_of(actions).equals(table)
    acted = acted_of(table)
    assert list(acted) == [ActedOn(a.user_id, a.video_id, a.action_type) for a in actions]
    assert len(acted) == len(actions) and acted[3] == list(acted)[3]
    assert list(acted[5:9]) == list(acted)[5:9]
    assert {a.watch_ms for a in actions_of(table)} >= {None, 100}


def test_first_copies_keeps_the_first_of_each_id() -> None:
    from recomind.domain.event_columns import actions_of, first_copies

    first = event(1)
    values = encoded([first, event(2), {**first, "video_id": "other"}, event(3), event(2)])
    table = decode_columns(values)
    assert table is not None
    kept = actions_of(first_copies(table))
    assert [a.id for a in kept] == [str(event(n)["id"]) for n in (1, 2, 3)]
    assert kept[0].video_id == first["video_id"]
    unique = decode_columns(encoded([event(4), event(5)]))
    assert unique is not None and first_copies(unique) is unique


def test_first_copies_keeps_one_id_sent_for_two_viewers_as_two_actions() -> None:
    """The store's key is (user_id, id) (ADR 0011): the same id for another viewer is kept."""
    from recomind.domain.event_columns import actions_of, first_copies

    mine = event(1)
    theirs = {**mine, "user_id": "someone-else"}
    table = decode_columns(encoded([mine, theirs, mine, theirs, event(2)]))
    assert table is not None
    kept = actions_of(first_copies(table))
    assert [(a.user_id, a.id) for a in kept] == [
        (mine["user_id"], mine["id"]),
        ("someone-else", mine["id"]),
        (event(2)["user_id"], event(2)["id"]),
    ]


def test_utc_text_writes_each_time_as_its_utc_wall_time_with_microseconds() -> None:
    """The cheap cast gives what `isoformat` does in UTC, with a space and six digits, for
    times on either side of 1970, at the ends of the range, and given in another zone."""
    import pyarrow as pa

    from recomind.domain.event_columns import utc_text

    zone = timezone(timedelta(hours=-7, minutes=-30))
    times = [
        T0,
        T0.replace(microsecond=0),
        T0.astimezone(zone),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    column = pa.chunked_array([pa.array(times[:3]), pa.array(times[3:])]).cast(
        pa.timestamp("us", tz="UTC")
    )
    expected = [
        t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds") for t in times
    ]
    assert utc_text(column).to_pylist() == expected
    assert expected[1] == "2026-12-03 05:35:28.000000"


def test_rows_in_key_order_go_by_viewer_then_id_and_keep_each_row_whole() -> None:
    from recomind.domain.event_columns import columns_of, in_key_order

    # Two viewers whose ids interleave: by id alone the order would be n = 0, 1, 2, 3, 4.
    actions = [
        VideoAction(
            f"00000000-0000-4000-8000-{n:012d}", f"viewer-{n % 2}", "clip:1", ActionType.LIKE, T0, n
        )
        for n in (3, 1, 4, 2, 0)
    ]
    table = in_key_order(columns_of(actions))
    assert [(row["user_id"], row["watch_ms"]) for row in table.to_pylist()] == [
        ("viewer-0", 0),
        ("viewer-0", 2),
        ("viewer-0", 4),
        ("viewer-1", 1),
        ("viewer-1", 3),
    ]
    assert sorted(table.to_pylist(), key=lambda row: row["watch_ms"]) == sorted(
        columns_of(actions).to_pylist(), key=lambda row: row["watch_ms"]
    )
