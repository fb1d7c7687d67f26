"""Serving: a viewer's Top-N feed and the trending feed, fastest source first.

`recommendations:{user_id}` in the cache -> the `recommendations` table -> computed
on the fly from the viewer's history and the current model -> trending (for
viewers with no history). Lists are cached already hydrated (title, url, tags),
so a cache hit needs no store read.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from recomind.domain import cache_keys
from recomind.domain.model import ActionWeights, ScoredVideo, StoredRecommendations, Video
from recomind.domain.ports import Cache, Ranker, RankRequest, Store
from recomind.domain.scoring import score_at
from recomind.recommenders.data import history_from_actions
from recomind.recommenders.rerank import RerankSettings, candidate_count, rerank_ranked
from recomind.services.model_registry import ModelHolder

log = logging.getLogger(__name__)

FeedItem = dict[str, Any]  # {"video_id","title","url","tags"} (+ "reason")


@dataclass(frozen=True)
class FeedSettings:
    top_n: int
    recommendations_ttl: float
    popular_ttl: float
    popularity_half_life_hours: float
    rerank: RerankSettings = field(default_factory=RerankSettings)


@dataclass(frozen=True)
class Feed:
    items: list[FeedItem]
    source: str  # cache | table | computed | trending


class FeedService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        models: ModelHolder,
        settings: FeedSettings,
        weights: ActionWeights,
        ranker: Ranker,
    ) -> None:
        self.ranker = ranker
        self.store = store
        self.cache = cache
        self.models = models
        self.settings = settings
        self.weights = weights
        self.sources: Counter[str] = Counter()
        self.trending_cache: Counter[str] = Counter()  # hit | miss of `popular_videos`

    # -- the viewer's feed -------------------------------------------------------------

    def recommendations(self, user_id: str, limit: int) -> Feed:
        feed = self._read(user_id)
        self.sources[feed.source] += 1
        return Feed(feed.items[:limit], feed.source)

    def _read(self, user_id: str) -> Feed:
        cached = self.cache.get(cache_keys.recommendations(user_id))
        if cached is not None:
            return Feed(orjson.loads(cached), "cache")
        stored = self.store.get_recommendations(user_id)
        if stored is not None and stored.items:
            # The hourly list may predate the viewer's latest actions: drop what they have seen.
            seen = {a.video_id for a in self.store.user_actions(user_id)}
            items = self._hydrate(tuple(s for s in stored.items if s.video_id not in seen))
            self._cache_list(user_id, items)
            return Feed(items, "table")
        computed = self.compute(user_id)
        if computed is not None:
            items = self._hydrate(computed.items)
            self._cache_list(user_id, items)
            return Feed(items, "computed")
        return Feed(self.trending(self.settings.top_n), "trending")

    def compute(self, user_id: str) -> StoredRecommendations | None:
        """The viewer's list from their current history, or None if there is nothing to go on."""
        actions = self.store.user_actions(user_id)
        if not actions:
            return None
        seen = {a.video_id for a in actions}
        k = self.settings.top_n
        request = RankRequest(tuple(actions), candidate_count(k, len(seen)), user_id)
        ranked = self.ranker.rank(request)
        if ranked is None:  # no model to rank with
            return None
        items = ranked.items[:k]
        loaded = self.models.get()
        if loaded is not None:  # re-ranking reads tags, creators and ages from the model
            now = datetime.now(UTC).timestamp()
            items = tuple(
                rerank_ranked(
                    loaded.model, ranked.items, seen, user_id, self.settings.rerank, k, now
                )
            )
        return StoredRecommendations(user_id, items, ranked.model_version, datetime.now(UTC))

    def ranked(self, user_id: str, k: int) -> list[ScoredVideo]:
        """The viewer's top k with scores from the current model; trending scores if no history."""
        computed = self.compute(user_id)
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
        self.store.save_recommendations([computed])
        self._cache_list(user_id, self._hydrate(computed.items))

    def drop_from_cached(self, user_id: str, video_ids: set[str]) -> None:
        key = cache_keys.recommendations(user_id)
        cached = self.cache.get(key)
        if cached is None:
            return
        items: list[FeedItem] = orjson.loads(cached)
        kept = [i for i in items if i["video_id"] not in video_ids]
        if len(kept) != len(items):
            self.cache.set(key, orjson.dumps(kept), self.settings.recommendations_ttl)

    def invalidate(self, user_id: str) -> None:
        self.cache.delete(cache_keys.recommendations(user_id))

    def _cache_list(self, user_id: str, items: list[FeedItem]) -> None:
        key = cache_keys.recommendations(user_id)
        self.cache.set(key, orjson.dumps(items), self.settings.recommendations_ttl)

    def _hydrate(self, scored: tuple[ScoredVideo, ...]) -> list[FeedItem]:
        videos = self.store.get_videos(s.video_id for s in scored)
        return [feed_item(videos[s.video_id], s.reason) for s in scored if s.video_id in videos]

    # -- trending ------------------------------------------------------------------------

    def trending(self, limit: int) -> list[FeedItem]:
        cached = self.cache.get(cache_keys.POPULAR_VIDEOS)
        if cached is not None:
            self.trending_cache["hit"] += 1
            items: list[FeedItem] = orjson.loads(cached)
            return items[:limit]
        self.trending_cache["miss"] += 1
        items = self._compute_trending(max(self.settings.top_n, 200))
        self.cache.set(cache_keys.POPULAR_VIDEOS, orjson.dumps(items), self.settings.popular_ttl)
        return items[:limit]

    def _compute_trending(self, n: int) -> list[FeedItem]:
        now = datetime.now(UTC)
        rows = self.store.top_popularity(n * 5)
        hl = self.settings.popularity_half_life_hours
        ranked = sorted(rows, key=lambda p: -score_at(p.score, p.last_updated, now, hl))
        ranked = [p for p in ranked if p.score > 0][:n]
        videos = self.store.get_videos(p.video_id for p in ranked)
        items = [
            feed_item(videos[p.video_id], "trending now") for p in ranked if p.video_id in videos
        ]
        if len(items) < n:  # a young catalog: fill with the newest videos
            taken = {i["video_id"] for i in items}
            newest = sorted(self.store.all_videos(), key=lambda v: v.created_at, reverse=True)
            items += [feed_item(v, "new") for v in newest if v.video_id not in taken][
                : n - len(items)
            ]
        return items

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
