"""Versioned model artifacts in a folder, a CURRENT pointer, and rollback.

`models/v000003/` holds one trained hybrid; `models/CURRENT` names the version in
use and `models/HISTORY` every version made current, oldest first, so rolling
back means pointing CURRENT at the one before. Pointers are replaced atomically, and
`models/LOCK` (an flock) is held while a version number is taken and while the pointers
change, so processes that train or roll back at once on a shared folder take turns.

Each activation prunes old versions (a version with text vectors takes about 15 MB):
the newest `keep` versions stay, and so do the last `keep` versions made current, so
`keep - 1` rollbacks in a row always find their model. A version the history names but
that was pruned is skipped by `rollback`. A prune also removes what a process killed while
saving or pruning left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recomind.domain.errors import NotFound
from recomind.recommenders.hybrid import HybridRecommender

_VERSION = re.compile(r"^v(\d{6})$")
# A save's hidden folder untouched this long belongs to a process that died while saving.
ABANDONED_SAVE_SECONDS = 3600


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: HybridRecommender
    index: dict[str, int]
    info: dict[str, Any]


class ModelRegistry:
    def __init__(self, root: Path, keep: int = 5) -> None:
        if keep < 2:
            raise ValueError("a registry keeps at least 2 versions, so it can roll back")
        self.root = root
        self.keep = keep

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if _VERSION.match(p.name))

    def save(self, model: HybridRecommender, info: dict[str, Any]) -> str:
        """Write the model under a hidden folder of its own, then, under the registry's lock,
        take the next version number and rename the folder to it. Two trainings that end
        together (the trainer's hourly run and an API's `POST /admin/retrain`, on the shared
        `models` volume) each get a version of their own: with one temporary folder per
        number, they wrote into the same one."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".save-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            model.save(tmp)
            with self._locked():
                existing = self.versions()
                number = int(existing[-1][1:]) + 1 if existing else 1
                version = f"v{number:06d}"
                info = {**info, "version": version, "saved_at": datetime.now(UTC).isoformat()}
                (tmp / "info.json").write_text(json.dumps(info, indent=2))
                os.replace(tmp, self.root / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The registry's lock, between processes too (`LOCK`, a file in the folder): held
        while a version number is taken and while the pointers are rewritten and pruned."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "LOCK", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield

    def current(self) -> str | None:
        pointer = self.root / "CURRENT"
        return pointer.read_text().strip() or None if pointer.exists() else None

    def history(self) -> list[str]:
        path = self.root / "HISTORY"
        return path.read_text().split() if path.exists() else []

    def activate(self, version: str) -> None:
        with self._locked():
            if version not in self.versions():
                raise NotFound("model version", version)
            self._write(self.root / "HISTORY", "\n".join([*self.history(), version]) + "\n")
            self._write(self.root / "CURRENT", version + "\n")
            self._prune()

    def prune(self) -> list[str]:
        """Delete the versions neither among the newest `keep` nor among the last `keep`
        made current (nor current); returns the deleted ones."""
        with self._locked():
            return self._prune()

    def _prune(self) -> list[str]:
        versions = self.versions()
        kept = set(versions[-self.keep :])
        recent: list[str] = []
        for version in reversed(self.history()):
            if len(recent) == self.keep:
                break
            if version not in recent:
                recent.append(version)
        kept.update(recent)
        current = self.current()
        if current:
            kept.add(current)
        gone = [v for v in versions if v not in kept]
        for version in gone:
            # Renamed first, so a half-deleted folder is never taken for a version.
            doomed = self.root / f".{version}.pruned"
            os.replace(self.root / version, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        self._remove_leftovers()
        return gone

    def _remove_leftovers(self) -> None:
        """Remove what a process killed part-way left: a version half deleted by a prune, and
        a save's folder untouched for `ABANDONED_SAVE_SECONDS` (a save in progress writes into
        its folder, and takes seconds)."""
        for doomed in self.root.glob(".v*.pruned"):
            shutil.rmtree(doomed, ignore_errors=True)
        for folder in self.root.glob(".save-*"):
            try:
                idle = time.time() - folder.stat().st_mtime
            except FileNotFoundError:  # a failed save removed it meanwhile
                continue
            if idle > ABANDONED_SAVE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)

    def rollback(self) -> str:
        """Make the version before the current one current again; returns it."""
        with self._locked():
            return self._rollback()

    def _rollback(self) -> str:
        history = self.history()
        current = self.current()
        present = set(self.versions())
        while history and (history[-1] == current or history[-1] not in present):
            history.pop()
        if not history:
            raise NotFound("previous model version", current or "-")
        previous = history[-1]
        self._write(self.root / "HISTORY", "\n".join(history) + "\n")
        self._write(self.root / "CURRENT", previous + "\n")
        return previous

    def load(self, version: str) -> LoadedModel:
        path = self.root / version
        if not path.exists():
            raise NotFound("model version", version)
        model = HybridRecommender.load(path)
        info = json.loads((path / "info.json").read_text())
        index = {str(v): i for i, v in enumerate(model.item_ids)}
        return LoadedModel(version, model, index, info)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


class ModelHolder:
    """The model in use in this process; picks up a newly activated version within seconds."""

    def __init__(self, registry: ModelRegistry, check_every_seconds: float = 2.0) -> None:
        self.registry = registry
        self.check_every = check_every_seconds
        self._loaded: LoadedModel | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> LoadedModel | None:
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            with self._lock:
                self._checked = now
                version = self.registry.current()
                if version and (self._loaded is None or self._loaded.version != version):
                    self._loaded = self.registry.load(version)
        return self._loaded

    def refresh(self) -> LoadedModel | None:
        self._checked = 0.0
        return self.get()
