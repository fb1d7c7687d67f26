"""The lake as Parquet files in a local folder (`file:///path/lake`).

Actions land under `video_actions/dt=YYYY-MM-DD/hour=HH/`. A file written from
the bus is named by the bus partition and offset range it holds
(`p003-000000000120-000000000245.parquet`), so a restarted sink finds the last
offset already written and never writes an event twice. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from recomind.domain.model import ActionType, VideoAction
from recomind.domain.ports import LakeRecord

ACTIONS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("video_id", pa.string()),
        ("action_type", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("watch_ms", pa.int64()),
        ("bus_partition", pa.int32()),
        ("bus_offset", pa.int64()),
    ]
)
_OFFSET_FILE = re.compile(r"^p(\d+)-(\d+)-(\d+)\.parquet$")


def actions_table(
    actions: Sequence[VideoAction], positions: Sequence[tuple[int, int]] | None
) -> pa.Table:
    return pa.table(
        {
            "id": [a.id for a in actions],
            "user_id": [a.user_id for a in actions],
            "video_id": [a.video_id for a in actions],
            "action_type": [a.action_type.value for a in actions],
            "timestamp": [a.timestamp.astimezone(UTC) for a in actions],
            "watch_ms": [a.watch_ms for a in actions],
            "bus_partition": [p for p, _ in positions] if positions else [None] * len(actions),
            "bus_offset": [o for _, o in positions] if positions else [None] * len(actions),
        },
        schema=ACTIONS_SCHEMA,
    )


class ParquetLake:
    """The Lake port on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.actions_dir = root / "video_actions"
        self.actions_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._last: dict[int, int] | None = None

    @classmethod
    def from_url(cls, url: str) -> ParquetLake:
        parts = urlsplit(url)
        return cls(Path(parts.netloc + parts.path))

    def last_offsets(self) -> dict[int, int]:
        with self._lock:
            return dict(self._scan_last())

    def _scan_last(self) -> dict[int, int]:
        if self._last is None:
            last: dict[int, int] = {}
            for path in self.actions_dir.glob("dt=*/hour=*/p*.parquet"):
                m = _OFFSET_FILE.match(path.name)
                if m:
                    p, end = int(m.group(1)), int(m.group(3))
                    last[p] = max(last.get(p, 0), end)
            self._last = last
        return self._last

    def write_actions(self, records: Sequence[LakeRecord]) -> int:
        with self._lock:
            last = self._scan_last()
            # -1: nothing written yet, and bus offsets start at 0 (Kafka's do).
            fresh = [r for r in records if r.offset > last.get(r.partition, -1)]
            groups: dict[tuple[str, int], list[LakeRecord]] = defaultdict(list)
            for r in fresh:
                groups[(self._folder(r.action), r.partition)].append(r)
            # Lowest offsets first, so a crash part-way leaves no gap below a written file.
            for (folder, partition), group in sorted(groups.items(), key=lambda g: g[1][0].offset):
                group.sort(key=lambda r: r.offset)
                name = f"p{partition:03d}-{group[0].offset:012d}-{group[-1].offset:012d}.parquet"
                table = actions_table(
                    [r.action for r in group], [(r.partition, r.offset) for r in group]
                )
                self._write(self.actions_dir / folder / name, table)
            for r in fresh:
                last[r.partition] = max(last.get(r.partition, 0), r.offset)
            return len(fresh)

    def archive_actions(self, actions: Sequence[VideoAction]) -> int:
        groups: dict[str, list[VideoAction]] = defaultdict(list)
        for a in actions:
            groups[self._folder(a)].append(a)
        for folder, group in groups.items():
            name = f"import-{uuid.uuid4().hex}.parquet"
            self._write(self.actions_dir / folder / name, actions_table(group, None))
        return len(actions)

    @staticmethod
    def _folder(action: VideoAction) -> str:
        ts = action.timestamp.astimezone(UTC)
        return f"dt={ts:%Y-%m-%d}/hour={ts:%H}"

    @staticmethod
    def _write(path: Path, table: pa.Table) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"  # a leading dot hides it from readers
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _dataset(self) -> ds.Dataset:
        return ds.dataset(
            self.actions_dir, format="parquet", partitioning="hive", schema=ACTIONS_SCHEMA
        )

    def read_actions(self) -> list[VideoAction]:
        table = self._dataset().to_table(
            columns=["id", "user_id", "video_id", "action_type", "timestamp", "watch_ms"]
        )
        return [
            VideoAction(
                id=r["id"],
                user_id=r["user_id"],
                video_id=r["video_id"],
                action_type=ActionType(r["action_type"]),
                timestamp=r["timestamp"],
                watch_ms=r["watch_ms"],
            )
            for r in table.to_pylist()
        ]

    def count_actions(self) -> int:
        return int(self._dataset().count_rows())
