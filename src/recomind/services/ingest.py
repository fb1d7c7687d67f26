"""Ingest: validate a viewer's action and record it durably on the bus.

The API answers 202 only after `publish` returns, i.e. once the event is in the
durable log; consumers apply it later, exactly once per event id. The store is
consulted only to reject actions on videos the catalog does not have, through a
cache of known video ids so the hot path rarely touches it.

Concurrent requests share publishes (group commit): whatever arrives while one publish
waits for durability (an fsync of the local log, Kafka's acks) goes out together in the
next, so the cost of durability is paid per group rather than per action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from recomind.domain.clock import Clock, SystemClock
from recomind.domain.errors import BusUnavailable, UnknownVideo
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
from recomind.domain.model import VideoAction
from recomind.domain.ports import EventBus, Store
from recomind.domain.validation import (
    new_event_id,
    parse_action_type,
    parse_timestamp,
    validate_event_id,
    validate_id,
    validate_watch_ms,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionRequest:
    """An action as a client sends it, before validation."""

    user_id: object
    video_id: object
    action_type: object
    timestamp: object = None
    watch_ms: object = None
    id: object = None


class KnownVideos:
    """Video ids known to exist; a miss asks the store once and remembers the answer.

    Ingest must not depend on the store being up: when it cannot be asked, the ids
    are let through (`unverified` counts them) and the store consumer dead-letters
    an action whose video turns out not to exist.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self.unverified = 0

    def missing(self, video_ids: set[str]) -> set[str]:
        with self._lock:
            unknown = video_ids - self._known
        if not unknown:
            return set()
        try:
            found = self.store.existing_video_ids(unknown)
        except Exception:
            log.warning("store unreachable: accepting %d unverified video id(s)", len(unknown))
            self.unverified += len(unknown)
            return set()
        with self._lock:
            self._known.update(found)
        return unknown - found

    def preload(self) -> int:
        """Learn every video id the store holds in one read, so the first action on each
        video after a start does not cost a store query on the request path. Returns how
        many ids were learned; with the store unreachable it learns none and ids are asked
        for one miss at a time, as before."""
        try:
            ids = self.store.all_video_ids()
        except Exception:
            log.warning("store unreachable: video ids will be looked up as actions arrive")
            return 0
        with self._lock:
            self._known.update(ids)
        return len(ids)

    def all_known(self, video_ids: set[str]) -> bool:
        """True when every id is already known (no store read needed)."""
        with self._lock:
            return video_ids <= self._known

    def add(self, video_ids: Sequence[str]) -> None:
        with self._lock:
            self._known.update(video_ids)


def to_action(
    req: ActionRequest, row: int | None = None, now: datetime | None = None
) -> VideoAction:
    return VideoAction(
        id=validate_event_id(req.id, row) if req.id is not None else new_event_id(),
        user_id=validate_id(req.user_id, "user_id", row),
        video_id=validate_id(req.video_id, "video_id", row),
        action_type=parse_action_type(req.action_type, row),
        timestamp=parse_timestamp(req.timestamp, row)
        if req.timestamp is not None
        else (now or datetime.now(UTC)),
        watch_ms=validate_watch_ms(req.watch_ms, row),
    )


@dataclass
class _Waiting:
    messages: Sequence[tuple[str, bytes]]
    done: Future[None] = field(default_factory=Future)


