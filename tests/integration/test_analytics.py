"""The analytics consumer: feature deltas in the lake add up to the truth, replays add nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
from recomind.domain.model import ActionType
from recomind.services.analytics import summed, video_rates, write_batch_features
from recomind.services.simulator import simulate


def test_features_sum_to_the_events_and_replays_write_nothing(tmp_path: Path) -> None:
    world = simulate(n_videos=60, n_users=30, actions_per_user=20, seed=5)
    recomind = bootstrap(Settings(home=tmp_path, train_interval_seconds=0))
    recomind.store.add_videos(world.videos)
    messages = [(a.user_id, VideoActionRecorded(a).to_json()) for a in world.actions]
    for start in range(0, len(messages), 100):
        recomind.bus.publish(VIDEO_ACTIONS_TOPIC, messages[start : start + 100])
    recomind.drain()

    lake = recomind.lake
    per_video = summed(lake, "video_daily", ("video_id", "dt"))
    assert sum(r["events"] for r in per_video) == len(world.actions)
    likes = Counter(a.video_id for a in world.actions if a.action_type is ActionType.LIKE)
    got_likes: Counter[str] = Counter()
    for r in per_video:
        got_likes[r["video_id"]] += r["likes"]
    assert got_likes == likes

    tags = {v.video_id: v.tags for v in world.videos}
    skips_by_tag = Counter(
        (a.user_id, t)
        for a in world.actions
        if a.action_type is ActionType.SKIP
        for t in tags[a.video_id]
    )
    got_skips: Counter[tuple[str, str]] = Counter()
    for r in summed(lake, "viewer_tag_weekly", ("user_id", "tag", "week")):
        got_skips[(r["user_id"], r["tag"])] += r["skips"]
    assert +got_skips == skips_by_tag

    rates = video_rates(lake)
    assert all(
        0.0 <= r["skip_rate"] <= 1.0 and 0.0 <= r["completion_rate"] <= 1.0 for r in rates.values()
    )
    assert any(r["completion_rate"] > 0 for r in rates.values())

    # A replay of an already-written batch (a crash before the offsets were committed) adds nothing.
    consumer = recomind.bus.subscribe("replay", VIDEO_ACTIONS_TOPIC)
    records = consumer.poll(10_000, 1.0)
    batch = [(r, VideoActionRecorded.from_json(r.value).action) for r in records]
    videos = {v.video_id: v for v in world.videos}
    assert write_batch_features(lake, batch, videos) == 0
    assert sum(r["events"] for r in summed(lake, "video_daily", ("video_id", "dt"))) == len(
        world.actions
    )
    recomind.close()


def test_a_replay_that_overlaps_in_part_counts_only_the_new_events(tmp_path: Path) -> None:
    world = simulate(n_videos=20, n_users=5, actions_per_user=10, seed=2)
    recomind = bootstrap(Settings(home=tmp_path, train_interval_seconds=0))
    videos = {v.video_id: v for v in world.videos}
    recomind.bus.publish(
        VIDEO_ACTIONS_TOPIC, [("same-key", VideoActionRecorded(a).to_json()) for a in world.actions]
    )
    records = recomind.bus.subscribe("replay", VIDEO_ACTIONS_TOPIC).poll(10_000, 1.0)
    batch = [(r, VideoActionRecorded.from_json(r.value).action) for r in records]
    assert len({r.partition for r, _ in batch}) == 1 and len(batch) == len(world.actions)
    half = len(batch) // 2
    write_batch_features(recomind.lake, batch[:half], videos)  # written, then a crash
    write_batch_features(recomind.lake, batch, videos)  # the replay re-reads from the start
    events = sum(r["events"] for r in summed(recomind.lake, "video_daily", ("video_id", "dt")))
    assert events == len(world.actions)
    recomind.close()
