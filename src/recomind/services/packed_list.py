"""Feed lists as cached: every item serialised once, pages cut out of the bytes.

A cached list (`recommendations:{user_id}`, `popular_videos`) is read on every page, so it
is stored as each item's JSON already made: the public object (`video_id`, `title`, `url`,
`tags`) and its reason, one after the other, behind a small header with the video ids and
where each part ends. A page is then the chosen items' bytes joined into a JSON array (with
`reason` spliced in for `explain=true`), without parsing or serialising an item again.

    b"RMF1" | length of header (4 bytes, big-endian) | header JSON {"ids", "ends"} | parts
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

MAGIC = b"RMF1"
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
_PARSED: dict[bytes, PackedList] = {}  # lists read lately, by their bytes
_PARSED_MAX = 512

FeedItem = dict[str, Any]  # {"video_id","title","url","tags"} (+ "reason")


class PackedList:
    def __init__(self, ids: list[str], ends: list[int], body: bytes) -> None:
        self.ids = ids  # video ids, in list order
        self.ends = ends  # per item: where its public JSON ends, then where its reason ends
        self.body = body

    @classmethod
    def pack(cls, items: Sequence[FeedItem]) -> PackedList:
        ids, ends, parts, at = [], [], [], 0
        for item in items:
            public = orjson.dumps({k: v for k, v in item.items() if k != "reason"})
            reason = orjson.dumps(item.get("reason"))
            ids.append(str(item["video_id"]))
            parts += [public, reason]
            at += len(public)
            ends.append(at)
            at += len(reason)
            ends.append(at)
        return cls(ids, ends, b"".join(parts))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PackedList | None:
        """The list `to_bytes` wrote; None for anything else (an older format is a miss).

        The lists read lately are remembered by their bytes: a hot list read again (every
        page of a viewer, trending) is not parsed again. A PackedList is never changed."""
        known = _PARSED.get(raw)
        if known is not None:
            return known
        packed = cls._parse(raw)
        if packed is not None:
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()  # the hot lists come back at once
            _PARSED[raw] = packed
        return packed

    @classmethod
    def _parse(cls, raw: bytes) -> PackedList | None:
        if not raw.startswith(MAGIC) or len(raw) < _PREFIX:
            return None
        (length,) = _LENGTH.unpack_from(raw, len(MAGIC))
        try:
            header = orjson.loads(raw[_PREFIX : _PREFIX + length])
            ids, ends = header["ids"], header["ends"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        body = raw[_PREFIX + length :]
        if len(ends) != 2 * len(ids) or (ends and ends[-1] != len(body)):
            return None
        return cls(ids, ends, body)

    def to_bytes(self) -> bytes:
        header = orjson.dumps({"ids": self.ids, "ends": self.ends})
        return MAGIC + _LENGTH.pack(len(header)) + header + self.body

    def __len__(self) -> int:
        return len(self.ids)

    def _parts(self, i: int) -> tuple[bytes, bytes]:
        start = self.ends[2 * i - 1] if i else 0
        middle, end = self.ends[2 * i], self.ends[2 * i + 1]
        return self.body[start:middle], self.body[middle:end]

    def page(self, indices: Iterable[int], explain: bool) -> bytes:
        """These items as a JSON array; with `explain`, each with its `reason` (if it has one)."""
        out = []
        for i in indices:
            public, reason = self._parts(i)
            if explain and reason != b"null":
                public = public[:-1] + b',"reason":' + reason + b"}"
            out.append(public)
        return b"[" + b",".join(out) + b"]"

    def items(self) -> list[FeedItem]:
        """Every item as a dict, `reason` included when it has one."""
        parsed: list[FeedItem] = orjson.loads(self.page(range(len(self)), explain=True))
        return parsed

    def select(self, indices: Iterable[int]) -> PackedList:
        """Some of the items, in the order given, still packed."""
        ids, ends, parts, at = [], [], [], 0
        for i in indices:
            public, reason = self._parts(i)
            ids.append(self.ids[i])
            parts += [public, reason]
            at += len(public)
            ends.append(at)
            at += len(reason)
            ends.append(at)
        return PackedList(ids, ends, b"".join(parts))
