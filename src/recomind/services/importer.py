"""`recomind import`: bulk-load users, videos or actions from CSV, JSON Lines or Parquet.

Every row is validated before anything is written, so a bad file changes
nothing and the error names its row (1 = the first data row). Rows go to the
store in one transaction, and imported actions update popularity and profiles
in that same transaction, through the same handlers the `recomind-profile`
consumer runs (only for event ids not stored, nor counted, yet); they go to the
lake too.
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
from recomind.domain.model import VideoAction
from recomind.services.catalog import CatalogService, to_user, to_video
from recomind.services.consume import EVENT_HANDLERS, Effects, store_new_actions
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
    BATCH = 20_000

    def __init__(self, fx: Effects) -> None:
        self.fx = fx
        self.store = fx.store
        self.catalog = CatalogService(fx.store)

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
        return ImportResult(len(actions), len(self.write_actions(actions)))

    def write_actions(self, actions: list[VideoAction]) -> list[VideoAction]:
        """Store the actions not stored yet, update popularity and profiles, archive them."""
        group = EVENT_HANDLERS["recomind-profile"]
        new: list[VideoAction] = []
        with self.store.transaction() as tx:
            for start in range(0, len(actions), self.BATCH):
                new += store_new_actions(tx, actions[start : start + self.BATCH], group, self.fx)
        if new:
            self.fx.lake.archive_actions(new)
        return new

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
