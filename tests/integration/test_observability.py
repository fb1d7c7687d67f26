"""Metrics, request ids and JSON logs, and deadlines on dependencies, over real HTTP."""

from __future__ import annotations

import io
import math
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recomind.domain import cache_keys
from recomind.entrypoints.api.collector import serve_worker_metrics
from tests.integration.conftest import Served
from tests.support.logs import captured_json_logs, log_lines
from tests.support.servers import free_port

GROUPS = ("recomind-store", "recomind-profile", "recomind-lake", "recomind-analytics")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(http: httpx.Client) -> Samples:
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; a KeyError when the page does not have it."""
    return samples[name, frozenset(labels.items())]


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far a sample moved; a label set first seen in `after` started at 0."""
    return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0.0)


class _Proxy:
    """Another object's behaviour, except for what a test overrides."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BrokenLagBus(_Proxy):
    def lag(self, group: str, topic: str) -> int:
        raise RuntimeError("broker unreachable")


class HungLagBus(_Proxy):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.release = threading.Event()
        self.calls = 0

    def lag(self, group: str, topic: str) -> int:
        self.calls += 1
        self.release.wait(60)
        return 0


class HungPingStore(_Proxy):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.release = threading.Event()

    def ping(self) -> None:
        self.release.wait(60)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line of the process as JSON, in a buffer; the logging setup is put back after."""
    with captured_json_logs() as buffer:
        yield buffer


def test_metrics_count_requests_by_route_template_feeds_ingest_and_consumers(
    served: Served,
) -> None:
    http = served.http
    before = scrape(http)
    for _ in range(3):
        assert http.get("/trending").status_code == 200
    for user in ("u1", "u1", "never-seen-viewer"):
        assert http.get(f"/recommendations/{user}").status_code == 200
    like = {"user_id": "u5", "video_id": "v7", "action_type": "like"}
    assert http.post("/video_action", json=like).status_code == 202
    assert http.post("/video_actions", json=[like, {**like, "video_id": "v8"}]).status_code == 202
    assert http.get("/no/such/page").status_code == 404
    served.wait_applied()
    after = scrape(http)

    def requests(method: str, route: str, status: str) -> float:
        return moved(
            before, after, "recomind_http_requests_total", method=method, route=route, status=status
        )

    assert requests("GET", "/trending", "200") == 3
    assert requests("GET", "/recommendations/{user_id}", "200") == 3
    assert requests("POST", "/video_action", "202") == 1
    assert requests("POST", "/video_actions", "202") == 1
    assert requests("GET", "<unmatched>", "404") == 1
    feed_route = {"method": "GET", "route": "/recommendations/{user_id}"}
    histogram = "recomind_http_request_duration_seconds"
    assert moved(before, after, f"{histogram}_count", **feed_route) == 3
    assert moved(before, after, f"{histogram}_bucket", le="+Inf", **feed_route) == 3
    assert moved(before, after, f"{histogram}_sum", **feed_route) > 0
    routes = {dict(labels).get("route") for _, labels in after}
    assert not {r for r in routes if r and ("u1" in r or "never-seen" in r)}  # templates only

    sources = ("cache", "table", "computed", "trending")
    assert sum(moved(before, after, "recomind_feed_source_total", source=s) for s in sources) == 3
    assert moved(before, after, "recomind_feed_source_total", source="trending") == 1
    assert moved(before, after, "recomind_feed_fallbacks_total", to="trending") == 1
    cache = "recomind_feed_cache_requests_total"
    hits = moved(before, after, cache, cache="recommendations", result="hit")
    misses = moved(before, after, cache, cache="recommendations", result="miss")
    assert hits + misses == 3 and hits >= 1  # the second read of u1's list is a hit
    trending_reads = sum(
        moved(before, after, cache, cache="popular_videos", result=r) for r in ("hit", "miss")
    )
    assert trending_reads == 4  # three /trending and the unknown viewer's fallback

    assert moved(before, after, "recomind_ingest_events_accepted_total") == 3
    for group in GROUPS:
        assert moved(before, after, "recomind_consumer_events_processed_total", group=group) == 3
        assert value(after, "recomind_consumer_events_dead_lettered_total", group=group) == 0
        assert value(after, "recomind_consumer_lag", group=group) == 0
        assert moved(before, after, "recomind_consumer_lag_errors_total", group=group) == 0
    assert value(after, "recomind_bus_spooled_events") == 0
    assert value(after, "recomind_feed_refresh_pending") >= 0  # KeyError when missing
    assert moved(before, after, "recomind_feed_refresh_failures_total") == 0


def test_metrics_follow_the_read_path_step_by_step_and_feed_sessions(served: Served) -> None:
    http = served.http
    recomind = served.recomind
    before = scrape(http)
    viewer = "u7"
    recomind.cache.delete(cache_keys.recommendations(viewer))
    recomind.store.delete_recommendations(viewer)  # neither cached nor stored: computed
    first = http.get(f"/recommendations/{viewer}", params={"limit": 5})
    assert first.headers["x-feed-source"] == "computed"
    cursor = first.headers["x-next-cursor"]
    assert http.get(f"/recommendations/{viewer}", params={"cursor": cursor}).status_code == 200
    assert http.get(f"/recommendations/{viewer}", params={"cursor": "nope"}).status_code == 422
    recomind.feed.sessions.impressions_log.flush()  # what its thread does within 50 ms
    recomind.cache.delete(cache_keys.recommendations(viewer))  # as if its TTL ran out
    assert http.get(f"/recommendations/{viewer}").headers["x-feed-source"] == "computed"
    after = scrape(http)

    def feed(name: str, **labels: str) -> float:
        return moved(before, after, f"recomind_feed_{name}_total", **labels)

    assert feed("source", source="computed") == 2
    assert feed("source", source="cache") == 1
    assert feed("source", source="table") == 0
    assert feed("fallbacks", to="table") == 2  # two cache misses…
    assert feed("fallbacks", to="computed") == 2  # …and no stored list either time
    assert feed("fallbacks", to="trending") == 0
    assert feed("pages", session="started") == 2
    assert feed("pages", session="continued") == 1
    assert feed("pages", session="restarted") == 0
    assert feed("bad_cursors") == 1
    assert feed("computed", path="fast") == 2
    assert feed("compute_seconds", path="fast") > 0
    assert feed("demoted_videos") == 15  # both pages (5 + 10 videos), at the rebuild
    cache = "recomind_feed_cache_requests_total"
    assert moved(before, after, cache, cache="recommendations", result="hit") == 1
    assert moved(before, after, cache, cache="recommendations", result="miss") == 2
    # impressions are read when a list is rebuilt: none yet at the first, two pages' at the second
    assert moved(before, after, cache, cache="impressions", result="miss") == 1
    assert moved(before, after, cache, cache="impressions", result="hit") == 1


