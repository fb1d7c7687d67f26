"""Feed sessions and impressions: infinite scroll without repeats, and what to demote.

A viewer's feed state is one cache entry, `impressions:{user_id}`: their open sessions
(the video ids of each page) and their impressions (`services/impressions.py`).

A first page (no cursor) opens a session. Each page's cursor names the session and how
many pages the client has received; the next page is the viewer's *current* list minus
every video of those pages. So a list rebuilt mid-session (after a like) never repeats a
video, and a retried cursor gets its page again instead of skipping one. A session lasts
`session_seconds` after its last page. An impression lasts `impressions_seconds`: the
list builder demotes those videos on the next rebuild. Videos the viewer acted on leave
their lists altogether, so impressions need no update on actions.

Cursors are signed (keyed BLAKE2b over the viewer id and the session), so a cursor that
is garbled, forged or taken from another viewer is refused with `InvalidInput`. A
genuine cursor whose session expired, or was lost with the cache, opens a new session.

One cache read and one write per page (`FeedService.page` reads the state together with
the viewer's list: one round trip). The write is done before the page is answered, so the
next page's request always finds it. Two pages of one viewer saved at the same instant
race; the later write wins and the other page's impressions are lost: at worst a repeat.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from recomind.domain import cache_keys
from recomind.domain.errors import InvalidInput
from recomind.domain.ports import Cache
from recomind.services.impressions import Impressions

log = logging.getLogger(__name__)

CURSOR_VERSION = 1
SESSION_BYTES = 12
MAC_BYTES = 12
_PAGE = struct.Struct(">H")
MAX_PAGE = 2**16 - 1
CURSOR_BYTES = 1 + SESSION_BYTES + _PAGE.size + MAC_BYTES
MAX_SESSIONS = 8  # open sessions kept per viewer (phone, tablet, tabs)
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


class CursorCodec:
    """Opaque, signed cursors: base64url(version | session | page | MAC)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the cursor secret is empty")
        self._key = hashlib.blake2b(secret, digest_size=32, person=b"recomind-cursor").digest()

    def encode(self, user_id: str, cursor: Cursor) -> str:
        body = bytes([CURSOR_VERSION]) + bytes.fromhex(cursor.session) + _PAGE.pack(cursor.page)
        return base64.urlsafe_b64encode(body + self._mac(user_id, body)).rstrip(b"=").decode()

    def decode(self, user_id: str, token: str) -> Cursor:
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(BAD_CURSOR, field="cursor") from None
        if len(raw) != CURSOR_BYTES or raw[0] != CURSOR_VERSION:
            raise InvalidInput(BAD_CURSOR, field="cursor")
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(user_id, body)):
            raise InvalidInput(BAD_CURSOR, field="cursor")
        (page,) = _PAGE.unpack_from(body, 1 + SESSION_BYTES)
        return Cursor(body[1 : 1 + SESSION_BYTES].hex(), page)

    def _mac(self, user_id: str, body: bytes) -> bytes:
        message = user_id.encode() + b"\0" + body
        return hashlib.blake2b(message, key=self._key, digest_size=MAC_BYTES).digest()


class FeedState:
    """One viewer's open sessions and impressions, as one cache value:
    `>BI` (format, length of the sessions JSON), the sessions as JSON
    (id -> [last page at, [[video ids] per page]]), then the impression records."""

    FORMAT = 2
    _HEADER = struct.Struct(">BI")

    def __init__(
        self, sessions: dict[str, list[Any]] | None = None, impressions: Impressions | None = None
    ) -> None:
        self.sessions = sessions if sessions is not None else {}
        self.impressions = impressions if impressions is not None else Impressions()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> FeedState:
        if raw is None:
            return cls()
        try:
            version, length = cls._HEADER.unpack_from(raw)
            end = cls._HEADER.size + length
            sessions = orjson.loads(raw[cls._HEADER.size : end])
            if version != cls.FORMAT or not isinstance(sessions, dict):
                raise ValueError("not a feed state")
            return cls(sessions, Impressions.from_bytes(raw[end:]))
        except (struct.error, ValueError):  # orjson's JSONDecodeError is a ValueError
            log.warning("unreadable feed state in the cache; starting afresh")
            return cls()

    def to_bytes(self) -> bytes:
        sessions = orjson.dumps(self.sessions)
        return (
            self._HEADER.pack(self.FORMAT, len(sessions)) + sessions + self.impressions.to_bytes()
        )

    def prune(self, now: float, session_seconds: float, impressions_seconds: float) -> None:
        """Forget expired sessions, and keep the impressions within their cap."""
        live = {sid: s for sid, s in self.sessions.items() if now - s[0] <= session_seconds}
        if len(live) > MAX_SESSIONS:
            live = dict(sorted(live.items(), key=lambda kv: -kv[1][0])[:MAX_SESSIONS])
        self.sessions = live
        self.impressions.prune(now, impressions_seconds)

    def served(self, session: str, before_page: int) -> set[str]:
        """The videos of the session's first `before_page` pages."""
        s = self.sessions.get(session)
        if s is None:
            return set()
        return {v for page in s[1][:before_page] for v in page}

    def record(self, session: str, page: int, video_ids: Sequence[str], now: float) -> None:
        """Page number `page` of `session` was served: it replaces that page and any after it."""
        s = self.sessions.get(session)
        pages = s[1][:page] if s is not None else []
        self.sessions[session] = [now, [*pages, list(video_ids)]]
        self.impressions.record(video_ids, now)


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
    state: FeedState
    session: str
    page: int
    served: set[str]  # videos this page must not repeat
    event: SessionEvent
    now: float


