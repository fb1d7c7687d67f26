"""Health, readiness, operator stats and on-demand retraining."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recomind.bootstrap import RecoMind
from recomind.domain.events import DEAD_LETTER_TOPIC, VIDEO_ACTIONS_TOPIC
from recomind.entrypoints.api.checks import Checks
from recomind.entrypoints.api.deps import App
from recomind.entrypoints.api.problems import problem
from recomind.entrypoints.api.schemas import TrainOut

router = APIRouter(tags=["system"])
READY_TIMEOUT_SECONDS = 2.0  # per dependency; the three are asked side by side


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
def ready(app: App, deadline: Checks) -> Any:
    """Every dependency answers within 2 s; 503 names the ones that do not."""
    answers = deadline.run(
        {"ping:store": app.store.ping, "ping:cache": app.cache.ping, "ping:bus": app.bus.ping},
        READY_TIMEOUT_SECONDS,
    )
    checks = {
        name.removeprefix("ping:"): f"error: {a}" if isinstance(a, BaseException) else "ok"
        for name, a in answers.items()
    }
    failing = [n for n, v in checks.items() if v != "ok"]
    if failing:
        return problem(503, f"not ready: {', '.join(failing)}", [checks])
    return {"status": "ready", **checks}


@router.get("/admin/stats")
def stats(app: App) -> dict[str, Any]:
    """What the system is doing: row counts, consumer lag, the model in use, feed sources."""
    loaded = app.models.get()
    # Lags first: the counts read after them include everything a lag of 0 says is applied.
    consumers = {
        r.name: {
            "lag": _lag(app, r.name),
            "processed": r.processed,
            "dead_lettered": r.dead_lettered,
            "errors": r.errors,
        }
        for r in app.consumers
    }
    return {
        "counts": app.store.counts(),
        "lake_actions": app.lake.count_actions(),
        "consumers": consumers,
        "dead_letter_topic": DEAD_LETTER_TOPIC,
        "spooled_events": app.bus.spooled(),
        "cache_failures": app.cache.failures,
        "unverified_videos": app.known_videos.unverified,
        "model": {"version": loaded.version, **loaded.info} if loaded else None,
        "model_versions": app.registry.versions(),
        "feed_sources": dict(app.feed.sources),
        "feeds_refreshed": app.refresher.refreshed,
        "refresh_policy": app.settings.refresh_policy.value,
    }


def _lag(app: RecoMind, group: str) -> int | None:
    try:
        return app.bus.lag(group, VIDEO_ACTIONS_TOPIC)
    except Exception:  # the bus is away; say so rather than fail the whole page
        return None


@router.post("/admin/retrain", response_model=TrainOut)
def retrain(app: App) -> TrainOut:
    """Train now, make the new model current and precompute every active viewer's list."""
    r = app.trainer.train()
    return TrainOut(**r.__dict__)
