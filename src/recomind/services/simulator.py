"""A synthetic short-video platform: a catalog, viewers with hidden tastes, and what they do.

Tags come in topic clusters (so some tags go together, as on a real platform);
each video has a cluster, 2-4 tags and a latent quality with a long tail; each
viewer has hidden tastes over clusters and tags. Viewers are shown a mix of
popular and random videos; they watch, like or skip according to how well a
video fits their taste. Everything is seeded, so a scale and a seed give the
same data every time. Used by `recomind demo`, the tests and the benchmarks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from recomind.domain.model import ActionType, User, Video, VideoAction

TOPICS: dict[str, tuple[str, ...]] = {
    "comedy": ("funny", "prank", "memes", "standup"),
    "animals": ("cats", "dogs", "pets", "cute"),
    "food": ("cooking", "recipes", "baking", "streetfood"),
    "sport": ("football", "basketball", "fitness", "skate"),
    "music": ("music", "dance", "guitar", "singing"),
    "tech": ("tech", "gadgets", "coding", "gaming"),
    "travel": ("travel", "hiking", "beach", "cities"),
}
_ADJECTIVES = ("Amazing", "Quick", "Best", "Daily", "Wild", "Tiny", "Epic", "Chill", "Ultimate")


@dataclass(frozen=True)
class SimulatedWorld:
    videos: list[Video]
    users: list[User]
    actions: list[VideoAction]
    tastes: np.ndarray  # users x tags: each viewer's hidden liking of each tag
    tags: list[str]
    video_tag_matrix: np.ndarray  # videos x tags, 0/1
    quality: np.ndarray  # per video

    def affinity(self, user: int) -> np.ndarray:
        """How much a viewer would enjoy each video (the oracle's score)."""
        return self.affinity_for(self.tastes[user])

    def affinity_for(self, taste: np.ndarray) -> np.ndarray:
        """How much a viewer with these hidden tastes (a weight per tag) would enjoy each video."""
        fit = self.video_tag_matrix @ taste
        fit = fit / np.maximum(self.video_tag_matrix.sum(axis=1), 1)
        return np.asarray(fit + 0.15 * np.log(self.quality), dtype=np.float64)


def draw_taste(rng: np.random.Generator, tags: list[str]) -> np.ndarray:
    """A viewer's hidden tastes: one or two loved topics, with a little taste for single tags."""
    tag_col = {t: j for j, t in enumerate(tags)}
    topics = list(TOPICS)
    taste = np.zeros(len(tags))
    for topic in rng.choice(len(topics), size=int(rng.integers(1, 3)), replace=False):
        for t in TOPICS[topics[topic]]:
            taste[tag_col[t]] += rng.uniform(0.6, 1.0)
    return taste + rng.uniform(0, 0.25, size=len(tags))


def simulate(
    n_videos: int = 500,
    n_users: int = 200,
    actions_per_user: int = 40,
    days: float = 7.0,
    seed: int = 7,
    now: datetime | None = None,
) -> SimulatedWorld:
    rng = np.random.default_rng(seed)
    now = now or datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    topics = list(TOPICS)
    tags = [t for topic in topics for t in TOPICS[topic]]
    tag_col = {t: j for j, t in enumerate(tags)}

    videos: list[Video] = []
    vt = np.zeros((n_videos, len(tags)))
    creators_topic = rng.integers(0, len(topics), size=max(5, n_videos // 10))
    quality = rng.lognormal(0.0, 1.0, size=n_videos)
    for i in range(n_videos):
        creator = int(rng.integers(0, len(creators_topic)))
        topic = (
            topics[creators_topic[creator]]
            if rng.random() < 0.8
            else topics[rng.integers(len(topics))]
        )
        own = list(TOPICS[topic])
        chosen = [own[rng.integers(len(own))]]
        for _ in range(int(rng.integers(1, 4))):
            pool = own if rng.random() < 0.75 else tags
            chosen.append(pool[rng.integers(len(pool))])
        chosen = list(dict.fromkeys(chosen))
        for t in chosen:
            vt[i, tag_col[t]] = 1.0
        created = start - timedelta(days=float(rng.uniform(0, 30)))
        vid = f"v{i + 1}"
        videos.append(
            Video(
                video_id=vid,
                title=f"{_ADJECTIVES[i % len(_ADJECTIVES)]} {chosen[0]} #{i + 1}",
                url=f"https://cdn.recomind.example/videos/{vid}.mp4",
                tags=tuple(chosen),
                creator_id=f"c{creator + 1}",
                created_at=created,
                duration_ms=int(rng.integers(5_000, 60_000)),
            )
        )

    tastes = np.array([draw_taste(rng, tags) for _ in range(n_users)]).reshape(n_users, len(tags))

    world = SimulatedWorld(videos, [], [], tastes, tags, vt, quality)
    popularity = quality / quality.sum()
    users: list[User] = []
    actions: list[VideoAction] = []
    for u in range(n_users):
        uid = f"u{u + 1}"
        joined = start + timedelta(days=float(rng.uniform(0, days * 0.3)))
        users.append(User(uid, f"Viewer {u + 1}", joined))
        fit = world.affinity(u)
        # Viewers are shown a mix: popular, random, and (a recommender's doing) on-taste videos.
        on_taste = np.exp(3.0 * fit)
        on_taste /= on_taste.sum()
        mix = 0.4 * popularity + 0.3 / n_videos + 0.3 * on_taste
        mix /= mix.sum()
        n = max(3, int(rng.poisson(actions_per_user)))
        shown = rng.choice(n_videos, size=min(n, n_videos), replace=False, p=mix)
        times = np.sort(rng.uniform(0, (now - joined).total_seconds(), size=len(shown)))
        for v, offset in zip(shown, times, strict=True):
            p_like = 1 / (1 + np.exp(-6 * (fit[v] - 0.55)))
            p_skip = 1 / (1 + np.exp(6 * (fit[v] - 0.25)))
            r = rng.random()
            kind = (
                ActionType.LIKE
                if r < p_like
                else ActionType.SKIP
                if r < p_like + p_skip
                else ActionType.VIEW
            )
            duration = videos[v].duration_ms or 30_000
            # A viewer watches more of a video that fits their taste.
            share = float(np.clip(rng.normal(0.2 + 0.8 * fit[v], 0.15), 0.05, 1.0))
            watched = (
                duration
                if kind is ActionType.LIKE
                else int(duration * (0.1 if kind is ActionType.SKIP else share))
            )
            actions.append(
                VideoAction(
                    id=str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | len(actions))),
                    user_id=uid,
                    video_id=videos[v].video_id,
                    action_type=kind,
                    timestamp=joined + timedelta(seconds=float(offset)),
                    watch_ms=watched,
                )
            )
    return SimulatedWorld(videos, users, actions, tastes, tags, vt, quality)


def video_row(v: Video) -> dict[str, object]:
    """A video in `recomind import`'s field names."""
    return {
        "video_id": v.video_id,
        "title": v.title,
        "url": v.url,
        "tags": list(v.tags),
        "creator_id": v.creator_id,
        "created_at": v.created_at.isoformat(),
        "duration_ms": v.duration_ms,
    }


def import_rows(world: SimulatedWorld) -> dict[str, list[dict[str, object]]]:
    """The world as rows in `recomind import`'s field names, per kind."""
    return {
        "videos": [video_row(v) for v in world.videos],
        "users": [
            {"user_id": u.user_id, "name": u.name, "created_at": u.created_at.isoformat()}
            for u in world.users
        ],
        "actions": [
            {
                "id": a.id,
                "user_id": a.user_id,
                "video_id": a.video_id,
                "action_type": a.action_type.value,
                "timestamp": a.timestamp.timestamp(),
                "watch_ms": a.watch_ms,
            }
            for a in world.actions
        ],
    }


def export_parquet(world: SimulatedWorld, folder: Path) -> dict[str, Path]:
    """Write videos.parquet, users.parquet and actions.parquet, ready for `recomind import`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, rows in import_rows(world).items():
        paths[kind] = folder / f"{kind}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), paths[kind])
    return paths
