"""Cached lists as packed bytes: pages cut out of them are the JSON the items make."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recomind.services.packed_list import FeedItem, PackedList

text = st.text(max_size=12)
items_strategy = st.lists(
    st.builds(
        lambda n, title, tags, reason: {
            "video_id": f"v{n}",
            "title": title,
            "url": f"https://x/{n}",
            "tags": tags,
            **({"reason": reason} if reason is not None else {}),
        },
        st.integers(0, 10**6),
        text,
        st.lists(text, max_size=3),
        st.none() | text,
    ),
    max_size=12,
)


def public(item: FeedItem) -> FeedItem:
    return {k: v for k, v in item.items() if k != "reason"}


@given(items_strategy, st.data())
def test_pages_are_the_items_json(items: list[FeedItem], data: st.DataObject) -> None:
    packed = PackedList.from_bytes(PackedList.pack(items).to_bytes())
    assert packed is not None and packed.ids == [i["video_id"] for i in items]
    chosen = data.draw(st.lists(st.integers(0, max(len(items) - 1, 0)), max_size=len(items)))
    chosen = chosen if items else []
    assert orjson.loads(packed.page(chosen, explain=False)) == [public(items[i]) for i in chosen]
    assert orjson.loads(packed.page(chosen, explain=True)) == [items[i] for i in chosen]
    assert packed.items() == items
    kept = packed.select(chosen)
    assert kept.items() == [items[i] for i in chosen]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",  # a list cached by an older version: a miss, rebuilt
        b'[{"video_id": "v1"}]',
        b"RMF1",
        b"RMF1\x00\x00\x00\x05{bad}",
        b'RMF1\x00\x00\x00\x17{"ids":["a"],"ends":[1]}x',
    ],
)
def test_anything_else_reads_as_a_miss(raw: bytes) -> None:
    assert PackedList.from_bytes(raw) is None


def test_a_list_read_again_is_not_parsed_again_and_equal_bytes_read_alike() -> None:
    items = [{"video_id": f"v{n}", "title": "t", "url": "u", "tags": ["x"]} for n in range(3)]
    raw = PackedList.pack(items).to_bytes()
    first = PackedList.from_bytes(raw)
    again = PackedList.from_bytes(bytes(bytearray(raw)))  # other bytes, the same content
    assert first is not None and again is first
    other = PackedList.from_bytes(PackedList.pack(items[:2]).to_bytes())
    assert other is not None and other.ids == ["v0", "v1"]
    assert PackedList.from_bytes(raw[:-1]) is None  # a cut value is still a miss


def test_lists_of_the_previous_format_are_still_read() -> None:
    items = [{"video_id": f"old{n}", "title": "t", "url": "u", "tags": []} for n in range(3)]
    packed = PackedList.pack(items)
    header = orjson.dumps({"ids": packed.ids, "ends": packed.ends})
    old = b"RMF1" + len(header).to_bytes(4, "big") + header + packed.body
    read = PackedList.from_bytes(old)
    assert read is not None and read.items() == items
    assert PackedList.from_bytes(old[:-1]) is None


def test_a_list_whose_digest_does_not_match_its_bytes_is_a_miss() -> None:
    items = [{"video_id": f"d{n}", "title": "title", "url": "u", "tags": []} for n in range(3)]
    raw = PackedList.pack(items).to_bytes()
    assert raw.startswith(b"RMF2")
    tampered = raw.replace(b"title", b"TITLE", 1)
    assert len(tampered) == len(raw) and tampered != raw
    assert PackedList.from_bytes(tampered) is None
    assert PackedList.from_bytes(raw) is not None
