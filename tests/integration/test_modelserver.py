"""`recomind modelserver` over real HTTP: a real `serve` subprocess, models trained by a real
`recomind modelserver train` subprocess from a lake written by `recomind import actions`.

The contract (SageMaker hosting): `GET /ping` is 200 with a model, `POST /invocations` ranks
a viewer's history exactly as the API does in-process, bad payloads are 4xx with a clear
message. A model survives a restart of the server, and the server follows the registry's
CURRENT after `recomind rollback` (by polling, and at once on SIGHUP).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recomind.adapters.ranker.local import ModelRanker, rank_with
from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain.model import ActionWeights, VideoAction
from recomind.domain.ports import RankRequest
from recomind.entrypoints.cli import app
from recomind.services.model_registry import ModelHolder, ModelRegistry
from recomind.services.simulator import SimulatedWorld, export_parquet, simulate, video_row
from tests.support.modelserver import ModelServer, history_body, recomind, train

WEIGHTS = ActionWeights()


def as_triples(items: list[dict[str, Any]]) -> list[tuple[str, float, str | None]]:
    return [(i["video_id"], i["score"], i["reason"]) for i in items]


def in_process(model_dir: Path, request: RankRequest) -> list[tuple[str, float, str | None]]:
    ranked = ModelRanker(ModelHolder(ModelRegistry(model_dir)), WEIGHTS).rank(request)
    assert ranked is not None
    return [(s.video_id, s.score, s.reason) for s in ranked.items]


def import_world(home: Path, world: SimulatedWorld, share: float = 1.0) -> dict[str, Path]:
    """`recomind import` videos, users and the first `share` of the actions (lake included)."""
    cut = int(len(world.actions) * share)
    paths = export_parquet(replace(world, actions=world.actions[:cut]), home / "import")
    for kind in ("videos", "users", "actions"):
        done = recomind(home, "import", kind, str(paths[kind]))
        assert done.returncode == 0, done.stdout + done.stderr
    return paths


def import_rest(home: Path, world: SimulatedWorld, share: float) -> None:
    """`recomind import actions` of the actions `import_world(share)` left out."""
    cut = int(len(world.actions) * share)
    path = export_parquet(replace(world, actions=world.actions[cut:]), home / "rest")["actions"]
    done = recomind(home, "import", "actions", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@dataclass
class Hosted:
    home: Path
    model_dir: Path
    world: SimulatedWorld
    files: dict[str, Path]  # the import files
    server: ModelServer

    def actions_of(self, user_id: str) -> list[VideoAction]:
        return sorted(
            (a for a in self.world.actions if a.user_id == user_id), key=lambda a: a.timestamp
        )


@pytest.fixture(scope="module")
def world() -> SimulatedWorld:
    return simulate(n_videos=150, n_users=50, actions_per_user=20, seed=5)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory, world: SimulatedWorld) -> Iterator[Hosted]:
    home = tmp_path_factory.mktemp("ms-home")
    files = import_world(home, world)
    model_dir = home / "sm-model"
    assert train(home, model_dir) == "v000001"
    server = ModelServer(home, model_dir).start()
    try:
        yield Hosted(home, model_dir, world, files, server)
    finally:
        server.stop()


# -- the contract ---------------------------------------------------------------------------


def test_ping_is_200_with_the_model_version(hosted: Hosted) -> None:
    r = httpx.get(f"{hosted.server.url}/ping")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_version": "v000001"}


def test_invocations_rank_as_the_api_does_in_process(hosted: Hosted) -> None:
    """The same history gives the same list, scores and reasons as the API's own ranker."""
    api = bootstrap(Settings(home=hosted.home, model_dir=hosted.model_dir))
    try:
        for user_id in ("u1", "u7", "u23"):
            actions = api.store.user_actions(user_id)
            assert actions
            answer = hosted.server.invoke(
                {"user_id": user_id, "history": history_body(actions), "k": api.settings.top_n}
            )
            # the API's own ranker (its feed then re-ranks this list: diversity, exploration)
            ranked = api.ranker.rank(RankRequest(tuple(actions), api.settings.top_n, user_id))
            assert ranked is not None and ranked.model_version == "v000001"
            expected = [(s.video_id, s.score, s.reason) for s in ranked.items]
            assert answer["model_version"] == "v000001" and answer["user_id"] == user_id
            assert as_triples(answer["items"]) == expected
            assert len(expected) == api.settings.top_n
            assert not {a.video_id for a in actions} & {i["video_id"] for i in answer["items"]}
            assert any("because you liked #" in (i["reason"] or "") for i in answer["items"])
    finally:
        api.close()


def test_candidates_and_exclude_restrict_the_ranking(hosted: Hosted) -> None:
    actions = hosted.actions_of("u3")
    seen = {a.video_id for a in actions}
    pool = [v.video_id for v in hosted.world.videos if v.video_id not in seen][:30]
    candidates = [*pool, next(iter(seen)), "v-not-in-catalog"]
    body = {"history": history_body(actions), "candidates": candidates, "exclude": pool[:5]}
    answer = hosted.server.invoke({**body, "k": 50})
    ids = [i["video_id"] for i in answer["items"]]
    assert set(ids) == set(pool[5:])  # only candidates; not excluded, seen or unknown ones
    request = RankRequest(tuple(actions), 50, None, tuple(candidates), frozenset(pool[:5]))
    assert as_triples(answer["items"]) == in_process(hosted.model_dir, request)
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    assert len(hosted.server.invoke({**body, "k": 3})["items"]) == 3


