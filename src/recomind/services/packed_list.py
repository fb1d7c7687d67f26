"""Feed lists as cached: every item serialised once, pages cut out of the bytes.

A cached list (`recommendations:{user_id}`, `popular_videos`) is read on every page, so it
is stored as each item's JSON already made: the public object (`video_id`, `title`, `url`,
`tags`) and its reason, one after the other, behind a small header with the video ids and
where each part ends. A page is then the chosen items' bytes joined into a JSON array (with
`reason` spliced in for `explain=true`), without parsing or serialising an item again.

    b"RMF2" | digest (16 bytes) | length of header (4 bytes, big-endian) | header JSON
    {"ids", "ends"} | parts

The digest (BLAKE2b of everything after it) names the content: a list read again is found
among the lists parsed lately by its digest and length, without hashing its bytes again
(what a page of a hot list cost most before it). Lists written by the previous format,
`RMF1` (no digest), are still read, remembered by their whole bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import orjson

from recomind.services.impressions import video_hash

MAGIC = b"RMF2"
OLD_MAGIC = b"RMF1"
DIGEST_BYTES = 16
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + DIGEST_BYTES + _LENGTH.size
_OLD_PREFIX = len(OLD_MAGIC) + _LENGTH.size
# lists read lately: by (digest, length), or by their whole bytes for RMF1
_PARSED: dict[tuple[bytes, int] | bytes, PackedList] = {}
_PARSED_MAX = 512

FeedItem = dict[str, Any]  # {"video_id","title","url","tags"} (+ "reason")


def _digest(content: bytes) -> bytes:
    return hashlib.blake2b(content, digest_size=DIGEST_BYTES).digest()


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
        """The list `to_bytes` wrote (or an RMF1 list); None for anything else (a list cached
        before RMF1 is a miss, rebuilt).

        The lists read lately are remembered by their digest and length: a hot list read
        again (every page of a viewer, trending) is not parsed again. A list is remembered
        only once its digest matched its bytes. A PackedList is never changed."""
        key: tuple[bytes, int] | bytes
        if raw.startswith(MAGIC):
            key = (raw[len(MAGIC) : len(MAGIC) + DIGEST_BYTES], len(raw))
        elif raw.startswith(OLD_MAGIC):
            key = raw
        else:
            return None
        known = _PARSED.get(key)
        if known is not None:
            return known
        packed = cls._parse(raw)
        if packed is not None:
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()  # the hot lists come back at once
            _PARSED[key] = packed
        return packed

    @classmethod
    def _parse(cls, raw: bytes) -> PackedList | None:
        if raw.startswith(OLD_MAGIC):
            prefix = _OLD_PREFIX
        elif len(raw) >= _PREFIX and raw[len(MAGIC) : len(MAGIC) + DIGEST_BYTES] == _digest(
            raw[len(MAGIC) + DIGEST_BYTES :]
        ):
            prefix = _PREFIX
        else:
            return None
        if len(raw) < prefix:
            return None
        (length,) = _LENGTH.unpack_from(raw, prefix - _LENGTH.size)
        try:
            header = orjson.loads(raw[prefix : prefix + length])
            ids, ends = header["ids"], header["ends"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        body = raw[prefix + length :]
        if len(ends) != 2 * len(ids) or (ends and ends[-1] != len(body)):
            return None
        return cls(ids, ends, body)

    def to_bytes(self) -> bytes:
        header = orjson.dumps({"ids": self.ids, "ends": self.ends})
        content = _LENGTH.pack(len(header)) + header + self.body
        return MAGIC + _digest(content) + content

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def hashes(self) -> tuple[int, ...]:
        """Each video's `video_hash`, made once per list: a remembered list serves many
        pages, and each page's session and impressions need its videos' hashes."""
        return tuple(video_hash(v) for v in self.ids)

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
