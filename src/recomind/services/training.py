"""Training: fit the hybrid on the store's history, version it, precompute everyone's lists.

The hybrid is the learned one (`recommenders.hybrid`): its sources are fitted on an earlier
window of each viewer's history, its LambdaRank ranker on the next window, and everything
is refitted on all the history before it is saved as a new version and used to precompute
every active viewer's Top-N, in batches (one ranker call per batch of viewers).

Runs on demand (`recomind train`, `POST /admin/retrain`) and on a schedule (hourly
by default) from `RetrainScheduler`, which the consumers can also nudge when many
new events have arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from recomind.domain.clock import Clock, SystemClock
from recomind.domain.errors import RecoMindError
from recomind.domain.model import Acted, ActionWeights, StoredRecommendations, VideoAction
from recomind.domain.ports import Store
from recomind.recommenders.data import TrainingData, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.rerank import RerankSettings, candidate_count, rerank_picks
from recomind.services.feed import FeedService
from recomind.services.model_registry import ModelHolder, ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    weights: ActionWeights
    popularity_half_life_hours: float
    affinity_half_life_hours: float
    top_n: int
    recommendations_ttl: float
    active_days: float = 30.0
    rerank: RerankSettings = field(default_factory=RerankSettings)
    precompute_batch: int = 512
    # the hybrid's limits for large logs (see HybridRecommender)
    ease_max_items: int = 10_000
    neighbour_max_items: int = 50_000
    als_max_pairs: int = 1_000_000
    blas_threads: int = 1
    ranker_max_viewers: int = 5_000
    reuse_fit_share: float = 0.05

    @classmethod
    def from_config(cls, s: Any) -> TrainSettings:
        """From `recomind.config.Settings`."""
        return cls(
            weights=s.action_weights,
            popularity_half_life_hours=s.popularity_half_life_hours,
            affinity_half_life_hours=s.affinity_half_life_hours,
            top_n=s.top_n,
            recommendations_ttl=s.recommendations_ttl_seconds,
            rerank=RerankSettings.from_config(s),
            ease_max_items=s.ease_max_items,
            neighbour_max_items=s.neighbour_max_items,
            als_max_pairs=s.als_max_pairs,
            blas_threads=s.train_blas_threads,
            ranker_max_viewers=s.ranker_max_viewers,
            reuse_fit_share=s.reuse_fit_share,
        )

    def model(self) -> HybridRecommender:
        """An unfitted hybrid with these settings: what the hourly job and the lake job fit."""
        return HybridRecommender(
            popularity_half_life_hours=self.popularity_half_life_hours,
            affinity_half_life_hours=self.affinity_half_life_hours,
            ease_max_items=self.ease_max_items,
            neighbour_max_items=self.neighbour_max_items,
            als_max_pairs=self.als_max_pairs,
            blas_threads=self.blas_threads,
            max_ranker_viewers=self.ranker_max_viewers,
            reuse_share=self.reuse_fit_share,
        )


@dataclass(frozen=True)
class TrainReport:
    version: str
    actions: int
    users: int
    videos: int
    fit_seconds: float
    precomputed: int
    precompute_seconds: float


def load_training_data(
    store: Store, weights: ActionWeights, now: datetime | None = None
) -> TrainingData:
    videos = store.all_videos()
    actions: list[VideoAction] = []
    for batch in store.iter_actions():
        actions.extend(batch)
    return training_data(videos, actions, weights, now)


class Trainer:
    def __init__(
        self,
        store: Store,
        feed: FeedService,
        registry: ModelRegistry,
        holder: ModelHolder,
        settings: TrainSettings,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.feed = feed
        self.registry = registry
        self.holder = holder
        self.settings = settings
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self.last_report: TrainReport | None = None

    def train(self, progress: Callable[[str], None] | None = None) -> TrainReport:
        with self._lock:
            return self._train(progress or (lambda _msg: None))

    def _train(self, progress: Callable[[str], None]) -> TrainReport:
        progress("loading history")
        data = load_training_data(self.store, self.settings.weights, self.clock.now())
        if data.n_items == 0:
            raise RecoMindError("the catalog is empty: add videos before training")
        progress(f"fitting on {len(data.users):,} actions")
        start = time.perf_counter()
        model = self.settings.model().fit(data)
        fit_seconds = time.perf_counter() - start
        info = {
            "actions": len(data.users),
            "users": data.n_users,
            "videos": data.n_items,
            "fit_seconds": round(fit_seconds, 3),
            "ranker": model.training_,
        }
        version = self.registry.save(model, info)
        self.registry.activate(version)
        self.holder.refresh()
        progress("precomputing lists")
        start = time.perf_counter()
        count = self.precompute(model, data, version)
        report = TrainReport(
            version,
            len(data.users),
            data.n_users,
            data.n_items,
            fit_seconds,
            count,
            time.perf_counter() - start,
        )
        self.last_report = report
        log.info("trained %s: %s", version, report)
        return report

    def precompute(self, model: HybridRecommender, data: TrainingData, version: str) -> int:
        """Top-N for every viewer active lately, into the table and (as presented) the cache."""
        videos = {v.video_id: v for v in self.store.all_videos()}
        histories = data.user_histories()
        recent = data.now - self.settings.active_days * 86400
        active = np.unique(data.users[data.timestamps >= recent])
        now = self.clock.now()
        rows = []
        step = max(1, self.settings.precompute_batch)
        k, rules = self.settings.top_n, self.settings.rerank
        for start in range(0, len(active), step):
            batch = active[start : start + step]
            lists = model.explain_many([histories[u] for u in batch], candidate_count(k, 0))
            for u, picks in zip(batch, lists, strict=True):
                user_id = str(data.user_ids[u])
                seen = model.item_ids[histories[u].items]
                items = tuple(rerank_picks(model, picks, seen, user_id, rules, k, data.now))
                rows.append(StoredRecommendations(user_id, items, version, now))
        self.feed.publish(rows, videos)
        return len(rows)


class RetrainScheduler:
    """Trains every `interval` seconds, or sooner after `after_events` new events."""

    def __init__(self, trainer: Trainer, interval: float, after_events: int) -> None:
        self.trainer = trainer
        self.interval = interval
        self.after_events = after_events
        self._new_events = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_new_actions(self, new: Sequence[Acted]) -> None:
        self._new_events += len(new)
        if self.after_events and self._new_events >= self.after_events:
            self._wake.set()

    def start(self) -> None:
        if self.interval <= 0 and not self.after_events:
            return
        self._thread = threading.Thread(target=self._run, name="retrain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval if self.interval > 0 else None)
            if self._stop.is_set():
                return
            self._wake.clear()
            self._new_events = 0
            try:
                self.trainer.train()
            except Exception:
                log.exception("scheduled training failed; the current model stays in use")
