"""`GET /metrics`: Prometheus text exposition from a registry that belongs to one app.

A per-app `CollectorRegistry` (never the process-global one) lets several apps live in one
process, as they do in the tests. HTTP request counts and latencies are recorded by the
request middleware (`observe.py`) through `HttpMetrics`; everything else is read from the
services at scrape time by `RecoMindCollector`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from recomind.bootstrap import RecoMind
from recomind.entrypoints.api.checks import DependencyChecks
from recomind.entrypoints.api.collector import RecoMindCollector

router = APIRouter(tags=["system"])

# A cached feed answers in about a millisecond; the low buckets are where the news is.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Requests by method, route template and status, and their latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "recomind_http_requests",
            "HTTP requests by method, route template and status",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "recomind_http_request_duration_seconds",
            "HTTP request latency by method and route template, until the last body byte",
            ("method", "route"),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        # labels() takes a lock and builds a key each time; the few combinations are cached.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:  # clients choose the method; the label set stays bounded
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def install(app: FastAPI, recomind: RecoMind, checks: DependencyChecks) -> HttpMetrics:
    """Give the app its own registry, the RecoMind collector and `GET /metrics`."""
    registry = CollectorRegistry()
    registry.register(RecoMindCollector(recomind, checks))
    app.state.metrics_registry = registry
    app.include_router(router)
    return HttpMetrics(registry)


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics: HTTP, feed sources and cache, ingest, consumers and lag, model."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    encode, media_type = choose_encoder(request.headers.get("accept", ""))  # text or OpenMetrics
    return Response(encode(registry), media_type=media_type)
