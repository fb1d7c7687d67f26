"""The rules every id, tag and timestamp obeys (recomind.domain.validation)."""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recomind.domain.errors import InvalidInput
from recomind.domain.model import ActionType
from recomind.domain.validation import (
    normalise_tags,
    parse_action_type,
    parse_timestamp,
    validate_event_id,
    validate_id,
    validate_watch_ms,
)

ID_CHARS = string.ascii_letters + string.digits + "._:-"

# -- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["u1", "v42", "a", "user.name:7-x", "x" * 64, "A-B.c:9", "snake_case"]
)
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert validate_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 65,
        "has space",
        "slash/inside",
        "emoji🙂",
        "ümlaut",
        "tab\tinside",
        "u1\n",
        "\nu1",
        "semi;colon",
        None,
        42,
        ["u1"],
    ],
)
def test_invalid_ids_are_rejected_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_id(value, field="user_id", row=3)
    assert info.value.field == "user_id"
    assert info.value.row == 3


@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=64))
def test_any_id_from_the_allowed_characters_is_accepted(value: str) -> None:
    assert validate_id(value) == value


@given(st.text(alphabet=st.sampled_from(ID_CHARS + "\n\t /#é🙂"), max_size=70) | st.text())
def test_an_accepted_id_only_ever_has_allowed_characters(value: str) -> None:
    try:
        accepted = validate_id(value)
    except InvalidInput:
        return
    assert 1 <= len(accepted) <= 64
    assert set(accepted) <= set(ID_CHARS)


def test_event_ids_are_uuids_in_canonical_form() -> None:
    raw = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert validate_event_id(raw) == raw.lower()
    assert validate_event_id("{6f9619ff-8b86-d011-b42d-00c04fc964ff}") == raw.lower()
    for bad in ("", "not-a-uuid", None, 12, "6f9619ff-8b86-d011-b42d"):
        with pytest.raises(InvalidInput):
            validate_event_id(bad)


@given(st.uuids(), st.sampled_from([str, lambda s: s.upper(), lambda s: "{" + s + "}"]))
def test_an_event_id_in_any_accepted_spelling_comes_out_canonical(
    value: uuid.UUID, spell: Callable[[str], str]
) -> None:
    assert validate_event_id(spell(str(value))) == str(value)


@given(st.text(alphabet="0123456789abcdefABCDEF-{}", max_size=40))
def test_event_ids_agree_with_the_uuid_module(text: str) -> None:
    try:
        expected = str(uuid.UUID(text))
    except ValueError:
        with pytest.raises(InvalidInput):
            validate_event_id(text)
        return
    assert validate_event_id(text) == expected


# -- action types and watch time ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("view", ActionType.VIEW), ("LIKE", ActionType.LIKE), (" skip ", ActionType.SKIP)],
)
def test_action_types(raw: str, expected: ActionType) -> None:
    assert parse_action_type(raw) is expected


@pytest.mark.parametrize("raw", ["share", "", None, 1])
def test_unknown_action_types_are_rejected(raw: object) -> None:
    with pytest.raises(InvalidInput):
        parse_action_type(raw)


def test_watch_ms() -> None:
    assert validate_watch_ms(None) is None
    assert validate_watch_ms(0) == 0
    assert validate_watch_ms(12_345) == 12_345
    for bad in (-1, 1.5, "100", True):
        with pytest.raises(InvalidInput):
            validate_watch_ms(bad)


# -- tags -------------------------------------------------------------------------------


def test_tags_are_lower_cased_stripped_of_hash_and_deduplicated_in_order() -> None:
    assert normalise_tags(["#Cats", "dogs", " #CATS ", "Cute", "dogs", "", "  ", "#"]) == (
        "cats",
        "dogs",
        "cute",
    )


def test_no_tags_is_fine() -> None:
    assert normalise_tags([]) == ()


def test_at_most_32_distinct_tags() -> None:
    thirty_two = [f"tag{i}" for i in range(32)]
    assert len(normalise_tags(thirty_two)) == 32
    # repeats collapse before the limit is checked
    assert len(normalise_tags([*thirty_two, "#TAG0", "Tag31"])) == 32
    with pytest.raises(InvalidInput) as info:
        normalise_tags([*thirty_two, "one-more"], row=7)
    assert (info.value.field, info.value.row) == ("tags", 7)


def test_overlong_and_non_string_tags_are_rejected() -> None:
    assert normalise_tags(["x" * 64]) == ("x" * 64,)
    with pytest.raises(InvalidInput):
        normalise_tags(["x" * 65])
    with pytest.raises(InvalidInput):
        normalise_tags(["ok", 3])


@given(st.lists(st.text(max_size=20), max_size=40))
def test_normalised_tags_are_clean_and_unique(raw: list[str]) -> None:
    try:
        tags = normalise_tags(raw)
    except InvalidInput:
        return
    assert len(tags) == len(set(tags)) <= 32
    for tag in tags:
        assert tag
        assert tag == tag.lower()
        assert not tag.startswith("#")
        assert tag == tag.strip()
    assert normalise_tags(tags) == tags  # normalising is idempotent


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00+00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),  # as on the bus
        ("2024-03-01T12:00:00.000250+00:00", datetime(2024, 3, 1, 12, 0, 0, 250, tzinfo=UTC)),
        (" 2024-03-01T12:00:00+00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00.250Z", datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        ("2024-03-01T14:00:00+02:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T07:00:00-05:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),  # naive means UTC
        ("2024-03-01 12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        (1709294400, datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (1709294400.5, datetime(2024, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("1709294400", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (" 1709294400 ", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (datetime(2024, 3, 1, 12), datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (
            datetime(2024, 3, 1, 13, tzinfo=timezone(timedelta(hours=1))),
            datetime(2024, 3, 1, 12, tzinfo=UTC),
        ),
    ],
)
def test_timestamps_parse_to_aware_utc(raw: object, expected: datetime) -> None:
    got = parse_timestamp(raw)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "",
        "   ",
        "2024-13-01T00:00:00Z",
        "2024-02-30T12:00:00+00:00",
        "2024-03-01T12:00+00:00+00:00",
        "2024-03-01T25:00:00",
        "12:00",
        "nan",
        "inf",
        -1,
        "-5",
        1709294400000,  # milliseconds by mistake
        "1709294400000",
        None,
        True,
        [2024, 3, 1],
    ],
)
def test_junk_timestamps_are_rejected(raw: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_timestamp(raw, row=2)
    assert (info.value.field, info.value.row) == ("timestamp", 2)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), None]),
    )
)
def test_iso_round_trip(value: datetime) -> None:
    got = parse_timestamp(value.isoformat())
    assert got.utcoffset() == timedelta(0)
    assert got == (value if value.tzinfo else value.replace(tzinfo=UTC))


@given(st.integers(min_value=0, max_value=32503680000))
def test_epoch_seconds_as_int_or_string_agree(seconds: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert parse_timestamp(seconds) == expected
    assert parse_timestamp(str(seconds)) == expected


@pytest.mark.parametrize(
    ("raw", "seconds"), [("123e-4", 0.0123), ("1709e-0", 1709.0), ("17_09", 1709.0)]
)
def test_numbers_with_a_dash_or_underscore_are_still_epoch_seconds(
    raw: str, seconds: float
) -> None:
    assert parse_timestamp(raw) == datetime.fromtimestamp(seconds, tz=UTC)


def test_invalid_input_message_says_where() -> None:
    with pytest.raises(InvalidInput, match=re.escape("row 4, field 'video_id'")):
        validate_id("bad id", field="video_id", row=4)
