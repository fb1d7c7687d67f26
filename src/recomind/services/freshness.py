"""The refresh policy: when a viewer's cached list is rebuilt after they act.

`ttl` waits for the cached list to expire; `after_n` rebuilds after every N new
actions of the viewer (default 3); `immediate` rebuilds after each action. Under
every policy a list that is not rebuilt loses the videos the viewer just acted on,
and an expired list is rebuilt by the next read (the table's list, else computed).
"""

from __future__ import annotations

import logging
from collections import Counter

from recomind.config import RefreshPolicy
from recomind.domain import cache_keys
from recomind.domain.model import VideoAction
from recomind.domain.ports import Cache
from recomind.services.feed import FeedService

log = logging.getLogger(__name__)


class FeedRefresher:
    """Applies the policy after each committed batch of new actions (an `after_commit` hook).

    `after_n` counts a viewer's actions in the cache (`actions_since_refresh:{user_id}`),
    in a window of `ttl` seconds that starts with the first action counted: a list that
    has expired meanwhile is rebuilt by the next read anyway.
    """

    def __init__(
        self, feed: FeedService, cache: Cache, policy: RefreshPolicy, after_n: int, ttl: float
    ) -> None:
        if after_n < 1:
            raise ValueError("after_n must be at least 1")
        self.feed = feed
        self.cache = cache
        self.policy = policy
        self.after_n = after_n
        self.ttl = ttl
        self.refreshed = 0

    def on_new_actions(self, new: list[VideoAction]) -> None:
        per_user = Counter(a.user_id for a in new)
        for user_id, count in per_user.items():
            try:
                if self._due(user_id, count):
                    self.feed.refresh_user_feed(user_id)
                    self.refreshed += 1
                else:  # not rebuilt yet, but never show a video the viewer just acted on
                    self.feed.drop_from_cached(
                        user_id, {a.video_id for a in new if a.user_id == user_id}
                    )
            except Exception:  # the stored list stays; the TTL will catch up
                log.exception("could not refresh the feed of %s", user_id)

    def _due(self, user_id: str, count: int) -> bool:
        if self.policy is RefreshPolicy.IMMEDIATE:
            return True
        if self.policy is RefreshPolicy.TTL:
            return False
        total = self.cache.incr(cache_keys.actions_since_refresh(user_id), self.ttl, count)
        # Due when this batch carries the count past a multiple of N: one atomic INCRBY, no
        # reset that could lose an action counted by another worker in between.
        return total // self.after_n > (total - count) // self.after_n
