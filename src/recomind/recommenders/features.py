"""What the learned ranker sees: one feature row per (viewer, candidate video).

Everything here is computed from the data the source models were fitted on and the
viewer's own history, at the viewer's reference time (their latest action), so the same
code builds the ranker's training rows (sources fitted on an earlier window) and its
serving rows (sources refitted on everything) without looking past that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recomind.recommenders.data import History, TrainingData

DAY = 86_400.0
# Windows (days) of "how many positive actions did this video get just before now".
RECENT_WINDOWS = (1.0, 7.0, 30.0)
VIEWER_FEATURES = ("log_history", "positive_share", "skip_share", "log_tenure_days")
# Counts enter as log shares of all positive actions in the data: the ranker is trained on a
# window holding less of the log than the one it serves from (64% against 80% of it in
# `evaluate`), and raw counts would mean other videos there (docs/evaluation.md, "Simulator").
ITEM_FEATURES = (
    "log_positive_share",
    "like_rate",
    "skip_rate",
    "log_age_days",
    *(f"log_recent_{int(w)}d_share" for w in RECENT_WINDOWS),
)
PAIR_FEATURES = ("tag_cosine", "creator_share")


def source_feature_names(sources: tuple[str, ...]) -> list[str]:
    return [f"{s}_{kind}" for s in sources for kind in ("z", "rank")]


def feature_names(sources: tuple[str, ...]) -> list[str]:
    return [*source_feature_names(sources), *VIEWER_FEATURES, *ITEM_FEATURES, *PAIR_FEATURES]


@dataclass
class ItemStats:
    """Per-video counts and a timeline of positive actions, for popularity features at any time.

    The timeline is one sorted int64 key per positive action, item * span + seconds since
    `t0`, so "positive actions of these items in (t - w, t]" is two vectorised searchsorted
    calls for any set of items.
    """

    positives: np.ndarray  # float64 per item
    likes: np.ndarray
    skips: np.ndarray
    total: np.ndarray
    first_seen: np.ndarray  # epoch seconds: first action on the item, else its created_at
    creators: np.ndarray  # int64 creator index per item, -1 without one
    keys: np.ndarray  # int64 sorted timeline keys
    t0: float
    span: int
    # counts as log shares of all positive actions (ITEM_FEATURES); False: log(1 + count), as
    # in artifacts saved before the shares, whose rankers were trained on those
    shares: bool = True

    def __post_init__(self) -> None:
        self.positive_total = max(float(self.positives.sum()), 1.0)

    @classmethod
    def fit(cls, data: TrainingData) -> ItemStats:
        n = data.n_items
        positive = data.weights > 0
        count = np.bincount(data.items, minlength=n).astype(np.float64)
        first = data.catalog.created_at.astype(np.float64).copy()
        if len(data.items):
            earliest = np.full(n, np.inf)
            np.minimum.at(earliest, data.items, data.timestamps)
            # An item is known from its first action in the data, never from a later upload
            # date, and never from anything outside the data (e.g. a rating in a test split).
            first = np.where(np.isfinite(earliest), earliest, first)
        t0 = float(data.timestamps.min()) if len(data.timestamps) else 0.0
        t1 = float(data.timestamps.max()) if len(data.timestamps) else 0.0
        span = int(t1 - t0) + 2
        keys = data.items[positive].astype(np.int64) * span + (
            data.timestamps[positive] - t0
        ).astype(np.int64)
        creator_index: dict[str, int] = {}
        creators = np.array(
            [
                -1 if c is None else creator_index.setdefault(c, len(creator_index))
                for c in data.catalog.creators
            ],
            dtype=np.int64,
        )
        return cls(
            positives=np.bincount(data.items[positive], minlength=n).astype(np.float64),
            likes=np.bincount(data.items[data.actions == 1], minlength=n).astype(np.float64),
            skips=np.bincount(data.items[data.actions == 2], minlength=n).astype(np.float64),
            total=count,
            first_seen=first,
            creators=creators,
            keys=np.sort(keys),
            t0=t0,
            span=span,
        )

    def recent(self, items: np.ndarray, at: float, window_days: float) -> np.ndarray:
        """Positive actions on each item in (at - window, at]."""
        items = items.astype(np.int64)
        base = items * self.span
        top = self.span - 2
        # whole seconds since t0, floored (a time just before t0 is -1: before every action)
        hi = base + int(np.clip(np.floor(at - self.t0), -1, top))
        lo = base + int(np.clip(np.floor(at - window_days * DAY - self.t0), -1, top))
        return (
            np.searchsorted(self.keys, hi, side="right")
            - np.searchsorted(self.keys, lo, side="right")
        ).astype(np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "positives": self.positives,
            "likes": self.likes,
            "skips": self.skips,
            "total": self.total,
            "first_seen": self.first_seen,
            "creators": self.creators,
            "keys": self.keys,
        }

    def params(self) -> dict[str, Any]:
        return {"t0": self.t0, "span": self.span, "shares": self.shares}

    @classmethod
    def from_saved(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ItemStats:
        return cls(
            positives=arrays["positives"],
            likes=arrays["likes"],
            skips=arrays["skips"],
            total=arrays["total"],
            first_seen=arrays["first_seen"],
            creators=arrays["creators"].astype(np.int64),
            keys=arrays["keys"].astype(np.int64),
            t0=float(params["t0"]),
            span=int(params["span"]),
            shares=bool(params.get("shares", False)),
        )


def reference_time(history: History, fallback: float) -> float:
    """The viewer's "now": their latest action, or the data's time for a viewer with none."""
    return float(history.timestamps.max()) if len(history) else fallback


def viewer_row(history: History, at: float) -> np.ndarray:
    n = len(history)
    positives = int(np.count_nonzero(history.weights > 0))
    skips = int(np.count_nonzero(history.weights < 0))
    tenure = (at - float(history.timestamps.min())) / DAY if n else 0.0
    return np.array(
        [
            np.log1p(n),
            positives / n if n else 0.0,
            skips / n if n else 0.0,
            np.log1p(max(tenure, 0.0)),
        ]
    )


def item_block(stats: ItemStats, items: np.ndarray, at: float) -> np.ndarray:
    total = stats.total[items]
    age = np.maximum(at - stats.first_seen[items], 0.0) / DAY

    def count(values: np.ndarray) -> np.ndarray:
        if stats.shares:
            return np.log((values + 0.5) / stats.positive_total)
        return np.log1p(values)

    columns = [
        count(stats.positives[items]),
        (stats.likes[items] + 0.5) / (total + 1.0),
        (stats.skips[items] + 0.5) / (total + 1.0),
        np.log1p(age),
        *(count(stats.recent(items, at, w)) for w in RECENT_WINDOWS),
    ]
    return np.column_stack(columns)


def creator_share(stats: ItemStats, history: History, items: np.ndarray) -> np.ndarray:
    """Share of the viewer's positive actions that went to each candidate's creator."""
    liked = history.items[history.weights > 0]
    if len(liked) == 0:
        return np.zeros(len(items))
    own = stats.creators[liked]
    own = own[own >= 0]
    if len(own) == 0:
        return np.zeros(len(items))
    creators, counts = np.unique(own, return_counts=True)
    target = stats.creators[items]
    pos = np.clip(np.searchsorted(creators, target), 0, len(creators) - 1)
    found = (creators[pos] == target) & (target >= 0)
    return np.where(found, counts[pos] / len(liked), 0.0)
