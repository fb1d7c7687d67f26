"""The Ranker port over HTTP: a SageMaker-style model server's `POST /invocations`.

A failing model server degrades the feed, never fails it: on a timeout, a refused
connection, an error status or an answer that is not a ranking, the request is
ranked by the fallback (the in-process ranker, which answers None without a
local model, and the feed then serves trending). After a failure the server is
left alone for `retry_after_seconds`, so an outage costs one timeout, not one per
feed. `outcomes` counts ok / error / skipped calls for `/metrics`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import httpx
import orjson

from recomind.domain.model import ScoredVideo
from recomind.domain.ports import Ranker, Ranking, RankRequest

log = logging.getLogger(__name__)


MAX_LIST = 10_000  # entries of history, candidates or exclude that one request may carry


class RankerCallFailed(Exception):
    """The model server did not give a usable ranking."""

    def __init__(self, message: str, server_down: bool = True) -> None:
        super().__init__(message)
        self.server_down = server_down  # False: only this request was refused (a 4xx)


def request_body(request: RankRequest) -> dict[str, Any]:
    """The `/invocations` JSON body for a rank request (see docs/api.md); a longer history is
    cut to its latest MAX_LIST actions, the ones that weigh most."""
    history = request.history
    if len(history) > MAX_LIST:
        history = tuple(sorted(history, key=lambda a: a.timestamp)[-MAX_LIST:])
    body: dict[str, Any] = {
        "history": [
            {
                "video_id": a.video_id,
                "action_type": a.action_type.value,
                "timestamp": a.timestamp.isoformat(),
                "watch_ms": a.watch_ms,
            }
            for a in history
        ],
        "k": request.k,
    }
    if request.user_id is not None:
        body["user_id"] = request.user_id
    if request.candidates is not None:
        body["candidates"] = list(request.candidates)
    if request.exclude:
        body["exclude"] = sorted(request.exclude)
    return body


def parse_ranking(payload: object) -> Ranking:
    """A ranking from an `/invocations` answer; RankerCallFailed if it is not one."""
    bad = RankerCallFailed(f"not a ranking: {str(payload)[:200]}")
    if not isinstance(payload, dict) or not isinstance(payload.get("model_version"), str):
        raise bad
    raw = payload.get("items")
    if not isinstance(raw, list):
        raise bad
    items = []
    for item in raw:
        if not isinstance(item, dict):
            raise bad
        video_id, score, reason = item.get("video_id"), item.get("score"), item.get("reason")
        if (
            not isinstance(video_id, str)
            or not isinstance(score, int | float)
            or isinstance(score, bool)
            or not (reason is None or isinstance(reason, str))
        ):
            raise bad
        items.append(ScoredVideo(video_id, float(score), reason))
    return Ranking(tuple(items), payload["model_version"])


class HttpRanker:
    """Ranks through a model server; the fallback ranks whatever the server cannot."""

    def __init__(
        self,
        url: str,
        fallback: Ranker,
        timeout_seconds: float = 0.5,
        retry_after_seconds: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/invocations"
        self.fallback = fallback
        self.retry_after = retry_after_seconds
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout_seconds))
        self.outcomes: Counter[str] = Counter()  # ok | error | skipped
        self._down_until = 0.0
        self._lock = threading.Lock()

    def rank(self, request: RankRequest) -> Ranking | None:
        if time.monotonic() < self._down_until:
            self._count("skipped")
            return self.fallback.rank(request)
        try:
            ranking = self._call(request)
        except RankerCallFailed as exc:
            self._count("error")
            if exc.server_down:
                self._down_until = time.monotonic() + self.retry_after
                log.warning(
                    "model server %s failed (%s); ranking in-process for the next %.1f s",
                    self.endpoint,
                    exc,
                    self.retry_after,
                )
            else:
                log.warning("model server %s refused a request (%s)", self.endpoint, exc)
            return self.fallback.rank(request)
        self._count("ok")
        return ranking

    def _call(self, request: RankRequest) -> Ranking:
        try:
            response = self.client.post(
                self.endpoint,
                content=orjson.dumps(request_body(request)),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise RankerCallFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise RankerCallFailed(
                f"HTTP {response.status_code}: {response.text[:200]}",
                server_down=not 400 <= response.status_code < 500,
            )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise RankerCallFailed(f"not JSON: {exc}") from exc
        return parse_ranking(payload)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def close(self) -> None:
        self.client.close()
        self.fallback.close()