def test_model_gauge_names_the_version_in_use(served: Served) -> None:
    version = served.http.post("/admin/retrain").json()["version"]
    models = {
        dict(labels)["version"]: v
        for (name, labels), v in scrape(served.http).items()
        if name == "recomind_model_info"
    }
    assert models == {version: 1.0}


def test_request_id_round_trips_and_marks_every_log_line(
    served: Served, json_log: io.StringIO
) -> None:
    http = served.http
    r = http.get("/trending", headers={"X-Request-Id": "lb-trace-42"})
    assert r.headers["x-request-id"] == "lb-trace-42"
    made = http.get("/trending").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    refused = http.get("/trending", headers={"X-Request-Id": "x" * 500}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", refused)
    # A line written inside the endpoint, by a service on a worker thread, carries the id too.
    assert http.post("/admin/retrain", headers={"X-Request-Id": "retrain-7"}).status_code == 200

    lines = log_lines(json_log)
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(x) for x in lines)
    access = [x for x in lines if x["logger"] == "recomind.access"]
    traced = [x for x in access if x["request_id"] == "lb-trace-42"]
    assert len(traced) == 1
    line = traced[0]
    assert (line["level"], line["method"], line["route"], line["status"]) == (
        "INFO",
        "GET",
        "/trending",
        200,
    )
    assert line["duration_ms"] > 0
    assert {made, refused} <= {x["request_id"] for x in access}
    retrain = [x for x in lines if x["request_id"] == "retrain-7"]
    assert {x["logger"] for x in retrain} >= {"recomind.services.training", "recomind.access"}


def test_metrics_answer_when_the_bus_cannot_tell_the_lag(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = scrape(served.http)
    monkeypatch.setattr(served.recomind, "bus", BrokenLagBus(served.recomind.bus))
    after = scrape(served.http)
    for group in GROUPS:
        assert math.isnan(value(after, "recomind_consumer_lag", group=group))
        assert moved(before, after, "recomind_consumer_lag_errors_total", group=group) == 1
    assert value(after, "recomind_bus_spooled_events") == 0  # the rest of the page is there


def test_a_hung_bus_delays_a_scrape_by_a_second_at_most(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = HungLagBus(served.recomind.bus)
    monkeypatch.setattr(served.recomind, "bus", bus)
    try:
        for _ in range(2):
            started = time.monotonic()
            samples = scrape(served.http)
            assert time.monotonic() - started < 2.5
            assert all(math.isnan(value(samples, "recomind_consumer_lag", group=g)) for g in GROUPS)
        assert bus.calls == len(GROUPS)  # the second scrape waited on the calls in flight
    finally:
        bus.release.set()


def test_ready_names_a_hung_dependency_within_its_deadline(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HungPingStore(served.recomind.store)
    monkeypatch.setattr(served.recomind, "store", store)
    try:
        started = time.monotonic()
        r = served.http.get("/ready")
        assert time.monotonic() - started < 3.5
        assert r.status_code == 503
        assert r.json()["errors"] == [
            {"store": "error: no answer within 2s", "cache": "ok", "bus": "ok"}
        ]
    finally:
        store.release.set()
    assert served.http.get("/health").json() == {"status": "ok"}


def test_a_worker_serves_its_own_metrics(served: Served) -> None:
    port = free_port()
    server = serve_worker_metrics(served.recomind, "127.0.0.1", port)
    try:
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        server.shutdown()
        server.server_close()
    assert set(GROUPS) <= {
        dict(labels)["group"] for name, labels in samples if name == "recomind_consumer_lag"
    }
    assert not any(name.startswith("recomind_http_") for name, _ in samples)


def test_fastapis_otel_hooks_are_off_unless_asked_for(served: Served) -> None:
    """`RECOMIND_OTEL=false` (the default) turns FastAPI's native OpenTelemetry hooks off,
    in the FastAPI versions that have them; `true` leaves FastAPI's defaults."""
    import inspect

    from fastapi import FastAPI

    from recomind.entrypoints.api.app import create_app

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        pytest.skip("this FastAPI has no native telemetry")
    settings = served.recomind.settings
    assert settings.otel is False
    off = create_app(served.recomind, run_workers=False)
    assert not any(off._telemetry[k] for k in ("tracing", "metrics", "logs"))  # type: ignore[attr-defined]
    served.recomind.settings = settings.model_copy(update={"otel": True})
    try:
        on = create_app(served.recomind, run_workers=False)
    finally:
        served.recomind.settings = settings
    assert all(on._telemetry[k] for k in ("tracing", "metrics", "logs"))  # type: ignore[attr-defined]
