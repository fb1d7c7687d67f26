"""The request middleware on a bare app: ids, route templates, errors counted as 500."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from recomind.entrypoints.api.metrics import HttpMetrics
from recomind.entrypoints.api.observe import ObserveRequests
from recomind.entrypoints.logs import RequestIdFilter


def observed_app() -> tuple[FastAPI, CollectorRegistry]:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: str) -> dict[str, str]:
        logging.getLogger("recomind.test").info("looking up %s", item_id)
        return {"id": item_id}

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("boom")

    registry = CollectorRegistry()
    app.add_middleware(ObserveRequests, metrics=HttpMetrics(registry))
    return app, registry


async def _get(
    app: FastAPI, *paths: str, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.get(p, headers=headers) for p in paths]


def count(registry: CollectorRegistry, route: str, status: str) -> float | None:
    labels = {"method": "GET", "route": route, "status": status}
    return registry.get_sample_value("recomind_http_requests_total", labels)


def test_routes_are_counted_by_template_and_ids_tag_the_endpoint_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, registry = observed_app()
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        responses = asyncio.run(_get(app, "/items/a", "/items/b", headers={"X-Request-Id": "r-1"}))
    assert [r.headers["x-request-id"] for r in responses] == ["r-1", "r-1"]
    assert count(registry, "/items/{item_id}", "200") == 2
    assert count(registry, "/items/a", "200") is None
    lookups = [r for r in caplog.records if r.name == "recomind.test"]
    assert [getattr(r, "request_id", None) for r in lookups] == ["r-1", "r-1"]


def test_an_unhandled_error_is_a_500_logged_under_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, registry = observed_app()
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        (response,) = asyncio.run(_get(app, "/broken", headers={"X-Request-Id": "r-2"}))
    assert response.status_code == 500
    assert count(registry, "/broken", "500") == 1
    assert (
        registry.get_sample_value(
            "recomind_http_request_duration_seconds_count", {"method": "GET", "route": "/broken"}
        )
        == 1
    )
    (access,) = [r for r in caplog.records if r.name == "recomind.access"]
    assert (access.levelno, access.__dict__["status"], access.__dict__["request_id"]) == (
        logging.ERROR,
        500,
        "r-2",
    )
