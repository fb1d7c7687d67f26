"""API-key auth on a bare app: which requests pass, the 401 body, the OpenAPI description."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from recomind.entrypoints.api import auth


def keyed_app(raw_keys: str) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    reached: list[str] = []

    @app.get("/recommendations/{user_id}")
    def feed(user_id: str) -> list[str]:
        reached.append(user_id)
        return [user_id]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> str:
        return "m"

    auth.install(app, raw_keys)
    return app, reached


def call(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_parse_keys_drops_blanks() -> None:
    assert auth.parse_keys(" a1 , ,b2,") == (b"a1", b"b2")
    assert auth.parse_keys("") == ()


def test_no_keys_configured_means_no_auth() -> None:
    app, reached = keyed_app("")
    assert call(app, "/recommendations/u1").status_code == 200
    assert reached == ["u1"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer k1"},
        {"Authorization": "bearer k2"},
        {"X-API-Key": "k2"},
        {"Authorization": "Bearer  k1 "},
    ],
)
def test_a_configured_key_in_either_header_passes(headers: dict[str, str]) -> None:
    app, reached = keyed_app("k1,k2")
    assert call(app, "/recommendations/u1", headers).status_code == 200
    assert reached == ["u1"]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (None, "needs a key"),
        ({"Authorization": "Basic azE6"}, "needs a key"),
        ({"Authorization": "Bearer k3"}, "not valid"),
        ({"Authorization": "Bearer k"}, "not valid"),
        ({"X-API-Key": "k1x"}, "not valid"),
        ({"X-API-Key": ""}, "not valid"),
    ],
)
def test_missing_or_wrong_key_is_a_401_problem_and_the_route_never_runs(
    headers: dict[str, str] | None, detail: str
) -> None:
    app, reached = keyed_app("k1,k2")
    r = call(app, "/recommendations/u1", headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and detail in body["detail"]
    assert reached == []


def test_probes_and_the_contract_are_public_metrics_are_not() -> None:
    app, _ = keyed_app("k1")
    assert call(app, "/health").status_code == 200
    assert call(app, "/openapi.json").status_code == 200
    assert call(app, "/docs").status_code == 200
    assert call(app, "/metrics").status_code == 401
    assert call(app, "/metrics", {"X-API-Key": "k1"}).status_code == 200
    # a path that only starts like a public one is not public
    assert call(app, "/healthz").status_code == 401
    assert call(app, "/uix").status_code == 401


def test_openapi_describes_both_schemes_on_protected_routes_only() -> None:
    app, _ = keyed_app("k1")
    schema = call(app, "/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key"
    feed = schema["paths"]["/recommendations/{user_id}"]["get"]
    assert feed["security"] == [{"bearer": []}, {"apiKey": []}] and "401" in feed["responses"]
    assert "security" not in schema["paths"]["/health"]["get"]
