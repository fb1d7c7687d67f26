"""The API with RECOMIND_RANKER_URL: feeds ranked by a real model server subprocess, whose
model `recomind modelserver train` fitted from the lake that the API's own pipeline wrote
(POST /video_actions -> event log -> the `recomind-lake` consumer). When the model server
has no model, or is gone, feeds still answer 200: ranked in-process, or trending.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from recomind.adapters.ranker.http import HttpRanker
from recomind.adapters.ranker.local import ModelRanker
from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain.ports import RankRequest
from recomind.recommenders.rerank import candidate_count, rerank_ranked
from recomind.services.simulator import import_rows, simulate
from tests.support.modelserver import ModelServer, history_body, recomind
from tests.support.servers import serve_in_thread


def ranker_calls(http: httpx.Client) -> dict[str, float]:
    families = text_string_to_metric_families(http.get("/metrics").text)
    return {
        s.labels["outcome"]: s.value
        for f in families
        if f.name == "recomind_ranker_calls"
        for s in f.samples
        if s.name.endswith("_total")
    }


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def test_feeds_come_from_the_model_server_and_degrade_without_it(tmp_path: Path) -> None:
    world = simulate(n_videos=120, n_users=30, actions_per_user=15, seed=9)
    rows = import_rows(world)
    home, model_dir = tmp_path / "api", tmp_path / "sm-model"
    home.mkdir()
    server = ModelServer(home, model_dir).start()  # no model yet: /ping is 503
    assert httpx.get(f"{server.url}/ping").status_code == 503
    api = bootstrap(
        Settings(
            home=home,
            train_interval_seconds=0,
            lake_flush_seconds=0.2,
            ranker_url=server.url,
            ranker_timeout_seconds=2.0,
            ranker_retry_seconds=2.0,
        )
    )
    assert isinstance(api.ranker, HttpRanker)
    try:
        with serve_in_thread(api) as url, httpx.Client(base_url=url, timeout=30) as http:
            # The catalog and the actions go in through the API; the pipeline fills the lake.
            assert http.post("/videos", json=rows["videos"]).status_code == 201
            actions = rows["actions"]
            for start in range(0, len(actions), 1000):
                r = http.post("/video_actions", json=actions[start : start + 1000])
                assert r.status_code == 202, r.text
            wait_for(lambda: api.lake.count_actions() == len(actions), "the lake sink")
            wait_for(lambda: api.store.counts()["video_actions"] == len(actions), "the store")

            # No model anywhere yet (the server answers 503): still a 200, from trending.
            r = http.get("/recommendations/u1")
            assert r.status_code == 200 and r.headers["X-Feed-Source"] == "trending"
            assert ranker_calls(http)["error"] >= 1

            # The model server's model, trained from the lake the pipeline wrote.
            done = recomind(
                home, "modelserver", "train", "--input", str(home / "lake"),
                "--model-dir", str(model_dir),
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"{len(actions):,} actions" in " ".join(done.stdout.split())
            server.wait_version("v000001")
            time.sleep(2.1)  # past the ranker's back-off after the failed calls

            ok_before = ranker_calls(http).get("ok", 0)
            r = http.get("/recommendations/u2", params={"limit": 20, "explain": "true"})
            assert r.status_code == 200 and r.headers["X-Feed-Source"] == "computed"
            expected = server.invoke(
                {"user_id": "u2", "history": history_body(api.store.user_actions("u2")), "k": 20}
            )
            assert [(i["video_id"], i["reason"]) for i in r.json()] == [
                (i["video_id"], i["reason"]) for i in expected["items"]
            ]
            assert api.models.get() is None  # the API has no model of its own: it came over HTTP
            assert ranker_calls(http)["ok"] == ok_before + 1

            # The model server goes away: feeds still answer, from trending.
            server.stop()
            errors_before = ranker_calls(http)["error"]
            r = http.get("/recommendations/u3")
            assert r.status_code == 200 and r.headers["X-Feed-Source"] == "trending"
            assert len(r.json()) == 10
            r = http.get("/recommendations/u4")  # within the back-off: not even tried
            assert r.status_code == 200 and r.headers["X-Feed-Source"] == "trending"
            calls = ranker_calls(http)
            assert calls["error"] == errors_before + 1 and calls["skipped"] >= 1

            # With a model of its own, the API ranks in-process while the server is down.
            api.trainer.train()
            computed = api.feed.compute("u5")
            assert computed is not None
            history = tuple(api.store.user_actions("u5"))
            k = api.settings.top_n
            local = ModelRanker(api.models, api.settings.action_weights).rank(
                RankRequest(history, candidate_count(k, len(history)), "u5")
            )
            loaded = api.models.get()
            assert local is not None and loaded is not None
            seen = {a.video_id for a in history}
            now = datetime.now(UTC).timestamp()
            rules = api.feed.settings.rerank
            expected = rerank_ranked(loaded.model, local.items, seen, "u5", rules, k, now)
            assert [i.video_id for i in computed.items] == [i.video_id for i in expected]
    finally:
        server.stop()
