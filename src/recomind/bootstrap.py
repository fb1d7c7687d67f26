"""The composition root: reads settings, opens each adapter by URL, wires the services.

Nothing else in RecoMind reads settings or creates a client, and nothing is
opened at import time. `RecoMind.start_workers()` runs the consumers and the
retrain schedule in this process (the embedded, one-process mode).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from recomind.adapters.bus import open_bus
from recomind.adapters.cache import open_cache
from recomind.adapters.cache.failsoft import FailSoftCache
from recomind.adapters.lake import open_lake
from recomind.adapters.store import open_store
from recomind.config import Settings
from recomind.domain.ports import EventBus, Lake, Store
from recomind.services.catalog import CatalogService
from recomind.services.consume import EVENT_HANDLERS, ConsumerRunner, Effects
from recomind.services.feed import FeedService, FeedSettings
from recomind.services.freshness import FeedRefresher
from recomind.services.importer import Importer
from recomind.services.ingest import ActionIngest, KnownVideos
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
    feed: FeedService
    profiles: ProfileReader
    ingest: ActionIngest
    known_videos: KnownVideos
    catalog: CatalogService
    importer: Importer
    trainer: Trainer
    refresher: FeedRefresher
    scheduler: RetrainScheduler
    consumers: list[ConsumerRunner] = field(default_factory=list)

    def start_workers(
        self, schedule_training: bool = True, groups: Collection[str] | None = None
    ) -> list[str]:
        """Start the consumer groups (all, or those named) and the retrain schedule."""
        started = [r for r in self.consumers if groups is None or r.name in groups]
        if started:
            self.refresher.start()  # feed rebuilds leave the consumer thread
        for runner in started:
            runner.start()
        if schedule_training:
            self.scheduler.start()
        return [r.name for r in started]

    def drain(self) -> int:
        """Apply every pending event now in this thread; returns how many were read."""
        read = sum(runner.drain() for runner in self.consumers)
        self.refresher.flush()
        return read

    def close(self) -> None:
        self.scheduler.stop()
        for runner in self.consumers:
            runner.stop()
        self.refresher.stop()
        for part in (self.bus, self.cache, self.store):
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", type(part).__name__)


def bootstrap(settings: Settings | None = None) -> RecoMind:
    s = settings or Settings()
    s.home.mkdir(parents=True, exist_ok=True)
    store = open_store(s.resolved_store_url)
    cache = FailSoftCache(open_cache(s.cache_url))
    bus = open_bus(
        s.resolved_bus_url, partitions=s.bus_partitions, spool_path=s.resolved_spool_path
    )
    lake = open_lake(s.resolved_lake_url)
    registry = ModelRegistry(s.resolved_model_dir)
    holder = ModelHolder(registry)
    weights = s.action_weights
    feed = FeedService(
        store,
        cache,
        holder,
        FeedSettings(
            top_n=s.top_n,
            recommendations_ttl=s.recommendations_ttl_seconds,
            popular_ttl=s.popular_ttl_seconds,
            popularity_half_life_hours=s.popularity_half_life_hours,
        ),
        weights,
    )
    known = KnownVideos(store)
    trainer = Trainer(
        store,
        cache,
        registry,
        holder,
        TrainSettings(
            weights=weights,
            popularity_half_life_hours=s.popularity_half_life_hours,
            affinity_half_life_hours=s.affinity_half_life_hours,
            top_n=s.top_n,
            recommendations_ttl=s.recommendations_ttl_seconds,
        ),
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
        feed=feed,
        profiles=ProfileReader(store, cache, s.profile_ttl_seconds),
        ingest=ActionIngest(bus, known),
        known_videos=known,
        catalog=CatalogService(store),
        importer=Importer(effects),
        trainer=trainer,
        refresher=refresher,
        scheduler=scheduler,
        consumers=consumers,
    )