def test_a_cold_or_unknown_viewer_gets_the_popular_videos(hosted: Hosted) -> None:
    cold = hosted.server.invoke({"user_id": "someone-new", "k": 10})
    assert len(cold["items"]) == 10
    assert {i["reason"] for i in cold["items"]} == {"trending now"}
    assert as_triples(cold["items"]) == in_process(hosted.model_dir, RankRequest((), 10))
    # a history only of videos the model has never heard of is a cold history too
    unknown = [{"video_id": "v-brand-new", "action_type": "like", "timestamp": 1764000000}]
    assert hosted.server.invoke({"history": unknown, "k": 10})["items"] == cold["items"]
    # a single like moves the list away from plain popularity
    one_like = [{"video_id": hosted.world.videos[0].video_id, "action_type": "like"}]
    warm = hosted.server.invoke({"history": one_like, "k": 10})
    assert warm["items"] != cold["items"]
    assert hosted.world.videos[0].video_id not in {i["video_id"] for i in warm["items"]}


@pytest.mark.parametrize(
    ("content_type", "body", "status", "detail"),
    [
        ("application/json", b"{not json", 400, "not valid JSON"),
        ("text/csv", b"u1,v1,like", 415, "Content-Type must be application/json"),
        (None, b'{"k": 5}', 415, "Content-Type must be application/json"),
        ("application/json", b"[1, 2]", 422, "Input should be a valid dictionary"),
        ("application/json", b'{"k": 0}', 422, "k: Input should be greater than or equal to 1"),
        ("application/json", b'{"k": 5000}', 422, "k: Input should be less than or equal to 1000"),
        ("application/json", b'{"limit": 5}', 422, "limit: Extra inputs are not permitted"),
        ("application/json", b'{"history": "v1"}', 422, "history: Input should be a valid list"),
        (
            "application/json",
            b'{"history": [{"video_id": "v1", "action_type": "love"}]}',
            422,
            "history[0].action_type': must be one of view, like, skip",
        ),
        (
            "application/json",
            b'{"history": [{"video_id": "v1", "action_type": "like", "timestamp": "soon"}]}',
            422,
            "history[0].timestamp': not ISO 8601 or epoch seconds",
        ),
        (
            "application/json",
            b'{"history": [{"video_id": "v 1", "action_type": "like"}]}',
            422,
            "history[0].video_id'",
        ),
        ("application/json", b'{"history": [{"action_type": "like"}]}', 422, "video_id: Field"),
        ("application/json", b'{"candidates": ["ok", "not ok"]}', 422, "candidates[1]"),
        ("application/json", b'{"user_id": ""}', 422, "user_id"),
    ],
)
def test_bad_payloads_are_4xx_with_a_clear_message(
    hosted: Hosted, content_type: str | None, body: bytes, status: int, detail: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(f"{hosted.server.url}/invocations", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert detail in r.json()["detail"], r.json()


def test_invocations_only_takes_post(hosted: Hosted) -> None:
    assert httpx.get(f"{hosted.server.url}/invocations").status_code == 405


# -- restarts, rollbacks, reloads -------------------------------------------------------------


def test_a_model_survives_a_restart_and_the_server_follows_a_rollback(
    tmp_path: Path, world: SimulatedWorld
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    model_dir = tmp_path / "models"
    import_world(home, world, share=0.5)
    assert train(home, model_dir) == "v000001"
    import_rest(home, world, share=0.5)  # more history in the lake: a different model
    assert train(home, model_dir) == "v000002"

    actions = sorted((a for a in world.actions if a.user_id == "u2"), key=lambda a: a.timestamp)
    body = {"user_id": "u2", "history": history_body(actions), "k": 20}
    request = RankRequest(tuple(actions), 20, "u2")
    by_v1 = _rank_version(model_dir, "v000001", request)
    by_v2 = _rank_version(model_dir, "v000002", request)
    assert by_v1 != by_v2  # otherwise this test could not tell the versions apart

    server = ModelServer(home, model_dir).start()
    try:
        before = server.invoke(body)
        assert before["model_version"] == "v000002" and as_triples(before["items"]) == by_v2
        server.stop()
        server.start(via_script=True)  # a restart, as a container would run it
        after = server.invoke(body)
        assert after == before

        done = recomind(home, "rollback", RECOMIND_MODEL_DIR=str(model_dir))
        assert done.returncode == 0 and "model in use: v000001" in done.stdout, done.stderr
        server.wait_version("v000001")  # polled: within RECOMIND_MODELSERVER_POLL_SECONDS
        rolled = server.invoke(body)
        assert rolled["model_version"] == "v000001" and as_triples(rolled["items"]) == by_v1
    finally:
        server.stop()

    # Polling once an hour: only SIGHUP makes the server look at CURRENT again.
    server = ModelServer(home, model_dir, poll_seconds=3600).start()
    try:
        assert httpx.get(f"{server.url}/ping").json()["model_version"] == "v000001"
        assert train(home, model_dir) == "v000003"
        time.sleep(1.0)
        assert httpx.get(f"{server.url}/ping").json()["model_version"] == "v000001"
        server.hup()
        server.wait_version("v000003", timeout=5)
        assert server.invoke(body)["model_version"] == "v000003"
    finally:
        server.stop()


def _rank_version(
    model_dir: Path, version: str, request: RankRequest
) -> list[tuple[str, float, str | None]]:
    ranked = rank_with(ModelRegistry(model_dir).load(version), request, WEIGHTS)
    return [(s.video_id, s.score, s.reason) for s in ranked.items]


def test_ping_is_503_until_a_model_arrives(tmp_path: Path, world: SimulatedWorld) -> None:
    home = tmp_path / "home"
    home.mkdir()
    model_dir = tmp_path / "empty-models"
    server = ModelServer(home, model_dir).start()
    try:
        r = httpx.get(f"{server.url}/ping")
        assert r.status_code == 503 and "no CURRENT model version" in r.json()["detail"]
        r = httpx.post(f"{server.url}/invocations", json={"k": 3})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        import_world(home, world, share=0.2)
        assert train(home, model_dir) == "v000001"
        server.wait_version("v000001")
        assert len(server.invoke({"k": 3})["items"]) == 3
    finally:
        server.stop()


# -- the training job ---------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, " ".join(result.output.split())  # unwrapped


def test_train_reads_sagemaker_channels_and_writes_sm_model_dir(
    hosted: Hosted, tmp_path: Path
) -> None:
    # The catalog channel: the store's videos, in the store's order (a model's item order
    # breaks ties between neighbours, so only the same order can give the very same model).
    api = bootstrap(Settings(home=hosted.home))
    try:
        videos = api.store.all_videos()
    finally:
        api.close()
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    rows = [video_row(v) for v in videos]
    pq.write_table(pa.Table.from_pylist(rows), catalog / "part-0.parquet")
    out = tmp_path / "sm-model"
    env = {
        "RECOMIND_HOME": str(tmp_path / "no-store-here"),
        "SM_CHANNEL_TRAINING": str(hosted.home / "lake"),
        "SM_CHANNEL_CATALOG": str(catalog),
        "SM_MODEL_DIR": str(out),
    }
    code, text = run_cli("modelserver", "train", env=env)
    assert code == 0, text
    assert ModelRegistry(out).current() == "v000001"
    info = ModelRegistry(out).load("v000001").info
    assert info["source"] == "lake" and info["actions"] == len(hosted.world.actions)
    assert info["videos"] == len(hosted.world.videos)
    # The same input gives the same model as the one the server hosts (up to the last digits:
    # popularity decays to the moment of training).
    request = RankRequest(tuple(hosted.actions_of("u9")), 15)
    ours, hosted_ones = in_process(out, request), in_process(hosted.model_dir, request)
    assert [(v, r) for v, _, r in ours] == [(v, r) for v, _, r in hosted_ones]
    assert [s for _, s, _ in ours] == pytest.approx([s for _, s, _ in hosted_ones], rel=1e-9)


def test_train_refuses_bad_input_and_writes_nothing(hosted: Hosted, tmp_path: Path) -> None:
    out = tmp_path / "models"
    failure_dir = tmp_path / "output"
    failure_dir.mkdir()
    base = {
        "RECOMIND_HOME": str(tmp_path / "home"),
        "RECOMIND_MODELSERVER_MODEL_DIR": str(out),
        "RECOMIND_MODELSERVER_OUTPUT_DIR": str(failure_dir),
    }
    code, text = run_cli("modelserver", "train", "--input", str(tmp_path / "nowhere"), env=base)
    assert code == 2 and "holds no lake" in text, text
    assert "holds no lake" in (failure_dir / "failure").read_text()

    empty_lake = tmp_path / "empty-lake"
    (empty_lake / "video_actions").mkdir(parents=True)
    code, text = run_cli("modelserver", "train", "--input", str(empty_lake), env=base)
    assert code == 2 and "holds no actions" in text, text

    lake = str(hosted.home / "lake")
    code, text = run_cli("modelserver", "train", "--input", lake, env=base)  # an empty store
    assert code == 2 and "the catalog is empty" in text, text

    bad = tmp_path / "videos.csv"
    bad.write_text("video_id,title,url,tags\nv1,A,https://x/1,a\nv 2,B,https://x/2,b\n")
    code, text = run_cli("modelserver", "train", "--input", lake, "--catalog", str(bad), env=base)
    assert code == 2 and "row 2" in text and "video_id" in text, text

    code, text = run_cli(
        "modelserver", "train", "--input", lake, "--catalog", str(tmp_path / "no.csv"), env=base
    )
    assert code == 2 and "no such catalog" in text, text
    assert not out.exists() or ModelRegistry(out).versions() == []
