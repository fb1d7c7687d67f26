"""Ingest validates before it publishes, and does not depend on the store being up."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recomind.domain.clock import ManualClock
from recomind.domain.errors import BusUnavailable, InvalidInput, UnknownVideo
from recomind.domain.events import VideoActionRecorded
from recomind.services.ingest import ActionIngest, ActionRequest, GroupPublisher, KnownVideos


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        self.published.extend(messages)


class CatalogStore:
    def __init__(self, videos: set[str], up: bool = True) -> None:
        self.videos = videos
        self.up = up
        self.asked = 0

    def existing_video_ids(self, ids: Any) -> set[str]:
        self.asked += 1
        if not self.up:
            raise ConnectionError("database is down")
        return set(ids) & self.videos

    def all_video_ids(self) -> set[str]:
        self.asked += 1
        if not self.up:
            raise ConnectionError("database is down")
        return set(self.videos)


def ingest(store: CatalogStore) -> tuple[ActionIngest, RecordingBus]:
    bus = RecordingBus()
    return ActionIngest(bus, KnownVideos(store)), bus  # type: ignore[arg-type]


def test_known_videos_are_asked_for_once() -> None:
    store = CatalogStore({"v1"})
    service, bus = ingest(store)
    for _ in range(3):
        service.record([ActionRequest("u1", "v1", "like")])
    assert store.asked == 1 and len(bus.published) == 3


def test_preloaded_ids_need_no_store_read_and_unknown_ones_still_do() -> None:
    store = CatalogStore({"v1", "v2"})
    service, bus = ingest(store)
    assert service.known_videos.preload() == 2
    service.record([ActionRequest("u1", "v1", "like"), ActionRequest("u1", "v2", "view")])
    assert store.asked == 1 and len(bus.published) == 2
    with pytest.raises(UnknownVideo):
        service.record([ActionRequest("u1", "v9", "like")])
    assert store.asked == 2 and len(bus.published) == 2


def test_preload_with_the_store_down_learns_nothing_and_ingest_goes_on() -> None:
    store = CatalogStore({"v1"}, up=False)
    service, bus = ingest(store)
    assert service.known_videos.preload() == 0
    store.up = True
    service.record([ActionRequest("u1", "v1", "like")])
    assert store.asked == 2 and len(bus.published) == 1


def test_unknown_video_rejects_the_whole_batch() -> None:
    service, bus = ingest(CatalogStore({"v1"}))
    with pytest.raises(UnknownVideo) as err:
        service.record([ActionRequest("u1", "v1", "like"), ActionRequest("u1", "v9", "like")])
    assert err.value.row == 1 and bus.published == []


def test_invalid_action_publishes_nothing() -> None:
    service, bus = ingest(CatalogStore({"v1"}))
    with pytest.raises(InvalidInput):
        service.record([ActionRequest("u1", "v1", "like"), ActionRequest("u1", "v1", "meh")])
    assert bus.published == []


def test_store_down_lets_actions_through_unverified() -> None:
    store = CatalogStore({"v1"}, up=False)
    service, bus = ingest(store)
    ids = service.record([ActionRequest("u1", "v2", "view")])
    assert len(ids) == 1 and len(bus.published) == 1
    assert service.known_videos.unverified == 1


def test_actions_without_a_timestamp_are_stamped_by_the_clock() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 9, tzinfo=UTC))
    bus = RecordingBus()
    service = ActionIngest(bus, KnownVideos(CatalogStore({"v1"})), clock)  # type: ignore[arg-type]
    clock.advance(timedelta(days=1))
    service.record(
        [
            ActionRequest("u1", "v1", "like"),
            ActionRequest("u1", "v1", "view", timestamp="2026-01-05T10:00:00Z"),
        ]
    )
    stamped = [VideoActionRecorded.from_json(value).action.timestamp for _, value in bus.published]
    assert stamped == [clock.now(), datetime(2026, 1, 5, 10, tzinfo=UTC)]


class GatedBus:
    """Holds each publish until released; records the size of every publish."""

    def __init__(self, fail: BusUnavailable | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        self.sizes.append(len(messages))
        if self.fail is not None and len(self.sizes) > 1:
            raise self.fail


def publish_in_threads(
    publisher: GroupPublisher, batches: list[list[tuple[str, bytes]]]
) -> list[BaseException | None]:
    outcome: list[BaseException | None] = [None] * len(batches)

    def one(i: int) -> None:
        try:
            publisher.publish(batches[i])
        except BaseException as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcome


def test_callers_waiting_on_a_publish_go_out_together() -> None:
    bus = GatedBus()
    publisher = GroupPublisher(bus, "t", in_flight=1)  # type: ignore[arg-type]
    first = threading.Thread(target=publisher.publish, args=([("u0", b"0")],))
    first.start()
    assert bus.entered.wait(5)  # the first publish is held; the next five queue behind it
    results: list[BaseException | None] = []
    waiter = threading.Thread(
        target=lambda: results.extend(
            publish_in_threads(publisher, [[(f"u{i}", b"x")] * 2 for i in range(5)])
        )
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while len(publisher._queue) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    bus.gate.set()
    first.join(10)
    waiter.join(10)
    assert bus.sizes == [1, 10] and results == [None] * 5


def test_an_undelivered_message_fails_only_its_own_caller() -> None:
    bus = GatedBus(fail=BusUnavailable("broker away", undelivered=[3]))
    publisher = GroupPublisher(bus, "t", in_flight=1)  # type: ignore[arg-type]
    first = threading.Thread(target=publisher.publish, args=([("u0", b"0")],))
    first.start()
    assert bus.entered.wait(5)
    results: list[BaseException | None] = []
    waiter = threading.Thread(
        target=lambda: results.extend(
            publish_in_threads(publisher, [[("a", b"1"), ("a", b"2")], [("b", b"3"), ("b", b"4")]])
        )
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while len(publisher._queue) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    bus.gate.set()
    first.join(10)
    waiter.join(10)
    # the group was [a1, a2, b3, b4] in some order of arrival; position 3 is the second
    # caller's second message, so exactly one caller fails, and with its own position 1
    failed = [r for r in results if r is not None]
    assert len(failed) == 1 and isinstance(failed[0], BusUnavailable)
    assert failed[0].undelivered == [1]


def test_a_loop_submission_needs_known_videos_and_counts_once_durable() -> None:
    store = CatalogStore({"v1"})
    service, bus = ingest(store)

    async def submit(action: str) -> tuple[list[str], asyncio.Future[None]] | None:
        return service.on_loop(asyncio.get_running_loop()).submit(
            [ActionRequest("u2", "v1", action)]
        )

    async def durable(action: str) -> list[str]:
        submitted = await submit(action)
        assert submitted is not None
        await asyncio.wait_for(submitted[1], 5)
        return submitted[0]

    assert asyncio.run(submit("like")) is None  # not known yet: left to `record`
    assert store.asked == 0 and bus.published == []
    service.record([ActionRequest("u1", "v1", "like")])  # asks the store once
    assert len(asyncio.run(durable("view"))) == 1
    assert len(bus.published) == 2 and service.accepted == 2 and store.asked == 1
    with pytest.raises(InvalidInput):
        asyncio.run(submit("meh"))


def test_a_withdrawn_submission_is_never_published() -> None:
    bus = GatedBus()
    publisher = GroupPublisher(bus, "t", in_flight=1)  # type: ignore[arg-type]
    held = publisher.submit([("u0", b"0")])
    assert bus.entered.wait(5)
    withdrawn = publisher.submit([("u1", b"1")])
    kept = publisher.submit([("u2", b"2")])
    assert withdrawn.cancel()
    bus.gate.set()
    assert held.result(5) is None and kept.result(5) is None
    assert bus.sizes == [1, 1]  # u1 left out of the second publish


class SizedBus:
    """Records every publish; fails the messages whose values are in `lose`."""

    def __init__(self, lose: frozenset[bytes] = frozenset()) -> None:
        self.publishes: list[list[tuple[str, bytes]]] = []
        self.lose = lose

    def publish(self, topic: str, messages: Sequence[tuple[str, bytes]]) -> None:
        self.publishes.append(list(messages))
        lost = [i for i, (_, value) in enumerate(messages) if value in self.lose]
        if lost:
            raise BusUnavailable("broker away", undelivered=lost)


def on_loop(bus: SizedBus) -> ActionIngest:
    service = ActionIngest(bus, KnownVideos(CatalogStore({"v1"})))  # type: ignore[arg-type]
    service.known_videos.preload()
    return service


def test_submissions_of_one_turn_of_the_loop_are_published_together() -> None:
    bus = SizedBus()
    service = on_loop(bus)

    async def turn() -> list[list[str]]:
        submitted = [
            service.on_loop(asyncio.get_running_loop()).submit(
                [ActionRequest(f"u{i}", "v1", "like")]
            )
            for i in range(5)
        ]
        assert all(s is not None for s in submitted)
        for _, durable in submitted:  # type: ignore[misc]
            await asyncio.wait_for(durable, 5)
        return [ids for ids, _ in submitted]  # type: ignore[misc]

    ids = asyncio.run(turn())
    assert [len(p) for p in bus.publishes] == [5]  # one publish for the whole turn
    published = [VideoActionRecorded.from_json(v).action.id for _, v in bus.publishes[0]]
    assert published == [i for (i,) in ids] and service.accepted == 5


def test_a_lost_message_of_a_turn_fails_only_its_own_request() -> None:
    service = on_loop(bus := SizedBus())
    outcomes: list[BaseException | None] = []

    async def turn() -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(3):
            submitted = service.on_loop(loop).submit([ActionRequest(f"u{i}", "v1", "like")])
            assert submitted is not None
            futures.append(submitted[1])
        # the second request's event is the one the broker loses
        bus.lose = frozenset({service.on_loop(loop)._turn[1][0][0][1]})
        for future in futures:
            try:
                await asyncio.wait_for(future, 5)
                outcomes.append(None)
            except BusUnavailable as exc:
                outcomes.append(exc)

    asyncio.run(turn())
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], BusUnavailable) and outcomes[1].undelivered == [0]
    assert service.accepted == 2


def test_a_request_cancelled_before_the_hand_over_is_never_published() -> None:
    service = on_loop(bus := SizedBus())

    async def turn() -> None:
        turns = service.on_loop(asyncio.get_running_loop())
        gone = turns.submit([ActionRequest("u1", "v1", "like")])
        kept = turns.submit([ActionRequest("u2", "v1", "like")])
        assert gone is not None and kept is not None
        gone[1].cancel()  # the request went away within the same turn
        await asyncio.wait_for(kept[1], 5)

    asyncio.run(turn())
    users = [key for publish in bus.publishes for key, _ in publish]
    assert users == ["u2"] and service.accepted == 1


def test_a_turn_submission_of_an_unknown_video_is_left_to_record() -> None:
    service = on_loop(bus := SizedBus())

    async def turn() -> None:
        turns = service.on_loop(asyncio.get_running_loop())
        assert turns.submit([ActionRequest("u1", "v9", "like")]) is None
        with pytest.raises(InvalidInput):
            turns.submit([ActionRequest("u1", "v1", "meh")])
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert bus.publishes == [] and service.accepted == 0


def test_a_closed_loop_is_not_kept_alive_by_its_turn_batches() -> None:
    service = on_loop(SizedBus())
    loop = asyncio.new_event_loop()
    service.on_loop(loop)
    assert len(service._turns) == 1
    loop.close()
    del loop
    gc.collect()
    assert len(service._turns) == 0