class GroupPublisher:
    """Publishes to one topic for many threads at once: each caller blocks until its own
    messages are durable, and callers that arrive while publishes are running are published
    together by the next free publisher thread (at most `max_messages` per publish).

    A `BusUnavailable` that names the undelivered messages fails only the callers that had
    one of them; any other error fails every caller of that publish.
    """

    def __init__(
        self, bus: EventBus, topic: str, max_messages: int = 2000, in_flight: int = 4
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.max_messages = max_messages
        self.in_flight = in_flight  # publishes at once: Kafka pipelines them
        self._queue: list[_Waiting] = []
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Block until the messages are durable (or raise why they are not)."""
        self.submit(messages).result()

    def submit(self, messages: Sequence[tuple[str, bytes]]) -> Future[None]:
        """Queue the messages; the future resolves once they are durable. Cancelling it
        before its publish starts withdraws them."""
        waiting = _Waiting(messages)
        with self._cond:
            if not self._threads:
                for i in range(self.in_flight):
                    thread = threading.Thread(
                        target=self._run, name=f"publish-{self.topic}-{i}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._queue.append(waiting)
            self._cond.notify()
        return waiting.done

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                group: list[_Waiting] = []
                size = 0
                while self._queue and (
                    not group or size + len(self._queue[0].messages) <= self.max_messages
                ):
                    size += len(self._queue[0].messages)
                    group.append(self._queue.pop(0))
            # From here on a caller can no longer withdraw; withdrawn ones are left out.
            group = [w for w in group if w.done.set_running_or_notify_cancel()]
            if group:
                self._publish(group)

    def _publish(self, group: list[_Waiting]) -> None:
        messages = [m for w in group for m in w.messages]
        try:
            self.bus.publish(self.topic, messages)
        except BusUnavailable as exc:
            self._fail(group, exc)
            return
        except Exception as exc:  # every caller of this publish sees what went wrong
            for w in group:
                w.done.set_exception(exc)
            return
        for w in group:
            w.done.set_result(None)

    @staticmethod
    def _fail(group: list[_Waiting], exc: BusUnavailable) -> None:
        errors = split_failure([len(w.messages) for w in group], exc)
        for w, error in zip(group, errors, strict=True):
            if error is None:
                w.done.set_result(None)
            else:
                w.done.set_exception(error)


def split_failure(sizes: Sequence[int], exc: BusUnavailable) -> list[BusUnavailable | None]:
    """`exc` of one publish of several callers' messages (`sizes` of each, in order) as each
    caller's own: its undelivered messages by its own positions, or None when all of its were
    delivered. Every caller fails when `exc` does not say which messages were lost."""
    missing = None if exc.undelivered is None else set(exc.undelivered)
    errors: list[BusUnavailable | None] = []
    start = 0
    for size in sizes:
        end = start + size
        mine = None if missing is None else [i - start for i in range(start, end) if i in missing]
        errors.append(BusUnavailable(str(exc), mine) if mine is None or mine else None)
        start = end
    return errors


class ActionIngest:
    def __init__(
        self, bus: EventBus, known_videos: KnownVideos, clock: Clock | None = None
    ) -> None:
        self.bus = bus
        self.known_videos = known_videos
        self.clock = clock or SystemClock()  # stamps actions sent without a timestamp
        self.publisher = GroupPublisher(bus, VIDEO_ACTIONS_TOPIC)
        self.accepted = 0  # events published since start (for /metrics)
        self._count_lock = threading.Lock()
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TurnBatches] = (
            weakref.WeakKeyDictionary()
        )

    def record(self, requests: Sequence[ActionRequest]) -> list[str]:
        """Validate every action, then publish them all; any bad one rejects the whole batch."""
        actions = self._validated(requests)
        missing = self.known_videos.missing({a.video_id for a in actions})
        if missing:
            row = next(i for i, a in enumerate(actions) if a.video_id in missing)
            raise UnknownVideo(actions[row].video_id, row=row if len(actions) > 1 else None)
        self.publisher.publish(self._messages(actions))
        self.count(len(actions))
        return [a.id for a in actions]

    def prepare(
        self, requests: Sequence[ActionRequest]
    ) -> tuple[list[str], list[tuple[str, bytes]]] | None:
        """The event ids and the messages to publish, validated as `record` does (raising
        as it does); None when a video id has to be looked up in the store first: call
        `record` then, where blocking is fine."""
        actions = self._validated(requests)
        if not self.known_videos.all_known({a.video_id for a in actions}):
            return None
        return [a.id for a in actions], self._messages(actions)

    def on_loop(self, loop: asyncio.AbstractEventLoop) -> TurnBatches:
        """Submissions from callers on `loop`, handed over once per turn of it."""
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = TurnBatches(self, loop)
        return turns

    def _validated(self, requests: Sequence[ActionRequest]) -> list[VideoAction]:
        now = self.clock.now()
        return [
            to_action(r, row=i if len(requests) > 1 else None, now=now)
            for i, r in enumerate(requests)
        ]

    @staticmethod
    def _messages(actions: list[VideoAction]) -> list[tuple[str, bytes]]:
        return [(a.user_id, VideoActionRecorded(a).to_json()) for a in actions]

    def count(self, n: int) -> None:
        """`n` more events were published."""
        with self._count_lock:
            self.accepted += n


_Submitted = tuple[list[tuple[str, bytes]], "asyncio.Future[None]", int]  # messages, future, events


class TurnBatches:
    """Submissions without blocking, for callers on one event loop, handed over once per turn.

    Submitted one request at a time, each action costs a wake-up of a publisher thread (a
    `Condition.notify`) and, once durable, a thread-safe call back into the loop
    (`asyncio.wrap_future`): together about a fifth of `POST /video_action`'s GIL time in a
    profile of the served API. Here what the requests submit during one turn of the loop goes
    to the publisher at the start of the next turn as one submission (one wake-up, one
    future), and their futures are settled on the loop by one call once it is durable or
    failed; each caller still gets its own outcome (`split_failure`: only the callers whose
    messages were lost fail).

    A caller's future cancelled before the hand-over withdraws its messages; after it, they
    are published all the same (a request cancelled meanwhile gets no answer anyway).
    """

    def __init__(self, ingest: ActionIngest, loop: asyncio.AbstractEventLoop) -> None:
        self.ingest = ingest
        # weakly: `ActionIngest` keeps this per loop in a WeakKeyDictionary, which a strong
        # reference from its value would keep alive for ever
        self._loop = weakref.ref(loop)
        self._turn: list[_Submitted] = []

    def submit(
        self, requests: Sequence[ActionRequest]
    ) -> tuple[list[str], asyncio.Future[None]] | None:
        """Validate and queue the actions (raising as `record` does); their ids and a future
        of this loop that resolves once they are durable. None when a video id has to be
        looked up in the store first (`ActionIngest.prepare`). Call it on the loop."""
        prepared = self.ingest.prepare(requests)
        if prepared is None:
            return None
        ids, messages = prepared
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._turn:
            loop.call_soon(self._hand_over)
        self._turn.append((messages, future, len(ids)))
        return ids, future

    def _hand_over(self) -> None:
        turn = [t for t in self._turn if not t[1].cancelled()]
        self._turn = []
        if not turn:
            return
        done = self.ingest.publisher.submit([m for messages, _, _ in turn for m in messages])
        done.add_done_callback(partial(self._settle_soon, turn))

    def _settle_soon(self, turn: list[_Submitted], done: Future[None]) -> None:
        loop = self._loop()
        if loop is None:  # gone, and everyone who waited on it
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(self._settle, turn, done)

    def _settle(self, turn: list[_Submitted], done: Future[None]) -> None:
        error = done.exception()
        if error is None:
            errors: list[BaseException | None] = [None] * len(turn)
        elif isinstance(error, BusUnavailable):
            errors = [*split_failure([len(messages) for messages, _, _ in turn], error)]
        else:  # every caller of the publish sees what went wrong
            errors = [error] * len(turn)
        published = 0
        for (_, future, events), mine in zip(turn, errors, strict=True):
            if mine is None:
                published += events
            if future.cancelled():
                continue
            if mine is None:
                future.set_result(None)
            else:
                future.set_exception(mine)
        if published:
            self.ingest.count(published)
