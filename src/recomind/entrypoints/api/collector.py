"""What RecoMind is doing, as Prometheus metrics read at scrape time.

The services already count what they do (feed sources, events processed, cache failures…);
this collector reads those counters when Prometheus scrapes, so the hot paths carry no
metrics code. Consumer lag and the spool size ask the bus, under a deadline: a bus that fails
or hangs shows as NaN plus a `recomind_consumer_lag_errors_total` tick, never as a failed
scrape. It serves the API's `/metrics` and, through `serve_worker_metrics`, a worker process.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recomind.adapters.ranker.http import HttpRanker
from recomind.bootstrap import RecoMind
from recomind.config import FeedCompute
from recomind.domain.events import VIDEO_ACTIONS_TOPIC
from recomind.domain.ports import EventBus
from recomind.entrypoints.api.checks import DependencyChecks
from recomind.services.feed_sessions import SessionEvent

log = logging.getLogger(__name__)

BUS_TIMEOUT_SECONDS = 1.0  # for all lag and spool calls of one scrape together
FEED_SOURCES = ("cache", "table", "computed", "trending")  # fastest first; all but the first
FEED_FALLBACKS = FEED_SOURCES[1:]  # are fallbacks; each is exposed at 0 before it happens
FEED_SESSION_EVENTS = tuple(e.value for e in SessionEvent)
FEED_COMPUTE_PATHS = tuple(p.value for p in FeedCompute)
_Family = CounterMetricFamily | GaugeMetricFamily


class RecoMindCollector(Collector):
    def __init__(self, recomind: RecoMind, checks: DependencyChecks) -> None:
        self.recomind = recomind
        self.checks = checks
        self.lag_errors: Counter[str] = Counter()

    def describe(self) -> list[Metric]:
        # Without this, registering would run a whole scrape (and ask the bus) at start-up.
        return [*self._families().values()]

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        self._fill(families)
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, _Family]:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        return {
            "source": counter(
                "recomind_feed_source",
                "Viewer feeds served, by where the list came from",
                ("source",),
            ),
            "cache": counter(
                "recomind_feed_cache_requests",
                "Feed cache reads (recommendations:{user_id}, popular_videos, and "
                'impressions:{user_id} when a list is rebuilt) by hit or miss; cache="near": '
                "the event loop's reads of the first two answered by the API's near cache of "
                "Redis (hit) or by Redis (miss)",
                ("cache", "result"),
            ),
            "fallbacks": counter(
                "recomind_feed_fallbacks",
                "Steps down the read path: cache miss -> table, no stored list -> computed, "
                "nothing to compute from -> trending",
                ("to",),
            ),
            "pages": counter(
                "recomind_feed_pages",
                "Feed pages served, by what they did to the viewer's feed session",
                ("session",),
            ),
            "bad_cursors": counter(
                "recomind_feed_bad_cursors",
                "Feed requests refused because the cursor was garbled, forged or another viewer's",
            ),
            "demoted": counter(
                "recomind_feed_demoted_videos",
                "Videos moved down a rebuilt list because they were served and not acted on",
            ),
            "computed": counter(
                "recomind_feed_computed",
                "Viewer lists computed on the fly (read path and refreshes), by path",
                ("path",),
            ),
            "compute_seconds": counter(
                "recomind_feed_compute_seconds",
                "Time spent computing viewer lists on the fly, by path",
                ("path",),
            ),
            "cache_errors": counter(
                "recomind_cache_errors", "Cache operations that failed (served without the cache)"
            ),
            "refreshed": counter(
                "recomind_feeds_refreshed", "Viewer lists rebuilt by the refresh policy"
            ),
            "refresh_pending": gauge(
                "recomind_feed_refresh_pending",
                "Viewers whose list the refresh policy has queued for a rebuild, or is rebuilding",
            ),
            "refresh_failed": counter(
                "recomind_feed_refresh_failures",
                "List rebuilds that failed (the stored list stays until its TTL)",
            ),
            "accepted": counter(
                "recomind_ingest_events_accepted", "Actions accepted by ingest (202) on this node"
            ),
            "unverified": counter(
                "recomind_ingest_unverified_videos",
                "Video ids let through unverified while the store was unreachable",
            ),
            "processed": counter(
                "recomind_consumer_events_processed",
                "Events applied, per consumer group",
                ("group",),
            ),
            "dead_lettered": counter(
                "recomind_consumer_events_dead_lettered",
                "Events sent to the dead-letter topic, per consumer group",
                ("group",),
            ),
            "errors": counter(
                "recomind_consumer_errors",
                "Failed polls or batches (retried), per consumer group",
                ("group",),
            ),
            "lag": gauge(
                "recomind_consumer_lag",
                "Events on the topic not yet committed by the group (NaN: the bus did not answer)",
                ("group",),
            ),
            "lag_errors": counter(
                "recomind_consumer_lag_errors",
                "Scrapes that could not read a group's lag (bus failed or timed out)",
                ("group",),
            ),
            "spooled": gauge(
                "recomind_bus_spooled_events",
                "Events accepted on this node but not yet on the bus (NaN: unknown)",
            ),
            "ranker": counter(
                "recomind_ranker_calls",
                "Calls to the model server (RECOMIND_RANKER_URL) by outcome: ok, error (ranked "
                "in-process instead), skipped (in-process while the server is backed off)",
                ("outcome",),
            ),
            "model": gauge(
                "recomind_model_info", "The model version in use (value 1)", ("version",)
            ),
        }

    def _fill(self, f: dict[str, _Family]) -> None:
        app = self.recomind
        sources = dict(app.feed.sources)  # a copy: request threads keep counting meanwhile
        for source in (*FEED_SOURCES, *sorted(sources.keys() - set(FEED_SOURCES))):
            f["source"].add_metric([source], sources.get(source, 0))
        hits = sources.get("cache", 0)
        f["cache"].add_metric(["recommendations", "hit"], hits)
        f["cache"].add_metric(["recommendations", "miss"], sum(sources.values()) - hits)
        trending = dict(app.feed.trending_cache)
        for result in ("hit", "miss"):
            f["cache"].add_metric(["popular_videos", result], trending.get(result, 0))
        near = app.cache.near_reads()
        for result in ("hit", "miss") if near else ():
            f["cache"].add_metric(["near", result], near.get(result, 0))
        impressions = dict(app.feed.sessions.impressions_log.reads)
        for result in ("hit", "miss"):
            f["cache"].add_metric(["impressions", result], impressions.get(result, 0))
        fallbacks = dict(app.feed.fallbacks)
        for to in FEED_FALLBACKS:
            f["fallbacks"].add_metric([to], fallbacks.get(to, 0))
        pages = dict(app.feed.sessions.pages)
        for event in FEED_SESSION_EVENTS:
            f["pages"].add_metric([event], pages.get(event, 0))
        f["bad_cursors"].add_metric([], app.feed.sessions.bad_cursors)
        f["demoted"].add_metric([], app.feed.demoted)
        counts, seconds = dict(app.feed.computed), dict(app.feed.compute_seconds)
        for path in FEED_COMPUTE_PATHS:
            f["computed"].add_metric([path], counts.get(path, 0))
            f["compute_seconds"].add_metric([path], seconds.get(path, 0.0))
        f["cache_errors"].add_metric([], app.cache.failures)
        f["refreshed"].add_metric([], app.refresher.refreshed)
        f["refresh_pending"].add_metric([], app.refresher.pending)
        f["refresh_failed"].add_metric([], app.refresher.failed)
        f["accepted"].add_metric([], app.ingest.accepted)
        f["unverified"].add_metric([], app.known_videos.unverified)
        for runner in app.consumers:
            f["processed"].add_metric([runner.name], runner.processed)
            f["dead_lettered"].add_metric([runner.name], runner.dead_lettered)
            f["errors"].add_metric([runner.name], runner.errors)
        if isinstance(app.ranker, HttpRanker):
            outcomes = dict(app.ranker.outcomes)
            for outcome in ("ok", "error", "skipped"):
                f["ranker"].add_metric([outcome], outcomes.get(outcome, 0))
        self._fill_from_bus(f)
        try:
            loaded = app.models.get()
        except Exception:  # an unreadable registry: no version to report
            log.exception("could not read the model in use")
            loaded = None
        if loaded is not None:
            f["model"].add_metric([loaded.version], 1)

    def _fill_from_bus(self, f: dict[str, _Family]) -> None:
        bus = self.recomind.bus
        groups = [r.name for r in self.recomind.consumers]
        calls: dict[str, Callable[[], float]] = {f"lag:{g}": partial(_lag, bus, g) for g in groups}
        calls["spooled"] = partial(_spooled, bus)
        answers = self.checks.run(calls, BUS_TIMEOUT_SECONDS)
        failed: dict[str, BaseException] = {}
        for group in groups:
            lag = answers[f"lag:{group}"]
            if isinstance(lag, BaseException):
                failed[group] = lag
                self.lag_errors[group] += 1
                lag = math.nan
            f["lag"].add_metric([group], lag)
            f["lag_errors"].add_metric([group], self.lag_errors[group])
        if failed:
            log.warning("consumer lag unavailable: %s", failed)
        spooled = answers["spooled"]
        f["spooled"].add_metric([], math.nan if isinstance(spooled, BaseException) else spooled)


def _lag(bus: EventBus, group: str) -> float:
    return float(bus.lag(group, VIDEO_ACTIONS_TOPIC))


def _spooled(bus: EventBus) -> float:
    return float(bus.spooled())


def worker_registry(recomind: RecoMind, checks: DependencyChecks) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RecoMindCollector(recomind, checks))
    return registry


def serve_worker_metrics(recomind: RecoMind, host: str, port: int) -> WSGIServer:
    """Serve `/metrics` (consumers, lag, model) from a worker process on a daemon thread;
    `shutdown()` on the returned server stops it."""
    registry = worker_registry(recomind, DependencyChecks())
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server
