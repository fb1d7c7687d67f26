"""`recomind modelserver train`: fit the ranker from the lake, like a SageMaker training job.

Input: the lake's actions (a lake URL, or a folder holding the lake such as the
`training` channel `/opt/ml/input/data/training`) and the catalog's videos (a
`catalog` channel of files in the `recomind import videos` format, or the store).
Output: a new version in the model folder (`SM_MODEL_DIR`, `/opt/ml/model`), made
current, in the registry's format (npz + JSON, no pickle) that `serve`, `recomind
serve` and `recomind rollback` all use. The lake keeps every accepted copy of an
event, so actions are counted once per event id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from recomind.bootstrap import TrainingInputs
from recomind.domain.errors import InvalidInput, RecoMindError
from recomind.domain.model import Video, VideoAction
from recomind.recommenders.data import training_data
from recomind.services.catalog import to_video
from recomind.services.importer import FORMATS, read_rows
from recomind.services.training import TrainSettings


@dataclass(frozen=True)
class JobReport:
    version: str
    model_dir: Path
    lake_actions: int
    actions: int  # distinct events on videos of the catalog
    users: int
    videos: int
    fit_seconds: float


def read_catalog(path: Path) -> list[Video]:
    """Videos from a file, or from every .csv/.jsonl/.parquet file of a folder (a channel)."""
    files = (
        sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise RecoMindError(f"no {', '.join(FORMATS)} file in the catalog folder {path}")
    videos: list[Video] = []
    for file in files:
        try:
            videos += [to_video(r, row) for row, r in enumerate(read_rows(file), start=1)]
        except InvalidInput as exc:
            raise RecoMindError(f"{file}: {exc}") from None
    return videos


def distinct_events(actions: list[VideoAction]) -> list[VideoAction]:
    """The first copy of each action, by the store's key: viewer and event id (ADR 0011)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for a in actions:
        if (a.user_id, a.id) not in seen:
            seen.add((a.user_id, a.id))
            unique.append(a)
    return unique


def train_from_lake(inputs: TrainingInputs) -> JobReport:
    s = inputs.settings
    lake_actions = inputs.lake.read_actions()
    if not lake_actions:
        raise RecoMindError(f"the lake at {inputs.lake_location} holds no actions to train on")
    if inputs.catalog_file is not None:
        videos = read_catalog(inputs.catalog_file)
    else:
        assert inputs.store is not None
        videos = inputs.store.all_videos()
    if not videos:
        raise RecoMindError(
            "the catalog is empty: give the videos as a catalog channel "
            "(--catalog or SM_CHANNEL_CATALOG, the `recomind import videos` format) "
            "or through the store (RECOMIND_STORE_URL)"
        )
    data = training_data(videos, distinct_events(lake_actions), s.action_weights)
    if len(data.users) == 0:
        raise RecoMindError("none of the lake's actions is on a video of the catalog")
    start = time.perf_counter()
    model = TrainSettings.from_config(s).model().fit(data)
    fit_seconds = time.perf_counter() - start
    info = {
        "source": "lake",
        "lake": inputs.lake_location,
        "actions": len(data.users),
        "users": data.n_users,
        "videos": data.n_items,
        "fit_seconds": round(fit_seconds, 3),
    }
    version = inputs.registry.save(model, info)
    inputs.registry.activate(version)
    return JobReport(
        version,
        inputs.registry.root,
        len(lake_actions),
        len(data.users),
        data.n_users,
        data.n_items,
        fit_seconds,
    )
