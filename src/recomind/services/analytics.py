"""Streaming features for training: the `recomind-analytics` consumer and their readers.

Each batch of events becomes delta rows for three feature tables, one lake file per
bus partition named by its offset range (so a replayed batch writes nothing). An event
the topic holds twice (a producer or spool resend, ADR 0003) is counted once: the lake
keeps a ledger of the event ids counted, per partition and dt/hour.

- `video_daily`: per video and day: events, views, likes, skips, watch time, completions;
- `viewer_daily`: per viewer and day: events, likes, skips, watch time;
- `viewer_tag_weekly`: per viewer, tag and ISO week: views, likes, skips.

Readers sum the deltas, which gives per-tag counts this week, skip rates and
completion rates for the trainer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from recomind.domain.model import ActionType, Video, VideoAction
from recomind.domain.ports import BusRecord, Lake, LakeRecord

COMPLETED_SHARE = 0.9  # a view that covers 90% of the video counts as completed
TABLES = ("video_daily", "viewer_daily", "viewer_tag_weekly")
_COUNTS = {ActionType.VIEW: "views", ActionType.LIKE: "likes", ActionType.SKIP: "skips"}


def _day(ts: datetime) -> str:
    return f"{ts.astimezone(UTC):%Y-%m-%d}"


def _week(ts: datetime) -> str:
    year, week, _ = ts.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def feature_rows(
    actions: Iterable[VideoAction], videos: dict[str, Video]
) -> dict[str, list[dict[str, Any]]]:
    """The delta rows of every feature table for these actions."""
    video_daily: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(("events", "views", "likes", "skips", "watch_ms", "completions"), 0)
    )
    viewer_daily: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(("events", "views", "likes", "skips", "watch_ms"), 0)
    )
    tag_weekly: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(("views", "likes", "skips"), 0)
    )
    for a in actions:
        video = videos.get(a.video_id)
        kind = _COUNTS[a.action_type]
        watched = a.watch_ms or 0
        v = video_daily[(a.video_id, _day(a.timestamp))]
        u = viewer_daily[(a.user_id, _day(a.timestamp))]
        for row in (v, u):
            row["events"] += 1
            row[kind] += 1
            row["watch_ms"] += watched
        if (
            video is not None
            and video.duration_ms
            and watched >= COMPLETED_SHARE * video.duration_ms
        ):
            v["completions"] += 1
        for tag in video.tags if video is not None else ():
            tag_weekly[(a.user_id, tag, _week(a.timestamp))][kind] += 1
    return {
        "video_daily": [{"video_id": k, "dt": d, **c} for (k, d), c in video_daily.items()],
        "viewer_daily": [{"user_id": k, "dt": d, **c} for (k, d), c in viewer_daily.items()],
        "viewer_tag_weekly": [
            {"user_id": u, "tag": t, "week": w, **c} for (u, t, w), c in tag_weekly.items()
        ],
    }


def write_batch_features(
    lake: Lake, batch: Sequence[tuple[BusRecord, VideoAction]], videos: dict[str, Video]
) -> int:
    """Write each partition's events not yet counted in each table; returns files written.

    Second copies of an event id are left out first (the ledger of counted ids). A replayed
    batch may overlap what was written before its crash only in part, so each table counts
    exactly the offsets past its last written one. The ledger is written last: a crash before
    it leaves the same ids uncounted, and the tables' offsets keep them from being counted
    twice on the replay."""
    fresh_records = lake.uncounted([LakeRecord(r.partition, r.offset, a) for r, a in batch])
    per_partition: dict[int, list[tuple[LakeRecord, VideoAction]]] = defaultdict(list)
    for record in fresh_records:
        per_partition[record.partition].append((record, record.action))
    written = 0
    for table in TABLES:
        done = lake.feature_offsets(table)
        for partition, items in sorted(per_partition.items()):
            fresh = [(r, a) for r, a in items if r.offset > done.get(partition, -1)]
            if not fresh:
                continue
            rows = feature_rows((a for _, a in fresh), videos)[table]
            first, last = min(r.offset for r, _ in fresh), max(r.offset for r, _ in fresh)
            written += lake.write_features(table, partition, first, last, rows)
    lake.mark_counted(fresh_records)
    return written


def summed(lake: Lake, table: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """A feature table with its deltas summed per key."""
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in lake.read_features(table):
        key = tuple(row[k] for k in keys)
        into = totals.setdefault(key, dict(zip(keys, key, strict=True)))
        for name, value in row.items():
            if name not in keys:
                into[name] = into.get(name, 0) + value
    return list(totals.values())


def video_rates(lake: Lake) -> dict[str, dict[str, float]]:
    """Per video, over all days: skip rate and completion rate (of its events)."""
    per_video: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in summed(lake, "video_daily", ("video_id", "dt")):
        for name in ("events", "skips", "completions"):
            per_video[row["video_id"]][name] += row[name]
    return {
        v: {
            "skip_rate": c["skips"] / c["events"],
            "completion_rate": c["completions"] / c["events"],
        }
        for v, c in per_video.items()
        if c["events"]
    }
