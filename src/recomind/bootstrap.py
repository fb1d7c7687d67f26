"""The composition root: reads settings, opens each adapter by URL, wires the services.

Nothing else in RecoMind reads settings or creates a client, and nothing is
opened at import time. `RecoMind.start_workers()` runs the consumers and the
retrain schedule in this process (the embedded, one-process mode).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from recomind.adapters.bus import open_bus
from recomind.adapters.cache import open_cache
from recomind.adapters.cache.failsoft import FailSoftCache
from recomind.adapters.lake import open_lake
from recomind.adapters.ranker.http import HttpRanker
from recomind.adapters.ranker.local import ModelRanker, ModelSource
from recomind.adapters.ranker.watch import ModelWatcher
from recomind.adapters.store import open_store
from recomind.config import Settings
from recomind.domain.clock import Clock, SystemClock
from recomind.domain.errors import RecoMindError
from recomind.domain.ports import EventBus, Lake, Ranker, Store
from recomind.recommenders import embeddings
from recomind.recommenders.rerank import RerankSettings
from recomind.services.catalog import CatalogService
from recomind.services.consume import EVENT_HANDLERS, ConsumerRunner, Effects
from recomind.services.feed import FeedService, FeedSettings
from recomind.services.feed_sessions import FeedSessions, SessionSettings, cursor_key
from recomind.services.freshness import FeedRefresher
from recomind.services.importer import Importer
from recomind.services.impressions import ImpressionLog
from recomind.services.ingest import ActionIngest, KnownVideos
from recomind.services.ledger import DAY_SECONDS, LedgerPruner
from recomind.services.model_registry import ModelHolder, ModelRegistry
from recomind.services.profiles import ProfileReader
from recomind.services.training import RetrainScheduler, Trainer, TrainSettings

log = logging.getLogger(__name__)


@dataclass
class RecoMind:
    settings: Settings
    store: Store
    cache: FailSoftCache
    bus: EventBus
    lake: Lake
    registry: ModelRegistry
    models: ModelHolder
    ranker: Ranker
    feed: FeedService
    profiles: ProfileReader
    ingest: ActionIngest
    known_videos: KnownVideos
    catalog: CatalogService
    importer: Importer
    trainer: Trainer
    refresher: FeedRefresher
    scheduler: RetrainScheduler
    ledger: LedgerPruner
    consumers: list[ConsumerRunner] = field(default_factory=list)
    clock: Clock = field(default_factory=SystemClock)

    def start_workers(
        self, schedule_training: bool = True, groups: Collection[str] | None = None
    ) -> list[str]:
        """Start the consumer groups (all, or those named) and the retrain schedule."""
        started = [r for r in self.consumers if groups is None or r.name in groups]
        if started:
            self.refresher.start()  # feed rebuilds leave the consumer thread
        for runner in started:
            runner.start()
        if any(r.name == "recomind-profile" for r in started):
            self.ledger.start()  # the group that writes the ledger keeps it bounded
        if schedule_training:
            self.scheduler.start()
        return [r.name for r in started]

    def drain(self) -> int:
        """Apply every pending event now in this thread; returns how many were read."""
        read = sum(runner.drain() for runner in self.consumers)
        self.feed.sessions.impressions_log.flush()  # pages served so far count for demotion
        self.refresher.flush()
        return read

    def close(self) -> None:
        self.scheduler.stop()
        self.ledger.stop()
        for runner in self.consumers:
            runner.stop()
        self.refresher.stop()
        try:
            self.feed.sessions.close()  # writes the impressions still buffered
        except Exception:
            log.exception("writing the buffered impressions failed")
        for part in (self.ranker, self.bus, self.cache, self.store):
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", type(part).__name__)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> RecoMind:
    """Wire everything from `settings`; `clock` is the system clock unless a test moves its own
    (it stamps new actions, dates training and runs the in-process cache's TTLs)."""
    s = settings or Settings()
    clock = clock or SystemClock()
    s.home.mkdir(parents=True, exist_ok=True)
    embeddings.configure(s.text_model, s.text_model_max_videos)
    store = open_store(s.resolved_store_url)
    cache = FailSoftCache(open_cache(s.cache_url, clock))
    bus = open_bus(
        s.resolved_bus_url, partitions=s.bus_partitions, spool_path=s.resolved_spool_path
    )
    lake = open_lake(s.resolved_lake_url)
    registry = ModelRegistry(s.resolved_model_dir, s.model_keep)
    holder = ModelHolder(registry)
    weights = s.action_weights
    ranker = open_ranker(s, holder)
    secret = (
        s.feed_cursor_secret.get_secret_value().encode()
        if s.feed_cursor_secret
        else cursor_key(s.home / "cursor.key")
    )
    # Sessions and impressions age on the clock too, so a test that moves it a day sees
    # yesterday's impressions expire (the system clock: plain time.time, the cheapest).
    wall = time.time if isinstance(clock, SystemClock) else lambda: clock.now().timestamp()
    sessions = FeedSessions(
        ImpressionLog(cache, s.impressions_ttl_seconds, s.impressions_flush_seconds, wall),
        SessionSettings(
            session_seconds=s.feed_session_seconds,
            impressions_seconds=s.impressions_ttl_seconds,
        ),
        secret,
        wall,
    )
    feed = FeedService(
        store,
        cache,
        holder,
        FeedSettings(
            top_n=s.top_n,
            recommendations_ttl=s.recommendations_ttl_seconds,
            popular_ttl=s.popular_ttl_seconds,
            popularity_half_life_hours=s.popularity_half_life_hours,
            rerank=RerankSettings.from_config(s),
            compute=s.feed_compute,
            demotion=s.impression_demotion,
            remote_ranker=bool(s.ranker_url),
        ),
        weights,
        ranker,
        sessions,
    )
    known = KnownVideos(store)
    trainer = Trainer(
        store,
        feed,
        registry,
        holder,
        TrainSettings.from_config(s),
        clock,
    )
    refresher = FeedRefresher(
        feed, cache, s.refresh_policy, s.refresh_after_actions, s.recommendations_ttl_seconds
    )
    scheduler = RetrainScheduler(trainer, s.train_interval_seconds, s.retrain_after_events)
    effects = Effects(
        store=store,
        cache=cache,
        lake=lake,
        weights=weights,
        popularity_half_life_hours=s.popularity_half_life_hours,
        affinity_half_life_hours=s.affinity_half_life_hours,
        after_commit=[refresher.on_new_actions, scheduler.on_new_actions],
    )
    consumers = [
        ConsumerRunner(
            name, bus, effects, s.consumer_batch, s.lake_flush_rows, s.lake_flush_seconds
        )
        for name in EVENT_HANDLERS
    ]
    return RecoMind(
        settings=s,
        store=store,
        cache=cache,
        bus=bus,
        lake=lake,
        registry=registry,
        models=holder,
        ranker=ranker,
        feed=feed,
        profiles=ProfileReader(store, cache, s.profile_ttl_seconds),
        ingest=ActionIngest(bus, known, clock),
        known_videos=known,
        catalog=CatalogService(store),
        importer=Importer(effects),
        trainer=trainer,
        refresher=refresher,
        scheduler=scheduler,
        ledger=LedgerPruner(store, s.ledger_retention_days * DAY_SECONDS),
        consumers=consumers,
        clock=clock,
    )


def open_ranker(s: Settings, models: ModelSource) -> Ranker:
    """The model server at RECOMIND_RANKER_URL (falling back to this process's model), or
    this process's model alone."""
    local = ModelRanker(models, s.action_weights)
    if not s.ranker_url:
        return local
    return HttpRanker(
        s.ranker_url,
        fallback=local,
        timeout_seconds=s.ranker_timeout_seconds,
        retry_after_seconds=s.ranker_retry_seconds,
    )


@dataclass
class ModelServing:
    """What `recomind modelserver serve` runs: a registry, its watcher and a ranker on it."""

    settings: Settings
    registry: ModelRegistry
    watcher: ModelWatcher
    ranker: Ranker


def bootstrap_model_server(
    settings: Settings | None = None, model_dir: Path | None = None
) -> ModelServing:
    s = settings or Settings()
    registry = ModelRegistry(
        (model_dir or s.resolved_modelserver_model_dir).resolve(), s.model_keep
    )
    watcher = ModelWatcher(registry, s.modelserver_poll_seconds)
    watcher.check()  # load before listening, so the first /ping can already say 200
    return ModelServing(s, registry, watcher, ModelRanker(watcher, s.action_weights))


@dataclass
class TrainingInputs:
    """What `recomind modelserver train` reads and writes, opened."""

    settings: Settings
    lake: Lake
    lake_location: str
    catalog_file: Path | None  # videos file(s) in the import format, else...
    store: Store | None  # ...the store's catalog
    registry: ModelRegistry

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def bootstrap_training_job(
    settings: Settings | None = None,
    training_input: str | None = None,
    catalog: Path | None = None,
    model_dir: Path | None = None,
) -> TrainingInputs:
    s = settings or Settings()
    location = training_input or s.resolved_modelserver_training_input
    catalog_file = catalog or s.resolved_modelserver_catalog_input
    if catalog_file is not None and not catalog_file.exists():
        raise RecoMindError(f"no such catalog file or folder: {catalog_file}")
    if catalog_file is None:
        s.home.mkdir(parents=True, exist_ok=True)  # the embedded store lives there
    return TrainingInputs(
        settings=s,
        lake=open_lake(_lake_url(location)),
        lake_location=location,
        catalog_file=catalog_file,
        store=None if catalog_file is not None else open_store(s.resolved_store_url),
        registry=ModelRegistry(
            (model_dir or s.resolved_modelserver_model_dir).resolve(), s.model_keep
        ),
    )


def _lake_url(location: str) -> str:
    """A lake URL as is; a folder (a SageMaker channel) must hold the lake's `video_actions/`."""
    if "://" in location:
        return location
    folder = Path(location).resolve()
    if not (folder / "video_actions").is_dir():
        raise RecoMindError(
            f"{folder} holds no lake: expected {folder}/video_actions/dt=…/hour=…/*.parquet "
            "(the folder RECOMIND_LAKE_URL points to)"
        )
    return f"file://{folder}"
