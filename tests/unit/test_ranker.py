"""The Ranker port's adapters: the in-process ranking rule, the HTTP client's fallback and
back-off (against a mock transport), and the model server's model watcher."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from recomind.adapters.ranker.http import MAX_LIST, HttpRanker, parse_ranking, request_body
from recomind.adapters.ranker.local import ModelRanker, rank_with
from recomind.adapters.ranker.watch import ModelWatcher
from recomind.domain.errors import InvalidInput
from recomind.domain.model import ActionWeights, ScoredVideo
from recomind.domain.ports import Ranking, RankRequest
from recomind.entrypoints.modelserver.app import InvocationIn, to_rank_request
from recomind.recommenders.data import history_from_actions, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.services.model_registry import LoadedModel, ModelRegistry
from recomind.services.simulator import SimulatedWorld, simulate

WEIGHTS = ActionWeights()


@pytest.fixture(scope="module")
def world() -> SimulatedWorld:
    return simulate(n_videos=80, n_users=25, actions_per_user=12, seed=3)


@pytest.fixture(scope="module")
def loaded(world: SimulatedWorld) -> LoadedModel:
    model = HybridRecommender().fit(training_data(world.videos, world.actions, WEIGHTS))
    return LoadedModel("v000007", model, {str(v): i for i, v in enumerate(model.item_ids)}, {})


def request_for(world: SimulatedWorld, user_id: str, k: int = 10) -> RankRequest:
    history = tuple(
        sorted((a for a in world.actions if a.user_id == user_id), key=lambda a: a.timestamp)
    )
    return RankRequest(history, k, user_id)


# -- the in-process ranking rule -------------------------------------------------------------


def test_rank_with_is_the_feeds_former_ranking(world: SimulatedWorld, loaded: LoadedModel) -> None:
    """What `FeedService.compute` did before the port: explain k + |seen|, drop the seen."""
    for user_id in ("u1", "u4", "u11"):
        request = request_for(world, user_id, k=25)
        seen = {a.video_id for a in request.history}
        history = history_from_actions(request.history, loaded.index, WEIGHTS)
        former = [
            ScoredVideo(str(loaded.model.item_ids[p.item]), p.score, p.reason)
            for p in loaded.model.explain(history, 25 + len(seen))
            if str(loaded.model.item_ids[p.item]) not in seen
        ][:25]
        ranking = rank_with(loaded, request, WEIGHTS)
        assert ranking.model_version == "v000007"
        assert list(ranking.items) == former and len(former) == 25


def test_candidates_and_exclude(world: SimulatedWorld, loaded: LoadedModel) -> None:
    request = request_for(world, "u2", k=100)
    full = [s.video_id for s in rank_with(loaded, request, WEIGHTS).items]
    candidates = (*full[10:20], "not-a-video", request.history[0].video_id)
    limited = RankRequest(request.history, 100, None, candidates, frozenset(full[10:12]))
    ranked = rank_with(loaded, limited, WEIGHTS).items
    # only the candidates: excluded, unknown and seen left out (the learned ranker scores a
    # pool relative to itself, so the order among a subset is its own), best first
    assert sorted(s.video_id for s in ranked) == sorted(full[12:20])
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    nothing = RankRequest(request.history, 5, None, ("not-a-video",))
    assert rank_with(loaded, nothing, WEIGHTS).items == ()


def test_a_cold_history_is_ranked_from_the_popular_videos(loaded: LoadedModel) -> None:
    ranking = rank_with(loaded, RankRequest((), 10), WEIGHTS)
    empty = history_from_actions([], loaded.index, WEIGHTS)
    scores = loaded.model.popularity.score(empty)
    popular = {str(loaded.model.item_ids[i]) for i in np.argsort(-scores, kind="stable")[:100]}
    got = [s.video_id for s in ranking.items]
    assert got == [str(loaded.model.item_ids[r.item]) for r in loaded.model.explain(empty, 10)]
    assert len(got) == 10 and set(got) <= popular  # the cold ranker orders the popular pool
    assert {s.reason for s in ranking.items} == {"trending now"}


def test_model_ranker_without_a_model_says_none() -> None:
    class NoModel:
        def get(self) -> LoadedModel | None:
            return None

    assert ModelRanker(NoModel(), WEIGHTS).rank(RankRequest((), 5)) is None


# -- the HTTP adapter --------------------------------------------------------------------------


class Fallback:
    def __init__(self) -> None:
        self.calls = 0

    def rank(self, request: RankRequest) -> Ranking | None:
        self.calls += 1
        return Ranking((ScoredVideo("local", 1.0, "in-process"),), "local")

    def close(self) -> None:
        pass


def ranker(handler: object, retry_after: float = 60.0) -> tuple[HttpRanker, Fallback]:
    fallback = Fallback()
    client = httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return HttpRanker("http://ranker.test/", fallback, 0.5, retry_after, client), fallback


def test_http_ranker_posts_the_history_and_reads_the_ranking(world: SimulatedWorld) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        items = [{"video_id": "v9", "score": 0.5, "reason": "viewers like you liked it"}]
        return httpx.Response(200, json={"model_version": "v000003", "items": items})

    http, fallback = ranker(handler)
    request = request_for(world, "u3", k=7)
    ranking = http.rank(request)
    assert ranking == Ranking((ScoredVideo("v9", 0.5, "viewers like you liked it"),), "v000003")
    assert fallback.calls == 0 and http.outcomes["ok"] == 1
    (sent,) = seen
    assert str(sent.url) == "http://ranker.test/invocations"
    assert sent.headers["content-type"] == "application/json"
    body = json.loads(sent.content)
    assert body["k"] == 7 and body["user_id"] == "u3"
    assert [h["video_id"] for h in body["history"]] == [a.video_id for a in request.history]
    assert body == request_body(request)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(500, text="boom"),
        httpx.Response(503, json={"detail": "no model loaded"}),
        httpx.Response(200, content=b"<html>"),
        httpx.Response(200, json={"items": []}),
        httpx.Response(200, json={"model_version": "v1", "items": [{"video_id": "v1"}]}),
        httpx.Response(200, json={"model_version": "v1", "items": [{"video_id": 1, "score": 1}]}),
    ],
)
def test_a_failing_model_server_falls_back_and_backs_off(answer: object) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    http, fallback = ranker(handler, retry_after=60)
    assert http.rank(RankRequest((), 5)) == fallback.rank(RankRequest((), 5))
    assert http.outcomes["error"] == 1
    http.rank(RankRequest((), 5))  # backed off: not even tried
    assert len(calls) == 1 and http.outcomes["skipped"] == 1 and fallback.calls == 3


def test_a_refused_request_falls_back_without_backing_off() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(422, json={"detail": "history: too long"})

    http, fallback = ranker(handler, retry_after=60)
    http.rank(RankRequest((), 5))
    http.rank(RankRequest((), 5))  # a 4xx is this request's problem: the server is tried again
    assert len(calls) == 2 and fallback.calls == 2 and http.outcomes == {"error": 2}


def test_a_long_history_is_cut_to_its_latest_actions(world: SimulatedWorld) -> None:
    one = world.actions[0]
    history = tuple(
        replace(one, id=str(i), timestamp=one.timestamp + timedelta(seconds=i))
        for i in range(MAX_LIST + 5)
    )
    sent = request_body(RankRequest(history[::-1], 5))["history"]  # newest first, even
    assert len(sent) == MAX_LIST
    assert sent[0]["timestamp"] == history[5].timestamp.isoformat()
    assert sent[-1]["timestamp"] == history[-1].timestamp.isoformat()


def test_the_model_server_is_tried_again_after_the_back_off() -> None:
    up = False

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"model_version": "v2", "items": []})

    http, _ = ranker(handler, retry_after=0.05)
    assert http.rank(RankRequest((), 5)).model_version == "local"  # type: ignore[union-attr]
    up = True
    time.sleep(0.06)
    assert http.rank(RankRequest((), 5)) == Ranking((), "v2")
    assert http.outcomes == {"error": 1, "ok": 1}


def test_parse_ranking_rejects_booleans_as_scores() -> None:
    with pytest.raises(Exception, match="not a ranking"):
        parse_ranking({"model_version": "v1", "items": [{"video_id": "v1", "score": True}]})


# -- the model server's request rules and watcher -----------------------------------------------


def test_to_rank_request_validates_like_the_api() -> None:
    body = InvocationIn.model_validate(
        {
            "user_id": "u1",
            "history": [
                {"video_id": "v1", "action_type": "LIKE", "timestamp": "2026-01-02T03:04:05Z"}
            ],
            "candidates": ["v2", "v3"],
            "exclude": ["v3"],
            "k": 4,
        }
    )
    request = to_rank_request(body)
    assert request.k == 4 and request.user_id == "u1" and request.candidates == ("v2", "v3")
    assert request.exclude == frozenset({"v3"})
    (action,) = request.history
    assert action.video_id == "v1" and action.action_type.value == "like"
    assert action.timestamp.isoformat() == "2026-01-02T03:04:05+00:00"
    bad = InvocationIn.model_validate({"history": [{"video_id": "v1", "action_type": "x"}]})
    with pytest.raises(InvalidInput, match=r"history\[0\]\.action_type"):
        to_rank_request(bad)
    with pytest.raises(InvalidInput, match=r"exclude\[1\]"):
        to_rank_request(InvocationIn.model_validate({"exclude": ["ok", "no way"]}))


def test_the_watcher_follows_current_and_keeps_a_model_it_cannot_replace(
    tmp_path: Path, loaded: LoadedModel
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    watcher = ModelWatcher(registry, poll_seconds=3600)
    assert watcher.check() is None and "no CURRENT" in (watcher.problem or "")
    first = registry.save(loaded.model, {})
    registry.activate(first)
    assert watcher.check().version == first  # type: ignore[union-attr]
    second = registry.save(loaded.model, {})
    registry.activate(second)
    assert watcher.get().version == first  # type: ignore[union-attr]  # not checked yet
    assert watcher.check().version == second  # type: ignore[union-attr]
    assert registry.rollback() == first
    assert watcher.check().version == first  # type: ignore[union-attr]
    broken = registry.save(loaded.model, {})
    (registry.root / broken / "meta.json").write_text("{not json")
    registry.activate(broken)
    assert watcher.check().version == first  # type: ignore[union-attr]
    assert "cannot load" in (watcher.problem or "")


def test_the_watcher_thread_reloads_when_asked(tmp_path: Path, loaded: LoadedModel) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.activate(registry.save(loaded.model, {}))
    watcher = ModelWatcher(registry, poll_seconds=3600)
    watcher.check()
    watcher.start()
    try:
        newer = registry.save(loaded.model, {})
        registry.activate(newer)
        watcher.reload_soon()  # what SIGHUP does
        deadline = time.monotonic() + 5
        while watcher.get().version != newer and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        assert watcher.get().version == newer  # type: ignore[union-attr]
    finally:
        watcher.stop()
