"""The `recomind` command end to end: import -> train -> recommend -> evaluate, and bad files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from recomind.entrypoints.cli import app
from recomind.services.simulator import SimulatedWorld, export_parquet, simulate


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECOMIND_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECOMIND_TRAIN_INTERVAL_SECONDS", "0")
    return tmp_path


@pytest.fixture(scope="module")
def world() -> SimulatedWorld:
    return simulate(n_videos=200, n_users=80, actions_per_user=30, seed=11)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def write_videos_csv(world: SimulatedWorld, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "title", "url", "tags", "creator_id", "created_at", "duration_ms"])
        for v in world.videos:
            w.writerow(
                [
                    v.video_id,
                    v.title,
                    v.url,
                    "|".join(v.tags),
                    v.creator_id,
                    v.created_at.isoformat(),
                    v.duration_ms,
                ]
            )
    return path


def write_users_jsonl(world: SimulatedWorld, path: Path) -> Path:
    path.write_bytes(
        b"".join(orjson.dumps({"user_id": u.user_id, "name": u.name}) + b"\n" for u in world.users)
    )
    return path


def test_import_train_recommend_evaluate(home: Path, world: SimulatedWorld) -> None:
    code, out = run("import", "videos", str(write_videos_csv(world, home / "videos.csv")))
    assert code == 0 and "200 rows read, 200 written" in out, out
    code, out = run("import", "users", str(write_users_jsonl(world, home / "users.jsonl")))
    assert code == 0 and "80 written" in out, out
    actions = export_parquet(world, home / "export")["actions"]
    code, out = run("import", "actions", str(actions))
    assert code == 0 and f"{len(world.actions):,} written" in out, out
    code, out = run("import", "actions", str(actions))  # a second import is a no-op
    assert code == 0 and "0 written" in out, out

    code, out = run("train")
    assert code == 0 and "model v000001" in out, out

    code, out = run("recommend", "u1", "u2", "--k", "5", "--json")
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["user_id"] for line in lines] == ["u1", "u2"]
    seen = {a.video_id for a in world.actions if a.user_id == "u1"}
    items = lines[0]["items"]
    assert len(items) == 5 and not seen & {i["video_id"] for i in items}
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)

    (home / "who.txt").write_text("u3\nu4\nsomeone-new\n")
    out_file = home / "recs.jsonl"
    code, out = run(
        "recommend", "--users-file", str(home / "who.txt"), "--k", "7", "--output", str(out_file)
    )
    assert code == 0, out
    written = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [w["user_id"] for w in written] == ["u3", "u4", "someone-new"]
    assert all(len(w["items"]) == 7 for w in written)

    report = home / "eval.json"
    code, out = run("evaluate", "--k", "10", "--output", str(report))
    assert code == 0 and "NDCG@10" in out, out
    results = json.loads(report.read_text())["results"]
    by_model = {(r["model"], r["segment"]): r for r in results}
    assert {"hybrid", "popularity", "item_knn", "user_knn", "tag_content"} <= {
        m for m, _ in by_model
    }
    hybrid, popular = by_model[("hybrid", "all")], by_model[("popularity", "all")]
    assert hybrid["users"] > 50
    # viewers have tastes, so personalisation must beat the same-list-for-all baseline
    assert hybrid["ndcg"] > popular["ndcg"]


def test_bad_rows_name_the_row_and_change_nothing(home: Path, world: SimulatedWorld) -> None:
    assert run("import", "videos", str(write_videos_csv(world, home / "videos.csv")))[0] == 0
    bad = home / "actions.jsonl"
    good = {
        "user_id": "u1",
        "video_id": "v1",
        "action_type": "like",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    bad.write_text("\n".join(json.dumps(r) for r in [good, good, {**good, "action_type": "love"}]))
    code, out = run("import", "actions", str(bad))
    assert code == 2 and "row 3" in out and "action_type" in out, out
    bad.write_text("\n".join(json.dumps(r) for r in [good, {**good, "video_id": "nope"}]))
    code, out = run("import", "actions", str(bad))
    assert code == 2 and "row 2" in out and "unknown video" in out, out
    bad.write_text(json.dumps(good) + "\n{not json\n")
    code, out = run("import", "actions", str(bad))
    assert code == 2 and "row 2" in out, out
    code, out = run("import", "actions", str(home / "nothing.csv"))
    assert code == 2 and "no such file" in out, out
    code, out = run("import", "actions", str(home / "videos.xlsx"))
    assert code == 2, out

    videos = home / "bad-videos.csv"
    videos.write_text("video_id,title,url,tags\nok1,T,u,a|b\n,T,u,a\n")
    code, out = run("import", "videos", str(videos))
    assert code == 2 and "row 2" in out and "video_id" in out, out
    code, out = run("train")
    assert code == 0, out
    code, out = run("evaluate")
    assert code == 2 and "no actions" in out, out  # the bad files stored nothing


def test_recommend_without_a_model_or_users_is_a_clear_error(home: Path) -> None:
    code, out = run("recommend", "u1")
    assert code != 0 and "recomind train" in out, out
    code, out = run("recommend")
    assert code == 2 and "USER_ID" in out, out
    code, out = run("recommend", "bad id")
    assert code == 2 and "user_id" in out, out


def test_simulate_writes_files_that_import_as_they_are(home: Path) -> None:
    code, out = run("simulate", "--out", str(home / "sim"), "--videos", "40", "--viewers", "10")
    assert code == 0, out
    for kind in ("videos", "users", "actions"):
        code, out = run("import", kind, str(home / "sim" / f"{kind}.parquet"))
        assert code == 0 and " 0 written" not in out, out
    assert run("simulate", "--out", str(home / "x"), "--videos", "0")[0] == 2
