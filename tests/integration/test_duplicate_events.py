"""One event twice on the topic (a producer or spool resend, ADR 0003) is counted once by every
sink: the store by its primary key, the lake and the feature tables by the event-id memory of
the partition's dt/hour folder.

Runs on the embedded stack always, and on Apache Kafka + S3 when RECOMIND_TEST_KAFKA_URL and
RECOMIND_TEST_S3_URL are set (scripts/services/start.sh kafka s3), each run in its own bus
namespace and lake prefix.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recomind.adapters.bus.kafka import KafkaBus
from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
from recomind.domain.model import ActionType, VideoAction
from recomind.domain.validation import new_event_id
from recomind.services.analytics import summed
from recomind.services.simulator import simulate

REAL = bool(os.environ.get("RECOMIND_TEST_KAFKA_URL") and os.environ.get("RECOMIND_TEST_S3_URL"))


BROKER_PID = Path(os.environ.get("RECOMIND_SERVICES_DIR", "/nonexistent")) / "kafka/kafka.pid"


def settings(kind: str, home: Path, run: str | None = None, publish_timeout: int = 5) -> Settings:
    if kind == "embedded":
        return Settings(home=home, train_interval_seconds=0)
    run = run or uuid.uuid4().hex[:8]
    return Settings(
        home=home,
        train_interval_seconds=0,
        bus_url=f"{os.environ['RECOMIND_TEST_KAFKA_URL']}?namespace=d{run}"
        f"&publish_timeout={publish_timeout}",
        lake_url=f"{os.environ['RECOMIND_TEST_S3_URL']}/d{run}",
    )


@pytest.mark.parametrize(
    "kind",
    [
        "embedded",
        pytest.param(
            "kafka+s3",
            marks=pytest.mark.skipif(
                not REAL, reason="RECOMIND_TEST_KAFKA_URL / RECOMIND_TEST_S3_URL are not set"
            ),
        ),
    ],
)
def test_an_event_published_twice_is_counted_once_by_every_sink(kind: str, tmp_path: Path) -> None:
    world = simulate(n_videos=30, n_users=8, actions_per_user=6, seed=11)
    actions = world.actions
    recomind = bootstrap(settings(kind, tmp_path))
    try:
        recomind.store.add_videos(world.videos)
        messages = [(a.user_id, VideoActionRecorded(a).to_json()) for a in actions]
        twice = messages[::3]  # a third of the events are resent
        # As the spool does after lost acknowledgements: the batch, then the same batch again
        # (adjacent offsets, as in the issue), and a resend later, after other events.
        recomind.bus.publish(VIDEO_ACTIONS_TOPIC, messages[:20])
        recomind.bus.publish(VIDEO_ACTIONS_TOPIC, [m for m in twice if m in messages[:20]])
        recomind.bus.publish(VIDEO_ACTIONS_TOPIC, messages[20:])
        recomind.drain()  # the lake applies one poll at a time here: copies across batches
        recomind.bus.publish(VIDEO_ACTIONS_TOPIC, twice)
        assert recomind.drain() >= len(twice)

        assert recomind.store.count_actions() == len(actions)
        lake = recomind.lake
        assert lake.count_actions() == len(actions)
        assert sorted(a.id for a in lake.read_actions()) == sorted(a.id for a in actions)
        per_video = summed(lake, "video_daily", ("video_id", "dt"))
        assert sum(r["events"] for r in per_video) == len(actions)
        per_viewer = summed(lake, "viewer_daily", ("user_id", "dt"))
        assert sum(r["events"] for r in per_viewer) == len(actions)
    finally:
        recomind.close()


@pytest.mark.skipif(
    not REAL or not BROKER_PID.is_file(),
    reason="needs Kafka + S3 started by scripts/services/start.sh (its broker pid file)",
)
def test_a_stalled_broker_leaves_exactly_one_copy_of_each_event_in_every_sink(
    tmp_path: Path,
) -> None:
    """The broker stops answering (SIGSTOP) while events are published: requests in flight time
    out, are spooled and sent again, and the broker may write them too once it runs (SIGCONT).
    However many copies the topic ends up holding, each sink counts every event once."""
    world = simulate(n_videos=20, n_users=10, actions_per_user=1, seed=4)
    run = uuid.uuid4().hex[:8]
    recomind = bootstrap(settings("kafka+s3", tmp_path, run, publish_timeout=2))
    sent: list[str] = []
    stop = threading.Event()

    def publish(worker: int) -> None:
        n = 0
        while not stop.is_set():
            batch = []
            for _ in range(5):
                n += 1
                action = VideoAction(
                    id=new_event_id(),
                    user_id=f"viewer{(worker * 7 + n) % 40}",
                    video_id=world.videos[n % len(world.videos)].video_id,
                    action_type=(ActionType.VIEW, ActionType.LIKE, ActionType.SKIP)[n % 3],
                    timestamp=datetime.now(UTC),
                )
                batch.append((action.user_id, VideoActionRecorded(action).to_json()))
            recomind.bus.publish(VIDEO_ACTIONS_TOPIC, batch)
            sent.extend(VideoActionRecorded.from_json(v).action.id for _, v in batch)
            time.sleep(0.02)

    pid = int(BROKER_PID.read_text())
    try:
        recomind.store.add_videos(world.videos)
        threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(6.0)  # past publish_timeout + the report grace: publishes spool
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(60)
        deadline = time.monotonic() + 60
        while recomind.bus.spooled() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recomind.bus.spooled() == 0
        recomind.drain()

        reader = KafkaBus.from_url(os.environ["RECOMIND_TEST_KAFKA_URL"])
        consumer = reader.subscribe(f"count-{run}", f"d{run}.{VIDEO_ACTIONS_TOPIC}")
        on_topic: Counter[str] = Counter()
        quiet = 0
        while quiet < 3:
            got = consumer.poll(5000, 1.0)
            quiet = 0 if got else quiet + 1
            on_topic.update(VideoActionRecorded.from_json(r.value).action.id for r in got)
        consumer.close()
        reader.close()
        print(
            f"sent {len(sent)}, on the topic {sum(on_topic.values())}, "
            f"twice {sum(1 for n in on_topic.values() if n > 1)}"
        )
        assert set(on_topic) == set(sent)  # nothing lost

        assert recomind.store.count_actions() == len(sent)
        lake = recomind.lake
        assert lake.count_actions() == len(sent)
        assert Counter(a.id for a in lake.read_actions()) == Counter(sent)
        per_video = summed(lake, "video_daily", ("video_id", "dt"))
        assert sum(r["events"] for r in per_video) == len(sent)
    finally:
        stop.set()
        os.kill(pid, signal.SIGCONT)
        recomind.close()
