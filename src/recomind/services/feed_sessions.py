"""Feed sessions and impressions: infinite scroll without repeats, and what to demote.

A first page (no cursor) opens a session. Each page's cursor carries the session's state:
the session id, how many pages the client has received, when the last of them was served,
and a 32-bit hash of every video the session served so far. The next page is the viewer's
*current* list minus those videos. So a list rebuilt mid-session (after a like) never
repeats a video, a retried cursor gets its page again instead of skipping one, and a page
needs no read or write of session state: any API replica answers any cursor, and a cache
that lost everything (or an outage of it) changes nothing about paging. A session lasts
`session_seconds` after the page that gave its cursor; a genuine cursor older than that
opens a new session. A session ends (no next cursor) once it has served `MAX_SERVED`
videos, which bounds a cursor at about 5.5 KB; the default list of 100 videos gives cursors
of about 600 characters at most. Two videos of one list whose hashes collide: the second is
left out of that session only (a chance of about one in 400,000 per page of a 100-video list).

Cursors are signed (keyed BLAKE2b over the viewer id and the whole state), so a cursor that is
garbled, forged or taken from another viewer is refused with `InvalidInput`.

Impressions (what the viewer was served lately, for demotion when their list is rebuilt) are
written behind the answer by `ImpressionLog`: see `services/impressions.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import random
import secrets
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from recomind.domain.errors import InvalidInput
from recomind.services.impressions import SHORT_MASK, ImpressionLog, video_hash

CURSOR_VERSION = 2
SESSION_BYTES = 12
MAC_BYTES = 12
_HEAD = struct.Struct(">B12sHI")  # version, session, pages received, last page at (seconds)
_HASH = struct.Struct(">I")
HASH_BYTES = _HASH.size
MAX_PAGE = 2**16 - 1
MAX_SERVED = 1000  # videos one session serves at most: the cursor stays under ~5.5 KB
MIN_CURSOR_BYTES = _HEAD.size + MAC_BYTES
_V1_BYTES = 1 + SESSION_BYTES + 2 + MAC_BYTES  # version 1: session and page only
BAD_CURSOR = "not a cursor this API gave out for this viewer"


class SessionEvent(StrEnum):
    """What a page did to the viewer's feed session."""

    STARTED = "started"  # no cursor: a new session
    CONTINUED = "continued"  # the cursor's session is open: no repeats
    RESTARTED = "restarted"  # a genuine cursor whose session expired: a new session


@dataclass(frozen=True, slots=True)
class Cursor:
    session: str  # hex
    page: int  # how many pages of the session the client has
    at: int = 0  # when the last of them was served (Unix seconds)
    served: tuple[int, ...] = ()  # short hashes of the videos the session served, in order


class CursorCodec:
    """Opaque, signed cursors: base64url(version | session | page | at | hashes | MAC)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the cursor secret is empty")
        self._key = hashlib.blake2b(secret, digest_size=32, person=b"recomind-cursor").digest()

    def encode(self, user_id: str, cursor: Cursor) -> str:
        head = _HEAD.pack(CURSOR_VERSION, bytes.fromhex(cursor.session), cursor.page, cursor.at)
        body = head + struct.pack(f">{len(cursor.served)}I", *cursor.served)
        return base64.urlsafe_b64encode(body + self._mac(user_id, body)).rstrip(b"=").decode()

    def decode(self, user_id: str, token: str) -> Cursor:
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(BAD_CURSOR, field="cursor") from None
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if (
            len(raw) == _V1_BYTES
            and raw[0] == 1
            and hmac.compare_digest(mac, self._mac(user_id, body))
        ):  # given out before sessions travelled in cursors: its session is over
            return Cursor(body[1 : 1 + SESSION_BYTES].hex(), 0, at=0)
        extra = len(raw) - MIN_CURSOR_BYTES
        if extra < 0 or extra % HASH_BYTES or raw[0] != CURSOR_VERSION:
            raise InvalidInput(BAD_CURSOR, field="cursor")
        if not hmac.compare_digest(mac, self._mac(user_id, body)):
            raise InvalidInput(BAD_CURSOR, field="cursor")
        _, session, page, at = _HEAD.unpack_from(body)
        served = struct.unpack_from(f">{extra // HASH_BYTES}I", body, _HEAD.size)
        return Cursor(session.hex(), page, at, served)

    def _mac(self, user_id: str, body: bytes) -> bytes:
        message = user_id.encode() + b"\0" + body
        return hashlib.blake2b(message, key=self._key, digest_size=MAC_BYTES).digest()


@dataclass(frozen=True)
class SessionSettings:
    session_seconds: float
    impressions_seconds: float


def cursor_key(path: Path) -> bytes:
    """The key kept in `path`, made (random) by the first process to ask: every process
    sharing the folder signs and checks cursors alike, and a restart keeps them valid."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    tmp.write_bytes(secrets.token_bytes(32))
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)  # appears whole, and only if no other process made it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"{path} holds no usable cursor key; delete it to make a new one")
    return key


