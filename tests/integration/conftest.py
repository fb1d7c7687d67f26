"""A seeded, trained RecoMind on embedded defaults, served over real HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from recomind.adapters.cache import open_cache
from recomind.bootstrap import RecoMind, bootstrap
from recomind.config import Settings
from recomind.domain import cache_keys
from recomind.services.seed import seed_demo
from tests.support.servers import serve_in_thread


@dataclass
class Served:
    url: str
    recomind: RecoMind
    http: httpx.Client

    def wait_applied(self, timeout: float = 10.0) -> None:
        """Until every consumer group has caught up with the event log."""
        wait_applied(self.http, timeout)


def wait_applied(http: httpx.Client, timeout: float = 10.0) -> None:
    """Until every consumer group of the served RecoMind has caught up with the event log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lags = http.get("/admin/stats").json()["consumers"]
        if all(c["lag"] == 0 for c in lags.values()):
            return
        time.sleep(0.05)
    raise TimeoutError("consumers did not catch up")


def seeded(home: Path, **overrides: object) -> RecoMind:
    recomind = bootstrap(
        Settings(home=home, train_interval_seconds=0, lake_flush_seconds=0.2, **overrides)
    )
    seed_demo(recomind.importer, n_videos=300, n_users=120)
    recomind.trainer.train()
    return recomind


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    recomind = seeded(tmp_path_factory.mktemp("recomind"))
    with serve_in_thread(recomind) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Served(url, recomind, http)


# The in-process cache, and Redis when the suite has one: params of a cache-parametrised fixture.
CACHE_URLS = [
    "memory://",
    pytest.param(
        "RECOMIND_TEST_REDIS_URL",
        marks=pytest.mark.skipif(
            not os.environ.get("RECOMIND_TEST_REDIS_URL"),
            reason="RECOMIND_TEST_REDIS_URL is not set",
        ),
    ),
]
CACHE_IDS = ["memory", "redis"]


def clean_cache_url(param: str, viewers: Iterable[str]) -> str:
    """The cache URL a CACHE_URLS param names, with these viewers' feed keys gone (a shared
    Redis may hold them from a past run)."""
    cache_url = os.environ.get(param, param)
    cache = open_cache(cache_url)
    for viewer in viewers:
        cache.delete(cache_keys.impressions(viewer), cache_keys.recommendations(viewer))
    cache.close()
    return cache_url
