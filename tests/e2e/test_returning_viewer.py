"""The seed's use cases 1 and 2 over HTTP, under each refresh policy, on a clock the test moves.

Use case 1: a first-time viewer likes a few #funny videos and the feed follows; then
they turn to #cooking, and what they see depends on the policy: `immediate` rebuilds
the list after each action, `after_n` (N = 3) after the third and not before, `ttl`
not until the cached list expires (a list that is not rebuilt only loses what the
viewer just acted on).

Use case 2: the same viewer comes back the next day (the clock moves 24 h). Their
profile is still there; the expired cache is refilled from the table or the fast path
on the first read, never empty; other viewers' likes today outrank yesterday's decayed
trending; after the hourly batch the feed mixes yesterday's tastes with today's hits;
and the policy still decides when a new taste (#cats) shows.

RecoMind runs in this process on embedded defaults (SQLite, memory cache, local log),
served by uvicorn on 127.0.0.1; everything asserted comes from HTTP responses (the store
is read only to pick videos of a tag and yesterday's most popular video).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from recomind.bootstrap import RecoMind, bootstrap
from recomind.config import RefreshPolicy, Settings
from recomind.domain.clock import ManualClock
from recomind.services.seed import seed_demo
from tests.support.servers import serve_in_thread

TTL_SECONDS = 600.0  # the seed's recommendations:{user_id} TTL (the default)
AFTER_N = 3
FUNNY = {"funny"}
FOOD = {"cooking", "recipes", "baking", "streetfood"}  # the simulator's food topic
ANIMALS = {"cats", "dogs", "pets", "cute"}
Item = dict[str, object]


@dataclass
class Platform:
    """One RecoMind on its own manual clock, served over HTTP."""

    recomind: RecoMind
    clock: ManualClock
    http: httpx.Client
    policy: RefreshPolicy
    liked: set[str] = field(default_factory=set)

    def wait_applied(self, timeout: float = 15.0) -> None:
        """Until every consumer group has caught up (the refresh hook runs before the commit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lags = self.http.get("/admin/stats").json()["consumers"]
            if all(c["lag"] == 0 for c in lags.values()):
                return
            time.sleep(0.02)
        raise TimeoutError("consumers did not catch up")

    def like(self, user_id: str, video_id: str) -> None:
        r = self.http.post(
            "/video_action", json={"user_id": user_id, "video_id": video_id, "action_type": "like"}
        )
        assert r.status_code == 202, r.text
        if user_id == VIEWER:
            self.liked.add(video_id)
        self.wait_applied()

    def feed(self, user_id: str) -> tuple[list[Item], str]:
        """The viewer's whole list (top_n = 100) and where it came from."""
        r = self.http.get(f"/recommendations/{user_id}", params={"limit": 100})
        assert r.status_code == 200, r.text
        return r.json(), r.headers["x-feed-source"]

    def videos_tagged(self, tags: set[str], exclude: set[str], n: int) -> list[str]:
        """Videos with any of `tags`, the most engaged first (so the model knows them)."""
        known = {p.video_id: p.score for p in self.recomind.store.top_popularity(10_000)}
        tagged = [v for v in self.recomind.store.all_videos() if tags & set(v.tags)]
        tagged.sort(key=lambda v: -known.get(v.video_id, 0.0))
        return [v.video_id for v in tagged if v.video_id not in exclude][:n]


VIEWER = "maya"


@pytest.fixture(params=[p.value for p in RefreshPolicy])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    policy = RefreshPolicy(request.param)
    clock = ManualClock()
    settings = Settings(
        home=tmp_path,
        refresh_policy=policy,
        refresh_after_actions=AFTER_N,
        recommendations_ttl_seconds=TTL_SECONDS,
        train_interval_seconds=0,  # the test runs the hourly batch itself, at a chosen time
        lake_flush_seconds=0.2,
    )
    recomind = bootstrap(settings, clock=clock)
    seed_demo(recomind.importer, n_videos=300, n_users=120)
    recomind.trainer.train()
    with serve_in_thread(recomind) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Platform(recomind, clock, http, policy)


def ids(items: list[Item]) -> list[str]:
    return [str(i["video_id"]) for i in items]


def share(items: list[Item], tags: set[str]) -> float:
    return sum(1 for i in items if tags & set(i["tags"])) / len(items)  # type: ignore[arg-type]


def without(items: list[Item], gone: set[str]) -> list[str]:
    return [v for v in ids(items) if v not in gone]


def turn_to_a_new_taste(p: Platform, tags: set[str]) -> None:
    """The viewer likes three videos of a taste their list does not lean to yet; each policy
    decides after which like the list is rebuilt."""
    before, _ = p.feed(VIEWER)
    picks = p.videos_tagged(tags, exclude=p.liked | set(ids(before)), n=AFTER_N)
    assert len(picks) == AFTER_N
    expected_rebuild = {
        RefreshPolicy.IMMEDIATE: 1,  # the first like already rebuilds
        RefreshPolicy.AFTER_N: AFTER_N,  # the third, not before
        RefreshPolicy.TTL: None,  # never on an action
    }[p.policy]
    for n, video_id in enumerate(picks, start=1):
        p.like(VIEWER, video_id)
        after, source = p.feed(VIEWER)
        assert source == "cache", (n, source)
        assert video_id not in ids(after), "a video the viewer just liked is still in the feed"
        if expected_rebuild is not None and n >= expected_rebuild:
            # rebuilt from the new history: the new taste climbs the list
            assert share(after, tags) > share(before, tags), (n, share(after, tags))
            assert ids(after) != without(before, p.liked)
        else:
            # the same list, only without the videos the viewer acted on
            assert ids(after) == without(before, p.liked), n

    if p.policy is RefreshPolicy.TTL:
        unchanged, _ = p.feed(VIEWER)
        p.clock.advance(TTL_SECONDS - 1)
        assert ids(p.feed(VIEWER)[0]) == ids(unchanged), "the list changed before it expired"
        p.clock.advance(1)
        after, source = p.feed(VIEWER)
        assert p.feed(VIEWER)[1] == "cache"  # the first read after expiry refilled the cache
        assert not set(ids(after)) & p.liked
        if source == "computed":  # no stored list: the fast path, from today's history
            assert share(after, tags) > share(before, tags)
        else:  # the hourly list from the table, minus what the viewer has seen since…
            assert source == "table", source
            assert ids(after) == ids(unchanged)
            # …until the next hourly batch rebuilds it
            p.clock.advance(timedelta(hours=1))
            assert p.http.post("/admin/retrain").status_code == 200
            after, source = p.feed(VIEWER)
            assert source == "cache"
            assert share(after, tags) > share(before, tags)


def test_first_time_viewer_then_the_next_day(platform: Platform) -> None:
    p = platform
    trending = p.http.get("/trending", params={"limit": 100}).json()

    # -- use case 1: a first-time viewer ----------------------------------------------------
    first, source = p.feed(VIEWER)
    assert source == "trending"
    assert ids(first) == ids(trending)
    assert p.http.get(f"/users/{VIEWER}").status_code == 404

    funny = [str(i["video_id"]) for i in trending if FUNNY & set(i["tags"])][:3]
    assert len(funny) == 3
    for video_id in funny:
        p.like(VIEWER, video_id)
    feed, source = p.feed(VIEWER)
    # immediate and after_n (the 3rd like) rebuilt and cached it; under ttl nothing was cached
    # for this viewer yet, so the read computes it on the fly (and caches it)
    assert source == ("computed" if p.policy is RefreshPolicy.TTL else "cache")
    assert not set(ids(feed)) & p.liked
    top = feed[:10]
    assert share(top, FUNNY) >= 2 * max(share(trending[:10], FUNNY), 0.1), ids(top)
    assert "funny" in p.http.get(f"/users/{VIEWER}").json()["top_tags"]

    turn_to_a_new_taste(p, FOOD)
    day_one, _ = p.feed(VIEWER)
    profile = p.http.get(f"/users/{VIEWER}").json()
    assert "funny" in profile["top_tags"] and FOOD & set(profile["top_tags"]), profile

    # -- use case 2: the same viewer, the next day ------------------------------------------
    p.clock.advance(timedelta(hours=24))
    profile = p.http.get(f"/users/{VIEWER}").json()  # its cache entry expired long ago
    assert "funny" in profile["top_tags"] and FOOD & set(profile["top_tags"]), profile
    returning, source = p.feed(VIEWER)
    # the list expired overnight: the first read refills it from the table (a list the
    # refresh policy saved) or the fast path (ttl saved none), and the next read is a hit
    assert source == ("computed" if p.policy is RefreshPolicy.TTL else "table"), source
    assert len(returning) >= 10
    assert not set(ids(returning)) & p.liked
    assert share(returning[:10], FUNNY | FOOD) >= 0.5, ids(returning[:10])
    assert p.feed(VIEWER)[1] == "cache"

    # Today's hits: other viewers pile onto two #funny videos this morning.
    yesterday_top = p.recomind.store.top_popularity(1)[0]
    before_hits = ids(p.http.get("/trending", params={"limit": 10}).json())  # now cached
    # two #funny videos she has not seen, from the bottom of her list (or outside it)
    rank = {v: i for i, v in enumerate(ids(returning))}
    candidates = p.videos_tagged(FUNNY, exclude=p.liked, n=1000)
    hits = sorted(candidates, key=lambda v: -rank.get(v, len(rank)))[:2]
    assert all(rank.get(v, len(rank)) >= 30 for v in hits), hits
    fans = [f"fan{k}" for k in range(15)]
    r = p.http.post(
        "/video_actions",
        json=[{"user_id": f, "video_id": v, "action_type": "like"} for f in fans for v in hits],
    )
    assert r.status_code == 202, r.text
    p.wait_applied()
    # popularity took the likes at once, the cached trending list only once its 15 min lapse
    assert ids(p.http.get("/trending", params={"limit": 10}).json()) == before_hits
    p.clock.advance(timedelta(minutes=15))
    today = ids(p.http.get("/trending", params={"limit": 10}).json())
    # 15 likes today outweigh yesterday's best, decayed by a day (half-life 48 h)
    assert set(hits) <= set(today[:3]), (hits, today)
    assert yesterday_top.video_id not in today[:2]

    # The hourly batch runs (today, on the moved clock) and rebuilds every active list.
    assert p.http.post("/admin/retrain").status_code == 200
    after_batch, source = p.feed(VIEWER)
    assert source == "cache"
    assert not set(ids(after_batch)) & p.liked
    assert share(after_batch[:10], FUNNY | FOOD) >= 0.5, ids(after_batch[:10])
    assert set(hits) & set(ids(after_batch[:10])), (hits, ids(after_batch[:10]))
    assert ids(after_batch) != ids(day_one)

    # The policy still rules today: overnight the after_n count started again from zero.
    turn_to_a_new_taste(p, ANIMALS)
