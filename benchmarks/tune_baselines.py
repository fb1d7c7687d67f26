"""`recomind evaluate` straight from import files, printing every tuning step.

    python benchmarks/tune_baselines.py FOLDER [--k 10] [--holdout 0.2] [--cold-share 0.1]
        [--cold-seeds 5]
        [--models hybrid,popularity,...] [--no-tune] [--output results.json]

FOLDER holds `recomind import` files (videos.parquet, actions.parquet), e.g. from
`scripts/datasets/fetch.sh ml-100k` or `recomind simulate`. It runs exactly what
`recomind evaluate` runs (services.evaluation.evaluate: the same test split, the same
tuning of every baseline with the same budget on a validation split carved from the
training part, the same cold-start protocol) without importing into a store first, and
prints each configuration's validation NDCG as it goes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from recomind.domain.model import ActionWeights, Video, VideoAction
from recomind.services.catalog import to_video
from recomind.services.evaluation import MODELS, evaluate
from recomind.services.importer import Importer, read_rows


def add_cold_target(parser: argparse.ArgumentParser) -> None:
    """`--target`, for the studies of the cold-start cuts: what a cut viewer is scored on."""
    parser.add_argument(
        "--target",
        choices=("late", "next"),
        default="late",
        help="score a cut viewer on their latest 20%% (these studies' target) or their next"
        " action (evaluate's cold_start since ADR 0007)",
    )


def load(folder: Path) -> tuple[list[Video], list[VideoAction]]:
    videos = [to_video(r, i) for i, r in enumerate(read_rows(folder / "videos.parquet"), 1)]
    actions = [
        Importer._action(r, i) for i, r in enumerate(read_rows(folder / "actions.parquet"), 1)
    ]
    return videos, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--cold-share", type=float, default=0.1)
    parser.add_argument("--cold-seeds", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    videos, actions = load(args.folder)
    print(f"{len(videos):,} videos, {len(actions):,} actions")
    start = time.perf_counter()
    result = evaluate(
        videos,
        actions,
        ActionWeights(),
        k=args.k,
        holdout=args.holdout,
        models=tuple(args.models.split(",")),
        tune_baselines=not args.no_tune,
        cold_share=args.cold_share,
        cold_seeds=args.cold_seeds,
        progress=lambda msg: print(f"[{time.perf_counter() - start:6.1f}s] {msg}", flush=True),
    )
    for t in result.tuned:
        print(f"tuned {t.model:11s} validation NDCG@{args.k} {t.validation_ndcg:.4f}  {t.params}")
    print(
        f"{'model':11s} {'segment':10s} {'viewers':>7s} {'Recall':>8s} {'NDCG':>8s} "
        f"{'Hit':>8s} {'cover':>7s} {'novelty':>7s} {'fit s':>6s}"
    )
    for s in result.scores:
        print(
            f"{s.model:11s} {s.segment:10s} {s.users:7d} {s.recall:8.4f} {s.ndcg:8.4f} "
            f"{s.hit_rate:8.4f} {s.coverage:7.3f} {s.novelty:7.2f} "
            f"{result.fit_seconds.get(s.model, 0.0):6.1f}"
        )
    for name, ratio in result.ratios().items():
        print(f"NDCG@{args.k} {name}: {ratio:.3f}x")
    print(f"total {time.perf_counter() - start:.0f}s")
    if args.output:
        args.output.write_text(json.dumps(result.as_dict(), indent=2))


if __name__ == "__main__":
    main()
