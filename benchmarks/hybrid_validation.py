"""The hybrid's settings scored on the VALIDATION split only (never the test split).

    python benchmarks/hybrid_validation.py FOLDER [--variants default,...] [--cold-seeds 5]
        [--tuned tuned.json]

FOLDER holds `recomind import` files. This carves the test split exactly as `recomind
evaluate` does and then never looks at it again: the baselines are tuned on the validation
split carved from the training part (the same `evaluation.tune` call), and each hybrid
variant, popularity and the best tuned baselines are scored on that validation split, on
segment `all` and on the validation split's own cold-start protocol (repeated over
`--cold-seeds` seeds, as `evaluate` does). This is how the hybrid's defaults are chosen
(docs/evaluation.md, "How the defaults were chosen").
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tune_baselines import load  # type: ignore[import-not-found]  # benchmarks/ is on the path

from recomind.domain.model import ActionWeights
from recomind.recommenders.base import Recommender
from recomind.recommenders.hybrid import HybridRecommender
from recomind.services import tuning
from recomind.services.evaluation import evaluate, temporal_split, tune

# name -> HybridRecommender keyword arguments on top of the tuned sources
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "cold1": {"cold_passes": 1},
    "cold4": {"cold_passes": 4},
    # cold cuts labelled with their next window, not their next action (ADR 0007)
    "late_labels": {"cold_labels": "late"},
    # the defaults before ADR 0007: cold viewers by the start transitions, late labels
    "transitions": {"cold_order": "transitions", "cold_labels": "late"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--variants", default="default")
    parser.add_argument("--baselines", default="popularity,tag_content,ease")
    parser.add_argument("--cold-share", type=float, default=0.1)
    parser.add_argument("--cold-seeds", type=int, default=5)
    parser.add_argument("--tuned", type=Path, help="cache of the tuned parameters (JSON)")
    args = parser.parse_args()
    videos, actions = load(args.folder)
    weights = ActionWeights()
    start = time.perf_counter()
    split = temporal_split(actions, 0.2, {v.video_id: v.duration_ms for v in videos})
    train = split.train  # the test part of `split` is never used below
    if args.tuned and args.tuned.exists():
        params = json.loads(args.tuned.read_text())
    else:
        tuned = tune(videos, train, weights, 10, 0.2, tuple(tuning.BASELINES))
        params = {t.model: t.params for t in tuned}
        for t in tuned:
            print(f"tuned {t.model:11s} validation NDCG@10 {t.validation_ndcg:.4f} {t.params}")
        if args.tuned:
            args.tuned.write_text(json.dumps(params))
    factories: dict[str, Callable[[], Recommender]] = {}
    sources = {tuning.HYBRID_SOURCE[name]: p for name, p in params.items()}
    for name in args.variants.split(","):
        factories[f"hybrid:{name}"] = partial(HybridRecommender, sources=sources, **VARIANTS[name])
    for name in args.baselines.split(","):
        factories[name] = tuning.baseline(name, params.get(name))
    # `evaluate` on the training part: its own temporal split of it is the validation split
    result = evaluate(
        videos,
        train,
        weights,
        factories=factories,
        cold_share=args.cold_share,
        cold_seeds=args.cold_seeds,
    )
    print(f"[{time.perf_counter() - start:.0f}s] validation NDCG@10")
    for segment in ("all", "cold_start", "cold_start_late"):
        base = result.get("popularity", segment)
        for model in factories:
            s = result.get(model, segment)
            if s is None:
                continue
            ratio = s.ndcg / base.ndcg if base and base.ndcg else float("nan")
            print(f"{segment:10s} {model:24s} n={s.users:5d} NDCG@10 {s.ndcg:.4f} /pop {ratio:.3f}")


if __name__ == "__main__":
    main()
