"""`recomind import`: bulk-load users, videos or actions from CSV, JSON Lines or Parquet.

Every row is validated before anything is written, so a bad file changes
nothing and the error names its row (1 = the first data row). Rows go to the
store in large batches (and actions to the lake too); then popularity and
profiles are rebuilt from the store, since imported actions bypass the bus.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from recomind.domain.errors import InvalidInput, UnknownVideo
from recomind.domain.model import ActionWeights, VideoAction
from recomind.domain.ports import Lake, Store
from recomind.services.aggregates import rebuild_aggregates
from recomind.services.catalog import CatalogService, to_user, to_video
from recomind.services.ingest import ActionRequest, to_action

FORMATS = (".csv", ".jsonl", ".parquet")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a file as dicts, by extension; raises InvalidInput naming a bad row."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
    elif suffix == ".jsonl":
        with path.open("rb") as fh:
            for row, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise InvalidInput(f"not JSON: {exc}", row=row) from None
                if not isinstance(value, dict):
                    raise InvalidInput("not a JSON object", row=row)
                yield value
    elif suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            yield from batch.to_pylist()
    else:
        raise InvalidInput(f"unknown file type {suffix!r}; use one of {', '.join(FORMATS)}")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    written: int


class Importer:
    def __init__(
        self,
        store: Store,
        lake: Lake,
        weights: ActionWeights,
        popularity_half_life: float,
        affinity_half_life: float,
    ) -> None:
        self.store = store
        self.lake = lake
        self.catalog = CatalogService(store)
        self.weights = weights
        self.popularity_half_life = popularity_half_life
        self.affinity_half_life = affinity_half_life

    def users(self, path: Path) -> ImportResult:
        users = [to_user(r, row) for row, r in enumerate(read_rows(path), start=1)]
        return ImportResult(len(users), self.catalog.add_users(users))

    def videos(self, path: Path) -> ImportResult:
        videos = [to_video(r, row) for row, r in enumerate(read_rows(path), start=1)]
        return ImportResult(len(videos), self.catalog.add_videos(videos))

    def actions(self, path: Path) -> ImportResult:
        actions = [self._action(r, row) for row, r in enumerate(read_rows(path), start=1)]
        known = self.store.existing_video_ids({a.video_id for a in actions})
        for row, a in enumerate(actions, start=1):
            if a.video_id not in known:
                raise UnknownVideo(a.video_id, row=row)
        new = self.store.bulk_insert_actions(actions)
        if new:
            self.lake.archive_actions(new)
            rebuild_aggregates(
                self.store, self.weights, self.popularity_half_life, self.affinity_half_life
            )
        return ImportResult(len(actions), len(new))

    @staticmethod
    def _action(r: dict[str, Any], row: int) -> VideoAction:
        if r.get("timestamp") in (None, ""):
            raise InvalidInput("is required", field="timestamp", row=row)
        watch = r.get("watch_ms")
        if isinstance(watch, str):
            watch = (
                int(watch) if watch.strip().isdigit() else (None if not watch.strip() else watch)
            )
        return to_action(
            ActionRequest(
                user_id=r.get("user_id"),
                video_id=r.get("video_id"),
                action_type=r.get("action_type"),
                timestamp=r.get("timestamp"),
                watch_ms=watch,
                id=r.get("id") or None,
            ),
            row=row,
        )
