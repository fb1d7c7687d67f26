"""Training data and viewer histories in index space (numpy arrays, one row per action)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from recomind.domain.model import ActionType, ActionWeights, Video, VideoAction
from recomind.domain.scoring import action_weight

_ACTION_CODES = {ActionType.VIEW: 0, ActionType.LIKE: 1, ActionType.SKIP: 2}


@dataclass(frozen=True)
class Catalog:
    """The videos a model knows, by index."""

    item_ids: np.ndarray  # str, index -> video id
    tags: list[tuple[str, ...]]
    created_at: np.ndarray  # float epoch seconds
    creators: list[str | None]
    titles: Sequence[str] = ()  # may be empty (catalogs built without titles)

    @classmethod
    def from_videos(cls, videos: Sequence[Video]) -> Catalog:
        return cls(
            item_ids=np.array([v.video_id for v in videos], dtype=object),
            tags=[v.tags for v in videos],
            created_at=np.array([v.created_at.timestamp() for v in videos], dtype=np.float64),
            creators=[v.creator_id for v in videos],
            titles=[v.title for v in videos],
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self) -> dict[str, int]:
        return {str(v): i for i, v in enumerate(self.item_ids)}


@dataclass(frozen=True)
class TrainingData:
    """Everything a model fits on: the catalog and the actions, as parallel arrays."""

    catalog: Catalog
    user_ids: np.ndarray  # str, index -> user id
    users: np.ndarray  # int32 per action
    items: np.ndarray  # int32 per action
    actions: np.ndarray  # int8 per action: 0 view, 1 like, 2 skip
    weights: np.ndarray  # float32 signed weight per action
    timestamps: np.ndarray  # float64 epoch seconds per action
    now: float  # the instant the data describes (epoch seconds)
    # per action: did the viewer engage (a like, or a view watched at least half through when
    # watch time and duration are known)? None means "every positive action engaged".
    engaged: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.catalog)

    def engagement(self) -> np.ndarray:
        """Per action: engaged (see `engaged`), as booleans."""
        return self.engaged if self.engaged is not None else self.weights > 0

    def subset(self, rows: np.ndarray, now: float | None = None) -> TrainingData:
        """The same catalog and viewers with only these actions (indexes or a mask), as of
        `now` (default: the same instant)."""
        return TrainingData(
            catalog=self.catalog,
            user_ids=self.user_ids,
            users=self.users[rows],
            items=self.items[rows],
            actions=self.actions[rows],
            weights=self.weights[rows],
            timestamps=self.timestamps[rows],
            now=self.now if now is None else now,
            engaged=self.engagement()[rows],
        )

    def positive_matrix(self) -> sp.csr_matrix:
        """Users x items, summing the positive weights (views and likes) of each pair."""
        mask = self.weights > 0
        return sp.csr_matrix(
            (self.weights[mask].astype(np.float32), (self.users[mask], self.items[mask])),
            shape=(self.n_users, self.n_items),
        )

    def user_histories(self) -> list[History]:
        order = np.lexsort((self.timestamps, self.users))
        bounds = np.searchsorted(self.users[order], np.arange(self.n_users + 1))
        return [
            History(
                items=self.items[order[bounds[u] : bounds[u + 1]]],
                weights=self.weights[order[bounds[u] : bounds[u + 1]]],
                timestamps=self.timestamps[order[bounds[u] : bounds[u + 1]]],
            )
            for u in range(self.n_users)
        ]


@dataclass(frozen=True)
class History:
    """One viewer's actions on known items, oldest first."""

    items: np.ndarray  # int item indices
    weights: np.ndarray  # signed weights
    timestamps: np.ndarray  # epoch seconds

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def positive_count(self) -> int:
        return int(np.count_nonzero(self.weights > 0))

    def positive_vector(self, n_items: int) -> np.ndarray:
        vec = np.zeros(n_items, dtype=np.float32)
        mask = self.weights > 0
        np.add.at(vec, self.items[mask], self.weights[mask])
        return vec


