"""Serving: a viewer's Top-N feed and the trending feed, fastest source first.

`recommendations:{user_id}` in the cache -> the `recommendations` table -> computed
on the fly from the viewer's history and the current model -> trending (for
viewers with no history). Lists are cached already hydrated (title, url, tags) and
serialised (`packed_list`), so a cache hit needs no store read and a page is cut out
of the cached bytes.

Pages come out of feed sessions (`feed_sessions`): a page never repeats a video of
its session's earlier pages. Whenever a list is built (from the table, on the fly,
on a refresh or by the hourly precompute) it goes through `_present`, which demotes
what the viewer was served lately without acting on it; re-ranking plugs in there too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from recomind.config import FeedCompute
from recomind.domain import cache_keys
from recomind.domain.model import ActionWeights, ScoredVideo, StoredRecommendations, Video
from recomind.domain.ports import Cache, Ranker, RankRequest, Store
from recomind.domain.scoring import score_at
from recomind.recommenders.data import history_from_actions
from recomind.recommenders.quick import QuickRecommender
from recomind.recommenders.rerank import (
    RerankSettings,
    VideoInfo,
    candidate_count,
    diversify,
    rerank_ranked,
)
from recomind.services.feed_sessions import Cursor, FeedSessions, Position, SessionEvent
from recomind.services.impressions import demote
from recomind.services.model_registry import LoadedModel, ModelHolder
from recomind.services.packed_list import FeedItem, PackedList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSettings:
    top_n: int
    recommendations_ttl: float
    popular_ttl: float
    popularity_half_life_hours: float
    rerank: RerankSettings = field(default_factory=RerankSettings)
    compute: FeedCompute = FeedCompute.FAST
    demotion: int = 0  # places a served-but-not-acted video moves down per serving
    remote_ranker: bool = False  # a model server ranks: every on-the-fly list goes to it


@dataclass(frozen=True)
class Feed:
    items: PackedList
    source: str  # cache | table | computed | trending


@dataclass(frozen=True)
class FeedPage:
    body: bytes  # the page as a JSON array, ready to send
    video_ids: list[str]
    source: str  # cache | table | computed | trending
    session: SessionEvent
    next_cursor: str | None


class FeedService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        models: ModelHolder,
        settings: FeedSettings,
        weights: ActionWeights,
        ranker: Ranker,
        sessions: FeedSessions,
    ) -> None:
        self.ranker = ranker
        self.store = store
        self.cache = cache
        self.models = models
        self.settings = settings
        self.weights = weights
        self.sessions = sessions
        self.sources: Counter[str] = Counter()  # feeds served, by where the list came from
        self.fallbacks: Counter[str] = Counter()  # each step down the read path, by its target
        self.trending_cache: Counter[str] = Counter()  # hit | miss of `popular_videos`
        self.computed: Counter[str] = Counter()  # lists computed on the fly, by FeedCompute
        self.compute_seconds: dict[str, float] = defaultdict(float)  # …and the time they took
        self.demoted = 0  # videos moved down because they were served and not acted on
        self._quick: QuickRecommender | None = None
        self._quick_lock = threading.Lock()

    # -- the viewer's feed -------------------------------------------------------------

    def page(
        self, user_id: str, limit: int, cursor: str | None = None, explain: bool = False
    ) -> FeedPage:
        """One page of the viewer's feed session (a new one without a cursor).

        The viewer's current list minus what the session already served; a bad cursor
        raises `InvalidInput` before anything is read or written.
        """
        wanted = self.sessions.check(user_id, cursor)
        cached = self.cache.get(cache_keys.recommendations(user_id))
        page = self.cached_page(user_id, limit, wanted, explain, cached)
        if page is not None:
            return page
        feed = self._build(user_id)
        return self._page_of(feed, self.sessions.resume(user_id, wanted), limit, explain)

    def cached_page(
        self, user_id: str, limit: int, wanted: Cursor | None, explain: bool, cached: bytes | None
    ) -> FeedPage | None:
        """The page cut out of `recommendations:{user_id}` as read from the cache (`cached`),
        without I/O; None when that is no list (a miss), and the store must be asked.
        `wanted` is the cursor as `sessions.check` decoded it."""
        packed = PackedList.from_bytes(cached) if cached is not None else None
        if packed is None:
            return None
        position = self.sessions.resume(user_id, wanted)
        return self._page_of(Feed(packed, "cache"), position, limit, explain)

    def _page_of(self, feed: Feed, position: Position, limit: int, explain: bool) -> FeedPage:
        self.sources[feed.source] += 1
        ids, hashes = feed.items.ids, feed.items.hashes
        fresh = position.fresh(ids, hashes)
        chosen = fresh[:limit]
        video_ids = [ids[n] for n in chosen]
        chosen_hashes = [hashes[n] for n in chosen]
        next_cursor = self.sessions.record(
            position, video_ids, more=len(fresh) > limit, hashes=chosen_hashes
        )
        body = feed.items.page(chosen, explain)
        return FeedPage(body, video_ids, feed.source, position.event, next_cursor)

    def _build(self, user_id: str) -> Feed:
        """The viewer's whole list when the cache has none, and where it came from: the
        table, else computed, else trending; a list built here demotes what was served."""
        self.fallbacks["table"] += 1
        stored = self.store.get_recommendations(user_id)
        if stored is not None and stored.items:
            # The hourly list may predate the viewer's latest actions: drop what they have seen.
            seen = {a.video_id for a in self.store.user_actions(user_id)}
            fresh = [s for s in stored.items if s.video_id not in seen]
            items = self._cache_list(user_id, self._present(user_id, fresh))
            return Feed(items, "table")
        self.fallbacks["computed"] += 1
        computed = self.compute(user_id)
        if computed is not None:
            items = self._cache_list(user_id, self._present(user_id, computed.items))
            return Feed(items, "computed")
        self.fallbacks["trending"] += 1
        return Feed(self.trending_list(), "trending")

    def _present(
        self,
        user_id: str,
        scored: Sequence[ScoredVideo],
        videos: Mapping[str, Video] | None = None,
    ) -> list[FeedItem]:
        """A candidate list, best first, as the viewer will see it.

        This is the one place a list is arranged for showing (re-ranking belongs here):
        videos served lately and not acted on move down, then the list is hydrated.
        """
        if self.settings.demotion > 0 and scored:
            ids = [s.video_id for s in scored]
            served = self.sessions.times_served(user_id, ids)
            self.demoted += len(served)
            scored = [scored[i] for i in demote(ids, served, self.settings.demotion)]
        return self._hydrate(scored, videos)

    def compute(
        self, user_id: str, path: FeedCompute | None = None
    ) -> StoredRecommendations | None:
        """The viewer's list from their current history, or None if there is nothing to go on.

        `fast` scores candidates only (`QuickRecommender`); `full` ranks the whole catalogue
        through the Ranker port (this process's model, or the model server when one is set),
        as the hourly precompute does. The settings choose by default. Either way the list is
        then re-ranked (diversity, exploration, freshness, pins) when a model is loaded here.
        """
        path = path or self.settings.compute
        actions = self.store.user_actions(user_id)
        if not actions:
            return None
        started = time.perf_counter()
        loaded = self.models.get()
        seen = {a.video_id for a in actions}
        k = self.settings.top_n
        wanted = candidate_count(k, len(seen))
        ranked: list[ScoredVideo]
        if path is FeedCompute.FAST and loaded is not None and not self.settings.remote_ranker:
            history = history_from_actions(actions, loaded.index, self.weights)
            ids = loaded.model.item_ids
            picks = self._quick_for(loaded).explain(history, wanted)
            ranked = [ScoredVideo(str(ids[r.item]), r.score, r.reason) for r in picks]
            version = loaded.version
        else:
            ranking = self.ranker.rank(RankRequest(tuple(actions), wanted, user_id))
            if ranking is None:  # no model to rank with
                return None
            ranked, version = list(ranking.items), ranking.model_version
        if loaded is not None:  # re-ranking reads tags, creators and ages from the model
            now, rules = datetime.now(UTC).timestamp(), self.settings.rerank
            items = tuple(rerank_ranked(loaded.model, ranked, seen, user_id, rules, k, now))
        else:
            items = tuple(s for s in ranked if s.video_id not in seen)[:k]
        self.computed[path.value] += 1
        self.compute_seconds[path.value] += time.perf_counter() - started
        return StoredRecommendations(user_id, items, version, datetime.now(UTC))

    def _quick_for(self, loaded: LoadedModel) -> QuickRecommender:
        quick = self._quick
        if quick is None or quick.model is not loaded.model:
            with self._quick_lock:
                quick = self._quick
                if quick is None or quick.model is not loaded.model:
                    quick = self._quick = QuickRecommender(loaded.model)
        return quick

    def ranked(self, user_id: str, k: int) -> list[ScoredVideo]:
        """The viewer's top k with scores from the full model; trending scores if no history."""
        computed = self.compute(user_id, FeedCompute.FULL)
        if computed is not None:
            return list(computed.items[:k])
        loaded = self.models.get()
        if loaded is None:
            return [ScoredVideo(i["video_id"], 0.0, i.get("reason")) for i in self.trending(k)]
        scores = loaded.model.popularity.score(history_from_actions([], loaded.index, self.weights))
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            ScoredVideo(str(loaded.model.item_ids[i]), float(scores[i]), "trending now")
            for i in order
        ]

    def refresh_user_feed(self, user_id: str) -> None:
        """Rebuild the viewer's list now (after they acted) in the table and the cache."""
        computed = self.compute(user_id)
        if computed is None:
            self.invalidate(user_id)
            return
        self.publish([computed])

    def publish(
        self, rows: Sequence[StoredRecommendations], videos: Mapping[str, Video] | None = None
    ) -> None:
        """Store freshly built lists in the table (as ranked) and cache them as presented
        (demoted); `videos` saves a store read per list when the caller has the catalog."""
        self.store.save_recommendations(rows)
        for row in rows:
            self._cache_list(row.user_id, self._present(row.user_id, row.items, videos=videos))

    def drop_from_cached(self, user_id: str, video_ids: set[str]) -> None:
        self.drop_from_cached_lists({user_id: video_ids})

    def drop_from_cached_lists(self, acted_on: Mapping[str, set[str]]) -> None:
        """Hide from each viewer's cached list the videos they acted on: one read for all
        the viewers (a consumer batch holds thousands), a write only where a list changes."""
        users = list(acted_on)
        keys = [cache_keys.recommendations(u) for u in users]
        ttl = self.settings.recommendations_ttl
        for user_id, key, cached in zip(users, keys, self.cache.get_many(keys), strict=True):
            packed = PackedList.from_bytes(cached) if cached is not None else None
            if packed is None:
                continue
            video_ids = acted_on[user_id]
            kept = [n for n, v in enumerate(packed.ids) if v not in video_ids]
            if len(kept) != len(packed):
                self.cache.set(key, packed.select(kept).to_bytes(), ttl)

    def invalidate(self, user_id: str) -> None:
        self.cache.delete(cache_keys.recommendations(user_id))

    def _cache_list(self, user_id: str, items: list[FeedItem]) -> PackedList:
        packed = PackedList.pack(items)
        key = cache_keys.recommendations(user_id)
        self.cache.set(key, packed.to_bytes(), self.settings.recommendations_ttl)
        return packed

    def _hydrate(
        self, scored: Sequence[ScoredVideo], videos: Mapping[str, Video] | None = None
    ) -> list[FeedItem]:
        if videos is None:
            videos = self.store.get_videos(s.video_id for s in scored)
        return [feed_item(videos[s.video_id], s.reason) for s in scored if s.video_id in videos]

    # -- trending ------------------------------------------------------------------------

    def trending(self, limit: int) -> list[FeedItem]:
        return self.trending_list().items()[:limit]

    def trending_list(self) -> PackedList:
        """The trending list as cached (`popular_videos`), built when missing."""
        packed = self.cached_trending(self.cache.get(cache_keys.POPULAR_VIDEOS))
        if packed is not None:
            return packed
        self.trending_cache["miss"] += 1
        packed = PackedList.pack(self._compute_trending(max(self.settings.top_n, 200)))
        self.cache.set(cache_keys.POPULAR_VIDEOS, packed.to_bytes(), self.settings.popular_ttl)
        return packed

    def cached_trending(self, cached: bytes | None) -> PackedList | None:
        """The trending list in `popular_videos` as read from the cache (no I/O); None if
        it is not there."""
        packed = PackedList.from_bytes(cached) if cached is not None else None
        if packed is not None:
            self.trending_cache["hit"] += 1
        return packed

    def _compute_trending(self, n: int) -> list[FeedItem]:
        now = datetime.now(UTC)
        rows = self.store.top_popularity(n * 5)
        hl = self.settings.popularity_half_life_hours
        ranked = sorted(rows, key=lambda p: -score_at(p.score, p.last_updated, now, hl))
        ranked = [p for p in ranked if p.score > 0][:n]
        videos = dict(self.store.get_videos(p.video_id for p in ranked))
        items = [
            feed_item(videos[p.video_id], "trending now") for p in ranked if p.video_id in videos
        ]
        if len(items) < n:  # a young catalog: fill with the newest videos
            taken = {i["video_id"] for i in items}
            newest = sorted(self.store.all_videos(), key=lambda v: v.created_at, reverse=True)
            fill = [v for v in newest if v.video_id not in taken][: n - len(items)]
            videos.update((v.video_id, v) for v in fill)
            items += [feed_item(v, "new") for v in fill]
        return self._diversify_trending(items, videos)

    def _diversify_trending(
        self, items: list[FeedItem], videos: Mapping[str, Video]
    ) -> list[FeedItem]:
        """The trending order with at most `trending_max_per_tag` videos per tag (and the usual
        cap per creator) in each window: a new viewer sees more topics on their first page, so
        they are likelier to find one of their own to like, and that like says more."""
        rules = self.settings.rerank
        if rules.trending_max_per_tag <= 0:
            return items

        def describe(video_id: str) -> VideoInfo | None:
            v = videos.get(video_id)
            return VideoInfo(v.tags, v.creator_id, v.created_at.timestamp()) if v else None

        ranked = [ScoredVideo(i["video_id"], 0.0) for i in items]
        capped = replace(rules, max_per_tag=rules.trending_max_per_tag)
        position = {i["video_id"]: n for n, i in enumerate(items)}
        return [
            items[position[v.video_id]] for v in diversify(ranked, describe, capped, len(items))
        ]

    def invalidate_trending(self) -> None:
        self.cache.delete(cache_keys.POPULAR_VIDEOS)

    # -- similar videos --------------------------------------------------------------------

    def similar(self, video_id: str, limit: int) -> list[FeedItem] | None:
        loaded = self.models.get()
        if loaded is None or video_id not in loaded.index:
            return None
        picks = loaded.model.similar_items(loaded.index[video_id], limit)
        ids = [str(loaded.model.item_ids[i]) for i, _ in picks]
        videos = self.store.get_videos(ids)
        return [feed_item(videos[v], "similar") for v in ids if v in videos]


def feed_item(video: Video, reason: str | None) -> FeedItem:
    item: FeedItem = {
        "video_id": video.video_id,
        "title": video.title,
        "url": video.url,
        "tags": list(video.tags),
    }
    if reason is not None:
        item["reason"] = reason
    return item


def public_items(items: list[FeedItem], explain: bool) -> list[FeedItem]:
    """The seed's response shape; `reason` only when asked for."""
    if explain:
        return items
    return [{k: v for k, v in item.items() if k != "reason"} for item in items]
