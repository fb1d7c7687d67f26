"""The model registry prunes old versions and still rolls back."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest

from recomind.domain.errors import NotFound
from recomind.recommenders.hybrid import HybridRecommender
from recomind.services.model_registry import ABANDONED_SAVE_SECONDS, ModelRegistry


class _Artifact:
    """Stands in for a trained hybrid: `save` writes a folder, as the real one does."""

    def save(self, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "meta.json").write_text("{}")


def _train(registry: ModelRegistry) -> str:
    version = registry.save(cast(HybridRecommender, _Artifact()), {})
    registry.activate(version)
    return version


def test_activation_keeps_the_newest_versions_and_the_ones_made_current(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=3)
    made = [_train(registry) for _ in range(7)]
    assert registry.versions() == made[-3:]
    assert registry.current() == made[-1]
    assert not [p.name for p in registry.root.iterdir() if p.name.startswith(".")]
    # keep - 1 rollbacks in a row find their model; the next has nothing left to go to
    assert registry.rollback() == made[-2]
    assert registry.rollback() == made[-3]
    with pytest.raises(NotFound):
        registry.rollback()
    assert registry.current() == made[-3]


def test_an_activation_removes_what_a_killed_save_or_prune_left_but_not_a_save_in_progress(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=2)
    first = _train(registry)
    abandoned = registry.root / ".save-4242-0a0a"  # its process was killed while it saved
    _Artifact().save(abandoned)
    an_hour_ago = time.time() - ABANDONED_SAVE_SECONDS - 60
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    in_progress = registry.root / ".save-4343-0b0b"  # another process, saving right now
    _Artifact().save(in_progress)
    half_pruned = registry.root / ".v000000.pruned"  # killed while a prune deleted it
    _Artifact().save(half_pruned)

    second = _train(registry)

    assert sorted(p.name for p in registry.root.iterdir() if p.name.startswith(".")) == [
        in_progress.name
    ]
    assert registry.versions() == [first, second]


def test_a_rolled_back_to_version_survives_later_training(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=2)
    first = _train(registry)
    bad = _train(registry)
    assert registry.rollback() == first
    # Two more versions: `first` is neither among the newest two nor the last two made current.
    newer = [_train(registry) for _ in range(2)]
    assert registry.versions() == newer
    assert registry.rollback() == newer[0]
    assert bad not in registry.versions()


def test_versions_the_history_names_but_that_were_pruned_are_skipped(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=2)
    made = [_train(registry) for _ in range(3)]
    registry.activate(made[1])  # history: v1 v2 v3 v2 -> v1 pruned long ago
    made.append(_train(registry))  # history: ... v2 v4; kept: v3 v4 (newest) and v2 v4
    assert set(registry.versions()) == {made[1], made[2], made[3]}
    assert registry.rollback() == made[1]
    assert registry.rollback() == made[2]
    assert registry.rollback() == made[1]
    with pytest.raises(NotFound):  # v1 is next in the history, and it is gone
        registry.rollback()
    assert registry.current() == made[1]


def test_a_registry_must_keep_enough_to_roll_back(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ModelRegistry(tmp_path, keep=1)


def test_unpruned_registries_load_untouched(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", keep=50)
    made = [_train(registry) for _ in range(4)]
    assert registry.versions() == made


class _SlowArtifact:
    """A model whose `save` takes a while, and writes what tells it apart."""

    def __init__(self, mark: str) -> None:
        self.mark = mark

    def save(self, path: Path) -> None:
        path.mkdir(parents=True)
        time.sleep(0.05)
        (path / "meta.json").write_text(self.mark)


def test_trainings_that_end_together_each_get_a_version_of_their_own(tmp_path: Path) -> None:
    """The trainer's hourly run and an API's retrain can save at once on the shared volume:
    each model lands whole in its own version, and the history names each activation."""
    registry = ModelRegistry(tmp_path / "models", keep=10)
    together = threading.Barrier(6)

    def train(i: int) -> str:
        together.wait()
        version = registry.save(cast(HybridRecommender, _SlowArtifact(f"model {i}")), {"i": i})
        registry.activate(version)
        return version

    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(train, range(6)))
    assert sorted(made) == registry.versions() == [f"v{n:06d}" for n in range(1, 7)]
    for i, version in enumerate(made):
        assert (registry.root / version / "meta.json").read_text() == f"model {i}"
        assert json.loads((registry.root / version / "info.json").read_text())["i"] == i
    assert sorted(registry.history()) == sorted(made)
    assert registry.current() in made
    assert not [p.name for p in registry.root.iterdir() if p.name.startswith(".")]
