"""Infinite scroll over real HTTP: feed sessions, bad cursors, demotion on refresh.

The viewer's list is rebuilt after each of their actions here (`immediate` policy), so a
refresh can be made to happen between two pages of one session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recomind.domain import cache_keys
from recomind.services.packed_list import PackedList
from tests.integration.conftest import CACHE_IDS, CACHE_URLS, Served, clean_cache_url, seeded
from tests.support.servers import serve_in_thread

FEED_KEYS = {"video_id", "title", "url", "tags"}


VIEWERS = [f"u{n}" for n in range(10, 19)] + ["nobody-yet"]


@pytest.fixture(scope="module", params=CACHE_URLS, ids=CACHE_IDS)
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    cache_url = clean_cache_url(request.param, VIEWERS)
    recomind = seeded(
        tmp_path_factory.mktemp("recomind"), refresh_policy="immediate", cache_url=cache_url
    )
    with serve_in_thread(recomind) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Served(url, recomind, http)


def page(s: Served, user: str, limit: int = 10, cursor: str | None = None) -> httpx.Response:
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    r = s.http.get(f"/recommendations/{user}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r


def ids(r: httpx.Response) -> list[str]:
    items = r.json()
    assert isinstance(items, list) and all(set(i) == FEED_KEYS for i in items)
    return [i["video_id"] for i in items]


def scroll(s: Served, user: str, cursor: str | None, limit: int = 10) -> list[str]:
    """Every remaining page of the session, in order."""
    served: list[str] = []
    while cursor is not None:
        r = page(s, user, limit, cursor)
        assert r.headers["x-feed-session"] == "continued"
        served += ids(r)
        cursor = r.headers.get("x-next-cursor")
    return served


def unseen_video(s: Served, user: str, avoid: set[str]) -> str:
    seen = {a.video_id for a in s.recomind.store.user_actions(user)}
    return next(
        v.video_id
        for v in s.recomind.store.all_videos()
        if v.video_id not in seen and v.video_id not in avoid
    )


def act(s: Served, user: str, video_id: str, action: str = "like") -> None:
    refreshed = s.http.get("/admin/stats").json()["feeds_refreshed"]
    body = {"user_id": user, "video_id": video_id, "action_type": action}
    assert s.http.post("/video_action", json=body).status_code == 202
    s.wait_applied()
    assert s.http.get("/admin/stats").json()["feeds_refreshed"] == refreshed + 1


def test_a_session_pages_through_the_whole_list_without_repeats(served: Served) -> None:
    first = page(served, "u10", limit=7)
    assert first.headers["x-feed-session"] == "started"
    cursor = first.headers["x-next-cursor"]
    link = first.headers["link"]
    assert link.endswith('>; rel="next"') and f"cursor={cursor}" in link and "limit=7" in link
    everything = ids(first) + scroll(served, "u10", cursor, limit=7)
    assert len(everything) == len(set(everything)) == served.recomind.settings.top_n
    seen = {a.video_id for a in served.recomind.store.user_actions("u10")}
    assert not seen & set(everything)


def test_a_refresh_mid_session_repeats_nothing_and_drops_what_was_acted_on(
    served: Served,
) -> None:
    first = page(served, "u11")
    before = ids(first)
    # the viewer likes a video that is further down their list
    cached = served.recomind.cache.get(cache_keys.recommendations("u11"))
    assert cached is not None
    packed = PackedList.from_bytes(cached)
    assert packed is not None
    rest_of_list = packed.ids
    liked = next(v for v in rest_of_list if v not in before)
    act(served, "u11", liked)
    second = page(served, "u11", cursor=first.headers["x-next-cursor"])
    assert second.headers["x-feed-session"] == "continued"
    after = ids(second) + scroll(served, "u11", second.headers.get("x-next-cursor"))
    assert not set(before) & set(after)
    assert liked not in after
    assert len(after) == len(set(after))


def test_videos_served_and_not_acted_on_are_demoted_on_the_next_refresh(
    served: Served,
) -> None:
    head = ids(page(served, "u12"))
    act(served, "u12", unseen_video(served, "u12", set(head)), "view")  # a rebuild
    reopened = page(served, "u12")  # pull to refresh: a new session
    assert reopened.headers["x-feed-session"] == "started"
    assert reopened.headers["x-feed-source"] == "cache"
    assert not set(head) & set(ids(reopened))
    rest = ids(reopened) + scroll(served, "u12", reopened.headers.get("x-next-cursor"))
    kept = set(head) & set(rest)
    assert kept and set(rest[len(rest) - len(kept) :]) == kept  # still there, at the back


def test_a_list_read_again_from_the_table_is_demoted_too(served: Served) -> None:
    head = ids(page(served, "u13"))
    served.recomind.cache.delete(cache_keys.recommendations("u13"))  # as if its TTL ran out
    reopened = page(served, "u13")
    assert reopened.headers["x-feed-source"] == "table"
    assert not set(head) & set(ids(reopened))


def test_the_hourly_precompute_demotes_too(served: Served) -> None:
    head = ids(page(served, "u14"))
    assert served.http.post("/admin/retrain").status_code == 200
    reopened = page(served, "u14")
    assert reopened.headers["x-feed-source"] == "cache"
    assert not set(head) & set(ids(reopened))


def _flip(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


def test_bad_cursors_are_problems_and_change_nothing(served: Served) -> None:
    first = page(served, "u15", limit=5)
    cursor = first.headers["x-next-cursor"]
    other = page(served, "u16", limit=5).headers["x-next-cursor"]
    impressions = served.recomind.feed.sessions.impressions_log
    impressions.flush()  # the pages' impressions, written behind, are in the cache now
    state = served.recomind.cache.get(cache_keys.impressions("u15"))
    assert state is not None
    bad_before = served.recomind.feed.sessions.bad_cursors
    for bad in ["!!", "x", cursor[:-4], cursor + "AAAA", _flip(cursor), other, "MTA"]:
        r = served.http.get("/recommendations/u15", params={"cursor": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["status"] == 422 and problem["errors"][0]["field"] == "cursor"
    assert impressions.flush() == 0  # nothing was recorded for them
    assert served.recomind.cache.get(cache_keys.impressions("u15")) == state
    assert served.recomind.feed.sessions.bad_cursors == bad_before + 7
    # the genuine cursor still continues the session
    second = page(served, "u15", limit=5, cursor=cursor)
    assert second.headers["x-feed-session"] == "continued"
    assert not set(ids(first)) & set(ids(second))


def test_an_expired_session_cursor_starts_a_new_session(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = page(served, "u17", limit=5)
    cursor = first.headers["x-next-cursor"]
    later = time.time() + served.recomind.settings.feed_session_seconds + 60
    monkeypatch.setattr(served.recomind.feed.sessions, "clock", lambda: later)
    r = page(served, "u17", limit=5, cursor=cursor)
    assert r.headers["x-feed-session"] == "restarted"
    assert len(ids(r)) == 5
    fresh_cursor = r.headers["x-next-cursor"]
    assert fresh_cursor != cursor
    assert page(served, "u17", 5, fresh_cursor).headers["x-feed-session"] == "continued"


def test_an_unknown_viewer_pages_through_trending(served: Served) -> None:
    first = page(served, "nobody-yet", limit=20)
    assert first.headers["x-feed-source"] == "trending"
    second = page(served, "nobody-yet", limit=20, cursor=first.headers["x-next-cursor"])
    assert second.headers["x-feed-source"] == "trending"
    assert not set(ids(first)) & set(ids(second))
    trending = [i["video_id"] for i in served.http.get("/trending", params={"limit": 40}).json()]
    assert ids(first) + ids(second) == trending


def test_explain_pages_carry_reasons(served: Served) -> None:
    r = served.http.get("/recommendations/u18", params={"explain": "true", "limit": 5})
    assert all(set(i) == FEED_KEYS | {"reason"} and i["reason"] for i in r.json())


def test_openapi_documents_the_feed_shape_and_headers(served: Served) -> None:
    spec = served.http.get("/openapi.json").json()
    get = spec["paths"]["/recommendations/{user_id}"]["get"]
    ok = get["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and schema["items"]["$ref"].endswith("/FeedItemOut")
    assert {"X-Feed-Source", "X-Feed-Session", "X-Next-Cursor", "Link"} <= set(ok["headers"])
    assert "application/problem+json" in get["responses"]["422"]["content"]
