"""The refresh policy: when a viewer's cached list is rebuilt after they act.

`ttl` waits for the cached list to expire; `after_n` rebuilds after every N new
actions of the viewer (default 3); `immediate` rebuilds after each action. A viewer
who is not due yet still never sees a video they just acted on: it is dropped from
their cached list at once. An expired list is rebuilt by the next read (the table's list,
else computed).

Rebuilds are coalesced per viewer: one rebuild however many of their actions a batch
holds. Once `start()`ed (the consumers run), rebuilds leave the consumer thread for a
refresher thread of their own, so the store consumer never waits on them, and they are
coalesced across batches too: a viewer queued again before their rebuild ran is rebuilt
once. When rebuilds cannot keep up (every viewer acting, each rebuild a model pass),
viewers who liked or skipped something go first: those signals change a list the most.
Viewers who only watched wait their turn, and the videos they watched are dropped from
their cached list at once meanwhile.
Before `start()` (imports, tests, `drain`) rebuilds happen in the caller's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from recomind.config import RefreshPolicy
from recomind.domain import cache_keys
from recomind.domain.model import Acted, ActionType, by_viewer
from recomind.domain.ports import Cache
from recomind.services.feed import FeedService

log = logging.getLogger(__name__)

STRONG_SIGNALS = frozenset({ActionType.LIKE, ActionType.SKIP})


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
        self.failed = 0
        # Queued viewers, oldest first (dicts as ordered sets); strong signals go first.
        self._strong: dict[str, None] = {}
        self._weak: dict[str, None] = {}
        self._running = 0  # rebuilds in progress
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- the consumer's after-commit hook --------------------------------------------------

    def on_new_actions(self, new: Sequence[Acted]) -> None:
        per_user = by_viewer(new)
        strong: list[str] = []
        weak: list[str] = []
        not_due: list[str] = []
        due = self._due({user_id: len(actions) for user_id, actions in per_user.items()})
        for user_id, actions in per_user.items():
            if user_id not in due:
                not_due.append(user_id)
            elif any(action_type in STRONG_SIGNALS for _, action_type in actions):
                strong.append(user_id)
            else:
                weak.append(user_id)
        # Not rebuilt yet, but never show a video the viewer just acted on.
        self._drop_acted_on(not_due, per_user)
        if self._thread is None:
            for user_id in strong + weak:
                self._rebuild(user_id)
            return
        # They may wait behind others: hide what they watched meanwhile.
        self._drop_acted_on(weak, per_user)
        with self._cond:
            for user_id in strong:
                self._weak.pop(user_id, None)
                self._strong[user_id] = None
            for user_id in weak:
                if user_id not in self._strong:
                    self._weak.setdefault(user_id, None)  # a queued viewer keeps their place
            self._cond.notify_all()

    def _drop_acted_on(
        self, users: list[str], per_user: dict[str, list[tuple[str, ActionType]]]
    ) -> None:
        if not users:
            return
        try:
            self.feed.drop_from_cached_lists({u: {v for v, _ in per_user[u]} for u in users})
        except Exception:  # the cached lists stay; the TTL will catch up
            log.exception("could not drop acted-on videos for %d viewer(s)", len(users))

    def _due(self, counts: dict[str, int]) -> set[str]:
        """The viewers whose list is due for a rebuild, given how many new actions each has."""
        if self.policy is RefreshPolicy.IMMEDIATE:
            return set(counts)
        if self.policy is RefreshPolicy.TTL:
            return set()
        keys = {user_id: cache_keys.actions_since_refresh(user_id) for user_id in counts}
        try:  # every viewer's counter in one round trip
            totals = self.cache.incr({keys[u]: n for u, n in counts.items()}, self.ttl)
        except Exception:  # the stored lists stay; the TTL will catch up
            log.exception("could not apply the refresh policy for %d viewer(s)", len(counts))
            return set()
        # Due when this batch carries the count past a multiple of N: one atomic INCRBY, no
        # reset that could lose an action counted by another worker in between. A count below
        # what was just added is no count (a cache that is down answers 0): not due, rather
        # than a model pass for every viewer of every batch while it is down.
        n = self.after_n
        due = set()
        for user_id, added in counts.items():
            total = totals.get(keys[user_id], 0)
            if total >= added and total // n > (total - added) // n:
                due.add(user_id)
        return due

    def _rebuild(self, user_id: str) -> None:
        try:
            self.feed.refresh_user_feed(user_id)
            self.refreshed += 1
        except Exception:  # the stored list stays; the TTL will catch up
            self.failed += 1
            log.exception("could not refresh the feed of %s", user_id)

    # -- the refresher thread ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Viewers queued or being rebuilt."""
        with self._cond:
            return len(self._strong) + len(self._weak) + self._running

    def start(self) -> None:
        """Rebuild in a thread of our own from now on."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="feed-refresher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._strong or self._weak or self._stopping):
                    self._cond.wait()
                queue = self._strong or self._weak
                if not queue:  # stopping, and nothing left
                    return
                user_id = next(iter(queue))
                del queue[user_id]
                self._running += 1
            try:
                self._rebuild(user_id)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued rebuild has run; False if that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._strong or self._weak or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Run what is queued, then end the thread; later rebuilds happen in the caller."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None