def positive_rows(histories: Sequence[History], n_items: int) -> sp.csr_matrix:
    """Viewers x items: each history's `positive_vector` as one row of a sparse matrix."""
    items, weights, rows = _stacked(histories, positive_only=True)
    return sp.csr_matrix(
        (weights.astype(np.float32), (rows, items)), shape=(len(histories), n_items)
    )


def _stacked(
    histories: Sequence[History], positive_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All histories' items and weights end to end, with the history (row) of each."""
    if not histories:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    items = np.concatenate([h.items for h in histories]).astype(np.int64)
    weights = np.concatenate([h.weights for h in histories]).astype(np.float32)
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    if positive_only:
        mask = weights > 0
        items, weights, rows = items[mask], weights[mask], rows[mask]
    return items, weights, rows


def decayed_rows(
    histories: Sequence[History], n_items: int, half_life_hours: float
) -> sp.csr_matrix:
    """Viewers x items: signed action weights decayed from each viewer's own latest action."""
    items, weights, rows = _stacked(histories)
    latest = [h.timestamps.max() if len(h) else 0.0 for h in histories]
    if len(items):
        stamps = np.concatenate([h.timestamps for h in histories])
        age_hours = (np.repeat(latest, [len(h) for h in histories]) - stamps) / 3600.0
        weights = (weights * np.power(2.0, -age_hours / half_life_hours)).astype(np.float32)
    return sp.csr_matrix((weights, (rows, items)), shape=(len(histories), n_items))


def history_from_actions(
    actions: Iterable[VideoAction], index: dict[str, int], weights: ActionWeights
) -> History:
    rows = [
        (index[a.video_id], weights.of(a.action_type), a.timestamp.timestamp())
        for a in actions
        if a.video_id in index
    ]
    if not rows:
        return History.empty()
    items, w, ts = zip(*rows, strict=True)
    return History(np.array(items, np.int32), np.array(w, np.float32), np.array(ts, np.float64))


def training_data(
    videos: Sequence[Video],
    actions: Iterable[VideoAction],
    weights: ActionWeights,
    now: datetime | None = None,
) -> TrainingData:
    catalog = Catalog.from_videos(videos)
    index = catalog.index()
    user_index: dict[str, int] = {}
    users: list[int] = []
    items: list[int] = []
    codes: list[int] = []
    w: list[float] = []
    ts: list[float] = []
    engaged: list[bool] = []
    durations = {v.video_id: v.duration_ms for v in videos}
    latest = 0.0
    durations = {v.video_id: v.duration_ms for v in videos}
    for a in actions:
        item = index.get(a.video_id)
        if item is None:
            continue
        users.append(user_index.setdefault(a.user_id, len(user_index)))
        items.append(item)
        codes.append(_ACTION_CODES[a.action_type])
        w.append(action_weight(a, weights, durations.get(a.video_id)))
        t = a.timestamp.timestamp()
        ts.append(t)
        engaged.append(is_engaged(a, durations.get(a.video_id)))
        latest = max(latest, t)
    when = now.astimezone(UTC).timestamp() if now else max(latest, datetime.now(UTC).timestamp())
    return TrainingData(
        catalog=catalog,
        user_ids=np.array(list(user_index), dtype=object),
        users=np.array(users, np.int32),
        items=np.array(items, np.int32),
        actions=np.array(codes, np.int8),
        weights=np.array(w, np.float32),
        timestamps=np.array(ts, np.float64),
        now=when,
        engaged=np.array(engaged, dtype=bool),
    )


ENGAGED_SHARE = 0.5


def is_engaged(action: VideoAction, duration_ms: int | None) -> bool:
    """A like, or a view watched at least half through (a view of unknown length counts)."""
    if action.action_type is ActionType.LIKE:
        return True
    if action.action_type is ActionType.SKIP:
        return False
    if action.watch_ms is None or not duration_ms:
        return True
    return action.watch_ms >= ENGAGED_SHARE * duration_ms