class FeedSessions:
    def __init__(
        self,
        cache: Cache,
        settings: SessionSettings,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.codec = CursorCodec(secret or secrets.token_bytes(32))
        self.clock = clock
        self.pages: Counter[str] = Counter()  # pages served, by SessionEvent
        self.bad_cursors = 0
        self.state_reads: Counter[str] = Counter()  # hit | miss of `impressions:{user_id}`

    def open(self, user_id: str, cursor: str | None) -> Position:
        """Where this page starts; a bad cursor raises `InvalidInput` before any I/O."""
        wanted = self.check(user_id, cursor)
        return self.resume(user_id, wanted, self.cache.get(cache_keys.impressions(user_id)))

    def check(self, user_id: str, cursor: str | None) -> Cursor | None:
        """The cursor decoded (None without one); a bad one raises `InvalidInput` (no I/O)."""
        try:
            return self.codec.decode(user_id, cursor) if cursor else None
        except InvalidInput:
            self.bad_cursors += 1
            raise

    def resume(self, user_id: str, wanted: Cursor | None, raw_state: bytes | None) -> Position:
        """Where this page starts, from the viewer's feed state as read from the cache
        (`impressions:{user_id}`): a caller may read it in one round trip with its list."""
        now = self.clock()
        state = self._state(raw_state, now)
        if wanted is not None and wanted.session in state.sessions:
            served = state.served(wanted.session, wanted.page)
            return Position(
                user_id, state, wanted.session, wanted.page, served, SessionEvent.CONTINUED, now
            )
        event = SessionEvent.STARTED if wanted is None else SessionEvent.RESTARTED
        return Position(user_id, state, secrets.token_hex(SESSION_BYTES), 0, set(), event, now)

    def record(self, position: Position, video_ids: list[str], more: bool) -> str | None:
        """Save the page as served; the cursor of the next page when there is one."""
        self.pages[position.event] += 1
        position.state.record(position.session, position.page, video_ids, position.now)
        self.save(position.user_id, position.state, position.now)
        if not more or position.page + 1 > MAX_PAGE:
            return None
        return self.codec.encode(position.user_id, Cursor(position.session, position.page + 1))

    def impressions(self, position: Position, video_ids: Sequence[str]) -> dict[str, int]:
        """How often the viewer a page is for was served these videos lately (no I/O)."""
        return position.state.impressions.times_served(
            video_ids, position.now, self.settings.impressions_seconds
        )

    def times_served(self, user_id: str, video_ids: Sequence[str]) -> dict[str, int]:
        """How often the viewer was served these videos lately."""
        now = self.clock()
        impressions = self.load(user_id, now).impressions
        return impressions.times_served(video_ids, now, self.settings.impressions_seconds)

    def load(self, user_id: str, now: float) -> FeedState:
        return self._state(self.cache.get(cache_keys.impressions(user_id)), now)

    def _state(self, raw: bytes | None, now: float) -> FeedState:
        self.state_reads["miss" if raw is None else "hit"] += 1
        state = FeedState.from_bytes(raw)
        state.prune(now, self.settings.session_seconds, self.settings.impressions_seconds)
        return state

    def save(self, user_id: str, state: FeedState, now: float) -> None:
        state.prune(now, self.settings.session_seconds, self.settings.impressions_seconds)
        ttl = max(self.settings.session_seconds, self.settings.impressions_seconds)
        self.cache.set(cache_keys.impressions(user_id), state.to_bytes(), ttl)
