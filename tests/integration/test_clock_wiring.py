"""bootstrap(settings, clock) hands one clock to everything that depends on "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain import cache_keys
from recomind.domain.clock import ManualClock
from recomind.services.ingest import ActionRequest
from recomind.services.seed import seed_demo


def test_a_test_clock_reaches_ingest_training_and_the_cache(tmp_path: Path) -> None:
    clock = ManualClock()
    recomind = bootstrap(Settings(home=tmp_path, train_interval_seconds=0), clock=clock)
    try:
        assert recomind.clock is clock
        seed_demo(recomind.importer, n_videos=60, n_users=20)
        clock.advance(timedelta(days=1))

        recomind.ingest.record([ActionRequest("u1", "v1", "like")])
        recomind.drain()
        assert max(a.timestamp for a in recomind.store.user_actions("u1")) == clock.now()

        recomind.trainer.train()
        stored = recomind.store.get_recommendations("u1")
        assert stored is not None and stored.generated_at == clock.now()

        key = cache_keys.recommendations("u1")
        assert recomind.cache.get(key) is not None
        clock.advance(recomind.settings.recommendations_ttl_seconds)
        assert recomind.cache.get(key) is None
    finally:
        recomind.close()


def test_production_wiring_keeps_real_time(tmp_path: Path) -> None:
    recomind = bootstrap(Settings(home=tmp_path, train_interval_seconds=0))
    try:
        seed_demo(recomind.importer, n_videos=60, n_users=20)
        before = datetime.now(UTC)
        recomind.ingest.record([ActionRequest("u1", "v1", "like")])
        recomind.drain()
        latest = max(a.timestamp for a in recomind.store.user_actions("u1"))
        assert before <= latest <= datetime.now(UTC)
    finally:
        recomind.close()
