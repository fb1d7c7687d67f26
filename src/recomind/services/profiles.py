"""Viewer profiles (top tags) read through the cache: `user_profile:{user_id}`, 30 minutes.

The `recomind-profile` consumer deletes the key whenever it changes a viewer's tag
weights, so a cached profile is never older than the viewer's last applied action.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from recomind.domain import cache_keys
from recomind.domain.model import UserProfile
from recomind.domain.ports import Cache, Store


class ProfileReader:
    def __init__(self, store: Store, cache: Cache, ttl: float) -> None:
        self.store = store
        self.cache = cache
        self.ttl = ttl

    def get(self, user_id: str) -> UserProfile | None:
        key = cache_keys.user_profile(user_id)
        cached = self.cache.get(key)
        if cached is not None:
            body = orjson.loads(cached)
            return UserProfile(
                user_id, tuple(body["top_tags"]), datetime.fromisoformat(body["updated_at"])
            )
        profile = self.store.get_profile(user_id)
        if profile is not None:
            body = {
                "top_tags": list(profile.top_tags),
                "updated_at": profile.updated_at.isoformat(),
            }
            self.cache.set(key, orjson.dumps(body), self.ttl)
        return profile
