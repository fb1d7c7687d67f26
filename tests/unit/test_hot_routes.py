"""`HotRoutes` in front of a FastAPI stack: what it answers itself, what it hands on, and
how its answers are observed (request id, metrics, access line) on success and failure."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from recomind.domain.errors import NotFound
from recomind.entrypoints.api import problems
from recomind.entrypoints.api.hot_paths import HotRoutes, RecoMindAPI
from recomind.entrypoints.api.metrics import HttpMetrics
from recomind.entrypoints.api.observe import Observer, ObserveRequests
from tests.support.logs import captured_json_logs, log_lines, only_our_handler

KEY = b"test-key"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """JSON lines into a buffer, through RecoMind's handler alone (pytest's own capture
    handlers set aside, as in a served process)."""
    with captured_json_logs() as buffer, only_our_handler():
        yield buffer


def hot_app(answer: Any) -> tuple[RecoMindAPI, CollectorRegistry]:
    """An app whose hot feed path answers with `answer(scope)`; FastAPI serves the rest."""
    app = RecoMindAPI()
    problems.install(app)
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    app.add_middleware(ObserveRequests, metrics=metrics)

    @app.get("/videos/{video_id}")
    def video(video_id: str) -> dict[str, str]:
        return {"id": video_id}

    hot = HotRoutes(app, Observer(metrics), (KEY,))

    async def fake(
        scope: dict[str, Any], receive: Any, template: str
    ) -> tuple[int, list[Any], bytes]:
        return await answer(scope)

    hot.feed.answer = fake  # type: ignore[method-assign,assignment]
    hot.feed.route = lambda template: type("R", (), {"path": template})()  # type: ignore[method-assign]
    app.hot_routes = hot
    return app, registry


def get(app: RecoMindAPI, *paths: str, key: bytes | None = KEY) -> list[httpx.Response]:
    headers = {"X-API-Key": key.decode()} if key else {}

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get(p, headers=headers) for p in paths]

    return asyncio.run(run())


def count(registry: CollectorRegistry, route: str, status: str) -> float | None:
    labels = {"method": "GET", "route": route, "status": status}
    return registry.get_sample_value("recomind_http_requests_total", labels)


async def page(scope: dict[str, Any]) -> tuple[int, list[Any], bytes]:
    return 200, [(b"content-type", b"application/json")], b'["' + scope["path"].encode() + b'"]'


def test_hot_routes_are_answered_observed_and_the_rest_handed_on(lines: io.StringIO) -> None:
    app, registry = hot_app(page)
    feed, other = get(app, "/recommendations/u1", "/videos/v1")
    assert feed.status_code == 200 and feed.json() == ["/recommendations/u1"]
    assert other.status_code == 200 and other.json() == {"id": "v1"}  # FastAPI's route
    assert feed.headers["x-request-id"] != other.headers["x-request-id"]
    assert count(registry, "/recommendations/{user_id}", "200") == 1
    assert count(registry, "/videos/{video_id}", "200") == 1  # through ObserveRequests
    access = [x for x in log_lines(lines) if x["logger"] == "recomind.access"]
    assert [(x["route"], x["status"], x["level"]) for x in access] == [
        ("/recommendations/{user_id}", 200, "INFO"),
        ("/videos/{video_id}", 200, "INFO"),
    ]
    assert access[0]["request_id"] == feed.headers["x-request-id"]


def test_a_request_without_a_valid_key_is_refused_before_the_answer(lines: io.StringIO) -> None:
    answered: list[str] = []

    async def recording(scope: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        answered.append(scope["path"])
        return await page(scope)

    app, registry = hot_app(recording)
    (missing,) = get(app, "/trending", key=None)
    (wrong,) = get(app, "/trending", key=b"nope")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["x-request-id"]
    assert answered == []
    assert count(registry, "<unmatched>", "401") == 2


def test_handled_errors_are_the_apps_problems_and_others_a_logged_500(
    lines: io.StringIO,
) -> None:
    async def failing(scope: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        if scope["path"].endswith("missing"):
            raise NotFound("user", "missing")
        raise RuntimeError("boom")

    app, registry = hot_app(failing)
    missing, broken = get(app, "/recommendations/missing", "/recommendations/broken")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "user 'missing' not found"
    assert broken.status_code == 500 and broken.text == "Internal Server Error"
    assert count(registry, "/recommendations/{user_id}", "404") == 1
    assert count(registry, "/recommendations/{user_id}", "500") == 1
    access = [x for x in log_lines(lines) if x["logger"] == "recomind.access"]
    assert [(x["status"], x["level"]) for x in access] == [(404, "INFO"), (500, "ERROR")]
    assert access[1]["request_id"] == broken.headers["x-request-id"]
