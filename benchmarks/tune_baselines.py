"""Tune each baseline with the same budget on a validation split, then score it once on test.

    python benchmarks/tune_baselines.py FOLDER [--k 10] [--holdout 0.2] [--models ease,als]

FOLDER holds `recomind import` files (videos.parquet, actions.parquet), e.g. from
`scripts/datasets/fetch.sh ml-100k` or `recomind simulate`. The test split is exactly the
one `recomind evaluate` uses (each viewer's latest `holdout` share). Tuning never sees it: a
validation split is carved the same way out of the training part, every configuration in a
model's grid (the same number for every model) is fitted on what is left and scored there
by NDCG@K, and only the winner is refitted on the whole training part and scored on test.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from recomind.domain.model import ActionWeights, Video, VideoAction
from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.ease import EASE
from recomind.recommenders.item_knn import ItemNeighbours
from recomind.recommenders.popularity import Popularity
from recomind.recommenders.user_knn import UserNeighbours
from recomind.services.catalog import to_video
from recomind.services.evaluation import ModelScore, evaluate, temporal_split
from recomind.services.importer import Importer, read_rows

Factory = Callable[[], Recommender]
# Six configurations per model: the same budget for every baseline.
GRIDS: dict[str, dict[str, Factory]] = {
    "popularity": {
        f"half_life={h}h": partial(Popularity, half_life_hours=h)
        for h in (6.0, 48.0, 168.0, 720.0, 2880.0, 1e9)
    },
    "item_knn": {
        f"neighbours={n},shrink={s}": partial(ItemNeighbours, neighbours=n, shrink=s)
        for n, s in ((20, 0.0), (50, 10.0), (100, 10.0), (200, 10.0), (50, 50.0), (200, 50.0))
    },
    "user_knn": {
        f"neighbours={n}": partial(UserNeighbours, neighbours=n)
        for n in (10, 25, 50, 100, 200, 400)
    },
    "ease": {f"l2={v}": partial(EASE, l2=v) for v in (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0)},
    "als": {
        f"factors={f},reg={r},alpha={a}": partial(ALS, factors=f, regularization=r, alpha=a)
        for f, r, a in (
            (32, 10.0, 0.5),
            (64, 10.0, 0.5),
            (64, 1.0, 2.0),
            (64, 50.0, 2.0),
            (128, 10.0, 0.5),
            (128, 50.0, 10.0),
        )
    },
}


def load(folder: Path) -> tuple[list[Video], list[VideoAction]]:
    videos = [to_video(r, i) for i, r in enumerate(read_rows(folder / "videos.parquet"), 1)]
    actions = [
        Importer._action(r, i) for i, r in enumerate(read_rows(folder / "actions.parquet"), 1)
    ]
    return videos, actions


def _line(s: ModelScore, label: str, seconds: float) -> str:
    return (
        f"{s.model:11s} {s.segment:5s} {s.users:7d} {s.recall:9.4f} {s.ndcg:8.4f} "
        f"{s.hit_rate:8.4f} {s.coverage:8.3f} {seconds:7.1f}s  {label}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--models", default=",".join(GRIDS))
    args = parser.parse_args()
    weights = ActionWeights()
    videos, actions = load(args.folder)
    durations = {v.video_id: v.duration_ms for v in videos}
    train = temporal_split(actions, args.holdout, durations).train  # the test part is set aside
    print(f"{len(actions):,} actions; tuning on {len(train):,} training actions")
    header = f"{'model':11s} {'seg':5s} {'viewers':>7s} {'Recall':>9s} {'NDCG':>8s} {'Hit':>8s}"
    print(f"{header} {'cover':>8s} {'time':>8s}  config")
    for name in args.models.split(","):
        best: tuple[float, str] | None = None
        for label, factory in GRIDS[name].items():
            start = time.perf_counter()
            scores = evaluate(
                videos, train, weights, args.k, args.holdout, factories={name: factory}
            )
            overall = scores[0]  # segment "all"
            print(_line(overall, f"validation {label}", time.perf_counter() - start))
            if best is None or overall.ndcg > best[0]:
                best = (overall.ndcg, label)
        assert best is not None
        start = time.perf_counter()
        scores = evaluate(
            videos, actions, weights, args.k, args.holdout, factories={name: GRIDS[name][best[1]]}
        )
        for s in scores:
            print(_line(s, f"TEST {best[1]}", time.perf_counter() - start))


if __name__ == "__main__":
    main()
