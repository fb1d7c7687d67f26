"""Over real HTTP: API keys in front of every route, and the lean `POST /video_action` path
(202 on good input, the same 422 problem+json as the batch route on bad input, nothing
recorded), on a seeded RecoMind with `RECOMIND_API_KEYS` set."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import Served, seeded
from tests.support.servers import serve_in_thread

KEY = "key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    recomind = seeded(tmp_path_factory.mktemp("keyed"), api_keys=f"other-key, {KEY}")
    with serve_in_thread(recomind) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Served(url, recomind, http)


def lag(served: Served) -> int:
    return served.recomind.bus.lag("nobody", "video_actions_stream")


def test_every_route_but_probes_and_docs_needs_a_key(keyed: Served) -> None:
    http = keyed.http
    for path in ("/recommendations/u1", "/trending", "/videos/v1", "/admin/stats", "/metrics"):
        r = http.get(path)
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["x-request-id"]  # observed (and counted) like any other answer
        assert http.get(path, headers=AUTH).status_code == 200, path
        assert http.get(path, headers={"X-API-Key": KEY}).status_code == 200, path
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        assert http.get(path).status_code == 200, path
    metrics = http.get("/metrics", headers=AUTH).text
    assert 'route="<unmatched>",status="401"' in metrics


def test_an_action_without_a_valid_key_records_nothing(keyed: Served) -> None:
    body = {"user_id": "anon", "video_id": "v1", "action_type": "like"}
    before = lag(keyed)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": KEY[:-1]}):
        assert keyed.http.post("/video_action", json=body, headers=headers).status_code == 401
        assert keyed.http.post("/video_actions", json=[body], headers=headers).status_code == 401
    assert lag(keyed) == before
    r = keyed.http.post("/video_action", json=body, headers=AUTH)
    assert r.status_code == 202 and r.headers["content-type"] == "application/json"
    assert r.json() == {"id": r.json()["id"], "status": "accepted"}
    uuid.UUID(r.json()["id"])
    assert lag(keyed) == before + 1


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b'{"user_id": "u1", "video_id": "v1", "action_type": "like"', "application/json", ""),
        (b"", "application/json", ""),
        (b"[1, 2]", "application/json", ""),
        (b'{"user_id": 5, "video_id": "v1", "action_type": "like"}', "application/json", "user_id"),
        (b'{"user_id": "u1", "video_id": "v1", "action_type": "like"}', "text/plain", ""),
        (b'{"user_id": "u1", "action_type": "like"}', "application/json", "video_id"),
    ],
)
def test_malformed_bodies_are_422_problems(
    keyed: Served, content: bytes, content_type: str, field: str
) -> None:
    before = lag(keyed)
    r = keyed.http.post(
        "/video_action", content=content, headers={**AUTH, "Content-Type": content_type}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422 and problem["detail"] and problem["errors"]
    if field:
        assert problem["errors"][0]["field"] == field
    assert lag(keyed) == before


def test_single_and_batch_routes_reject_the_same_input_the_same_way(keyed: Served) -> None:
    """The lean single route and the FastAPI batch route share one model and error shape."""
    bad = {"user_id": "ok", "video_id": "v1", "action_type": "like", "watch_ms": -5}
    one = keyed.http.post("/video_action", json=bad, headers=AUTH).json()
    batch = keyed.http.post("/video_actions", json=[bad], headers=AUTH).json()
    assert one["errors"][0]["field"] == "watch_ms"
    assert batch["errors"][0]["field"] == "0.watch_ms"
    assert one["errors"][0]["message"] == batch["errors"][0]["message"]


def test_openapi_still_describes_the_single_action(keyed: Served) -> None:
    schema = keyed.http.get("/openapi.json").json()
    op = schema["paths"]["/video_action"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ActionIn"}
    assert set(schema["components"]["schemas"]["ActionIn"]["properties"]) >= {
        "user_id",
        "video_id",
        "action_type",
        "timestamp",
        "watch_ms",
        "id",
    }
    assert {"202", "422", "401"} <= set(op["responses"])
    assert op["security"] == [{"bearer": []}, {"apiKey": []}]


def test_the_fast_path_and_the_fastapi_route_answer_alike(keyed: Served) -> None:
    """The same app without its hot routes (`ActionFastPath`) routes through FastAPI: same
    statuses and problems for bad input, and the fast path is what the served app used
    (metrics label)."""
    import asyncio

    from recomind.entrypoints.api.app import create_app
    from recomind.entrypoints.api.hot_paths import RecoMindAPI

    plain = create_app(keyed.recomind, run_workers=False, hot_routes=False)
    assert isinstance(plain, RecoMindAPI) and plain.hot_routes is None
    bodies: list[object] = [
        {"user_id": "alike", "video_id": "v2", "action_type": "view"},
        {"user_id": "bad id", "video_id": "v1", "action_type": "like"},
        {"user_id": "ok", "video_id": "no-such-video", "action_type": "like"},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "surprise": 1},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "timestamp": "yesterday"},
        [1, 2],
    ]

    async def via_plain() -> list[tuple[int, object]]:
        transport = httpx.ASGITransport(app=plain)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                _comparable(await client.post("/video_action", json=b, headers=AUTH))
                for b in bodies
            ]

    fast = [_comparable(keyed.http.post("/video_action", json=b, headers=AUTH)) for b in bodies]
    assert fast == asyncio.run(via_plain())
    assert fast[0][0] == 202 and all(status == 422 for status, _ in fast[1:])
    metrics = keyed.http.get("/metrics", headers=AUTH).text
    assert 'route="/video_action",status="202"' in metrics


def _comparable(r: httpx.Response) -> tuple[int, object]:
    body = r.json()
    if r.status_code == 202:
        body["id"] = str(uuid.UUID(body["id"]))  # a fresh id each time; its form must hold
        body["id"] = "<uuid>"
    return r.status_code, (r.headers["content-type"], body)


def test_a_started_api_knows_the_catalog_ids_without_a_store_read_per_video(
    keyed: Served,
) -> None:
    catalog = keyed.recomind.store.all_video_ids()
    assert len(catalog) > 10
    known = keyed.recomind.known_videos
    deadline = time.monotonic() + 10
    while not known.all_known(catalog) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert known.all_known(catalog)
    assert not known.all_known({"never-added"})