@dataclass
class Position:
    """Where a page request stands in the viewer's session (from `FeedSessions.open`)."""

    user_id: str
    session: str
    page: int
    served: tuple[int, ...]  # short hashes of the videos this page must not repeat
    event: SessionEvent
    now: float

    def fresh(self, video_ids: Sequence[str], hashes: Sequence[int] | None = None) -> list[int]:
        """Positions in `video_ids` of the videos this session has not served yet.
        `hashes`: their `video_hash`, when the caller has them (`PackedList.hashes`)."""
        if not self.served:
            return list(range(len(video_ids)))
        served = set(self.served)
        if hashes is None:
            hashes = [video_hash(v) for v in video_ids]
        return [n for n, h in enumerate(hashes) if h & SHORT_MASK not in served]


class FeedSessions:
    def __init__(
        self,
        impressions: ImpressionLog,
        settings: SessionSettings,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.impressions_log = impressions
        self.settings = settings
        self.codec = CursorCodec(secret or secrets.token_bytes(32))
        self.clock = clock
        self.pages: Counter[str] = Counter()  # pages served, by SessionEvent
        self.bad_cursors = 0

    def open(self, user_id: str, cursor: str | None) -> Position:
        """Where this page starts; a bad cursor raises `InvalidInput` (no I/O either way)."""
        return self.resume(user_id, self.check(user_id, cursor))

    def check(self, user_id: str, cursor: str | None) -> Cursor | None:
        """The cursor decoded (None without one); a bad one raises `InvalidInput` (no I/O)."""
        try:
            return self.codec.decode(user_id, cursor) if cursor else None
        except InvalidInput:
            self.bad_cursors += 1
            raise

    def resume(self, user_id: str, wanted: Cursor | None) -> Position:
        """Where this page starts, given the checked cursor."""
        now = self.clock()
        if wanted is not None and now - wanted.at <= self.settings.session_seconds:
            return Position(
                user_id, wanted.session, wanted.page, wanted.served, SessionEvent.CONTINUED, now
            )
        event = SessionEvent.STARTED if wanted is None else SessionEvent.RESTARTED
        # Unique, not secret (the MAC protects the cursor): no system call per first page.
        session = f"{random.getrandbits(8 * SESSION_BYTES):0{2 * SESSION_BYTES}x}"
        return Position(user_id, session, 0, (), event, now)

    def record(
        self,
        position: Position,
        video_ids: list[str],
        more: bool,
        hashes: Sequence[int] | None = None,
    ) -> str | None:
        """The page was served: its impressions are logged; the next page's cursor when
        there is one. `hashes`: the videos' `video_hash`, when the caller has them."""
        self.pages[position.event] += 1
        if hashes is None:
            hashes = [video_hash(v) for v in video_ids]
        self.impressions_log.record(position.user_id, video_ids, position.now, hashes)
        served = _extend(position.served, hashes)
        if not more or position.page + 1 > MAX_PAGE or len(served) > MAX_SERVED:
            return None
        cursor = Cursor(position.session, position.page + 1, int(position.now), served)
        return self.codec.encode(position.user_id, cursor)

    def times_served(self, user_id: str, video_ids: Sequence[str]) -> dict[str, int]:
        """How often the viewer was served these videos lately."""
        return self.impressions_log.times_served(user_id, video_ids, self.clock())

    def close(self) -> None:
        self.impressions_log.close()


def _extend(served: tuple[int, ...], hashes: Iterable[int]) -> tuple[int, ...]:
    """`served` and the short hashes of these videos (by `video_hash`) it has not yet."""
    known = set(served)
    added = [h for h in dict.fromkeys(h & SHORT_MASK for h in hashes) if h not in known]
    return served + tuple(added)
