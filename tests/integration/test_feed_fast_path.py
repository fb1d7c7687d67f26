"""Over real HTTP, with API keys on: `FeedFastPath` answers `GET /recommendations/{user_id}`
and `GET /trending` as the FastAPI routes do (statuses, headers, bodies, problem+json),
and a cached feed page costs one cache read on the event loop (its impressions are written
behind, in batches), on memory and on Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recomind.domain import cache_keys
from recomind.domain.ports import Cache
from recomind.entrypoints.api.app import create_app
from recomind.entrypoints.api.hot_paths import RecoMindAPI
from recomind.entrypoints.logs import RequestIdFilter
from recomind.services.packed_list import PackedList
from tests.integration.conftest import CACHE_IDS, CACHE_URLS, Served, clean_cache_url, seeded
from tests.support.servers import serve_in_thread

KEY = "key-" + uuid.uuid4().hex
AUTH = {"X-API-Key": KEY}
VIEWERS = ["u20", "u21", "u22", "u23", "u24", "nobody-yet"]


@pytest.fixture(scope="module", params=CACHE_URLS, ids=CACHE_IDS)
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    cache_url = clean_cache_url(request.param, VIEWERS)
    recomind = seeded(tmp_path_factory.mktemp("fast"), api_keys=KEY, cache_url=cache_url)
    with serve_in_thread(recomind) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Served(url, recomind, http)


REQUESTS = [
    "/recommendations/u20",
    "/recommendations/u21?limit=3",
    "/recommendations/u22?limit=3&explain=true",
    "/recommendations/u23?limit=100&explain=0",
    "/recommendations/nobody-yet?limit=4",  # trending for a viewer not known yet
    "/recommendations/u20?limit=500&limit=5",  # the last of repeated parameters wins
    "/recommendations/u20?limit=5&limit=500",
    "/recommendations/u20?limit=0",
    "/recommendations/u20?limit=101",
    "/recommendations/u20?limit=ten",
    "/recommendations/u20?limit=",
    "/recommendations/u20?explain=maybe",
    "/recommendations/u20?limit=0&explain=maybe",  # both errors at once
    "/recommendations/u20?cursor=garbage",
    "/recommendations/u20?cursor=",  # an empty cursor is no cursor
    "/recommendations/bad%20id",
    "/recommendations/bad%20id?limit=0",  # the id is checked first
    "/recommendations/" + "x" * 65,
    "/recommendations/",
    "/recommendations/u20/more",
    "/trending",
    "/trending?limit=7&explain=yes",
    "/trending?limit=0",
    "/trending?cursor=%21%21",
    "/trending?cursor=LTE",  # base64 of -1
    "/trending?cursor=MTAwMDA",  # past the end: an empty page
]


def comparable(r: httpx.Response) -> tuple[Any, ...]:
    """Status, content type, body and the feed headers; the cursor of a new session is
    random, so it is checked for its form and left out, and the Link for its path."""
    headers = {k: r.headers.get(k) for k in ("x-feed-source", "x-feed-session")}
    cursor = r.headers.get("x-next-cursor")
    link = r.headers.get("link")
    if cursor is not None:
        assert link is not None and link.startswith("<") and link.endswith('>; rel="next"')
        url = httpx.URL(link[1:-13])
        assert url.params["cursor"] == cursor
        link = str(url.copy_remove_param("cursor").raw_path)
    else:
        assert link is None
    body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
    return r.status_code, r.headers.get("content-type"), body, headers, cursor is not None, link


def test_the_fast_path_and_the_fastapi_routes_answer_alike(served: Served) -> None:
    plain = create_app(served.recomind, run_workers=False, hot_routes=False)
    assert isinstance(plain, RecoMindAPI) and plain.hot_routes is None

    async def via_plain() -> list[tuple[Any, ...]]:
        transport = httpx.ASGITransport(app=plain)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [comparable(await client.get(p, headers=AUTH)) for p in REQUESTS]

    fast = [comparable(served.http.get(p, headers=AUTH)) for p in REQUESTS]
    expected = asyncio.run(via_plain())
    for path, got, want in zip(REQUESTS, fast, expected, strict=True):
        assert got == want, path
    statuses = {p: f[0] for p, f in zip(REQUESTS, fast, strict=True)}
    assert statuses["/recommendations/u20"] == statuses["/trending"] == 200
    assert statuses["/recommendations/u20?limit=0"] == 422
    assert statuses["/recommendations/u20/more"] == 404
    assert fast[0][3] == {"x-feed-source": "cache", "x-feed-session": "started"}
    problem = fast[REQUESTS.index("/recommendations/bad%20id?limit=0")][2]
    assert problem["errors"][0]["field"] == "user_id"
    both = fast[REQUESTS.index("/recommendations/u20?limit=0&explain=maybe")][2]
    assert [e["field"] for e in both["errors"]] == ["query.limit", "query.explain"]


def test_the_served_app_uses_the_fast_path_and_counts_it_under_the_route(
    served: Served,
) -> None:
    assert served.http.get("/recommendations/u21").status_code == 401  # keys still apply
    assert served.http.get("/trending").status_code == 401
    assert served.http.get("/recommendations/u21", headers=AUTH).status_code == 200
    assert served.http.get("/trending", headers=AUTH).status_code == 200
    metrics = served.http.get("/metrics", headers=AUTH).text
    assert 'route="/recommendations/{user_id}",status="200"' in metrics
    assert 'route="/trending",status="200"' in metrics
    assert 'route="/recommendations/{user_id}",status="401"' not in metrics  # refused first


def test_a_session_continues_through_the_fast_path_without_repeats(served: Served) -> None:
    r = served.http.get("/recommendations/u22", params={"limit": 7}, headers=AUTH)
    seen = [i["video_id"] for i in r.json()]
    cursor = r.headers.get("x-next-cursor")
    while cursor is not None:
        r = served.http.get(
            "/recommendations/u22", params={"limit": 7, "cursor": cursor}, headers=AUTH
        )
        assert r.status_code == 200 and r.headers["x-feed-session"] == "continued"
        seen += [i["video_id"] for i in r.json()]
        cursor = r.headers.get("x-next-cursor")
    assert len(seen) == len(set(seen)) > 7
    other = served.http.get("/recommendations/u23", headers=AUTH).headers["x-next-cursor"]
    r = served.http.get("/recommendations/u22", params={"cursor": other}, headers=AUTH)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


class CountingCache:
    """Passes every call to the real adapter and counts them: each is one round trip on
    Redis."""

    def __init__(self, inner: Cache) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.calls.append("get")
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls.append("get_many")
        return self.inner.get_many(keys)

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self.calls.append("set")
        self.inner.set(key, value, ttl_seconds)

    def delete(self, *keys: str) -> None:
        self.calls.append("delete")
        self.inner.delete(*keys)

    def incr(self, amounts: Mapping[str, int], ttl_seconds: float) -> dict[str, int]:
        self.calls.append("incr")
        return self.inner.incr(amounts, ttl_seconds)

    def append(self, values: Mapping[str, bytes], max_bytes: int, ttl_seconds: float) -> None:
        self.calls.append("append")
        self.inner.append(values, max_bytes, ttl_seconds)

    def get_quick(self, key: str) -> bytes | None:
        self.calls.append("get_quick")
        return self.inner.get_quick(key)

    def near_reads(self) -> Mapping[str, int]:
        return self.inner.near_reads()

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def test_a_cached_page_is_one_read_and_its_impressions_are_written_behind(
    served: Served,
) -> None:
    fail_soft = served.recomind.cache
    log = served.recomind.feed.sessions.impressions_log
    first = served.http.get("/recommendations/u23", params={"limit": 3}, headers=AUTH)
    assert first.headers["x-feed-source"] == "cache"
    log.flush()
    listed = PackedList.from_bytes(fail_soft.get(cache_keys.recommendations("u23")) or b"")
    assert listed is not None
    before = served.recomind.feed.sessions.times_served("u23", listed.ids)
    counting = CountingCache(fail_soft.inner)
    fail_soft.inner = counting
    try:
        r = served.http.get(
            "/recommendations/u23",
            params={"limit": 3, "cursor": first.headers["x-next-cursor"]},
            headers=AUTH,
        )
        during = list(counting.calls)
        log.flush()  # what the impressions thread does within `flush_seconds`
    finally:
        fail_soft.inner = counting.inner
    assert r.status_code == 200 and r.headers["x-feed-session"] == "continued"
    assert during in (["get_quick"], ["get_quick", "append"])  # the thread may flush first
    assert counting.calls == ["get_quick", "append"]
    page = [i["video_id"] for i in r.json()]
    assert not set(page) & {i["video_id"] for i in first.json()}
    after = served.recomind.feed.sessions.times_served("u23", listed.ids)
    # one more serving of each, in the cache for any process that rebuilds lists
    assert after == {**before, **{v: before.get(v, 0) + 1 for v in page}}


def test_log_lines_written_while_the_page_is_built_carry_the_request_id(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page whose list is not cached is built in a worker thread; the request's context
    goes with it."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(RequestIdFilter())  # reads the request id in the thread that logs
    handler.emit = records.append  # type: ignore[method-assign]
    feed = served.recomind.feed
    build = feed.page
    builder_log = logging.getLogger("test.feed.builder")
    builder_log.addHandler(handler)

    def page_logged(*args: Any) -> Any:
        builder_log.warning("building a page in %s", threading.current_thread().name)
        return build(*args)

    monkeypatch.setattr(feed, "page", page_logged)
    served.recomind.cache.delete(cache_keys.recommendations("u24"))
    try:
        r = served.http.get(
            "/recommendations/u24", headers={**AUTH, "X-Request-Id": "trace-feed-24"}
        )
    finally:
        builder_log.removeHandler(handler)
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-feed-24"
    assert r.headers["x-feed-source"] != "cache"
    assert len(records) == 1 and records[0].getMessage().startswith("building a page in feed")
    assert [getattr(rec, "request_id", None) for rec in records] == ["trace-feed-24"]


def test_trending_read_again_at_once_is_answered_by_the_near_cache_on_redis(
    served: Served,
) -> None:
    def near(result: str) -> float:
        scraped = served.http.get("/metrics", headers=AUTH)
        assert scraped.status_code == 200
        for family in text_string_to_metric_families(scraped.text):
            for sample in family.samples:
                if sample.name == "recomind_feed_cache_requests_total" and sample.labels == {
                    "cache": "near",
                    "result": result,
                }:
                    return sample.value
        return -1.0  # no such sample: no near cache

    redis = served.recomind.settings.cache_url.startswith("redis")
    before = near("hit"), near("miss")
    for _ in range(3):
        assert served.http.get("/trending", headers=AUTH).status_code == 200
    after = near("hit"), near("miss")
    if not redis:  # the in-process cache has no near cache: no such samples at all
        assert before == after == (-1.0, -1.0)
        return
    assert after[0] - before[0] >= 2  # read again within the near cache's second
    assert after[0] - before[0] + after[1] - before[1] == 3
