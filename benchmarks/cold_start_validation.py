"""The hybrid on the VALIDATION split's cold-start protocol only, with popularity mixes.

    python benchmarks/cold_start_validation.py FOLDER [--variants 'name={"kw": 1},...']
        [--seeds 5] [--mixes 0.25,0.5,0.75,1]

FOLDER holds `recomind import` files. The test split is carved exactly as `recomind evaluate`
carves it and never used again; the validation split is carved the same way out of its
training part, and each seed cuts a seeded 10% of the validation viewers to their first 1-3
actions (`evaluation.cold_start_split`). Per seed and variant the hybrid is fitted on the cut
data and those viewers are scored by NDCG@10 beside popularity: as the hybrid ranks them, and
with their candidates ordered by w x popularity percentile + (1 - w) x the cold ranker's
percentile for each w of `--mixes` (what `cold_popularity_mix` does), all from one fit.
Only the cold-start segment is scored (the `all` segment is `hybrid_validation.py`'s). The
baselines' settings are passed with `--tuned` (the JSON `hybrid_validation.py --tuned` writes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tune_baselines import add_cold_target, load  # type: ignore[import-not-found]  # benchmarks/ is on the path

from recomind.domain.model import ActionWeights, VideoAction
from recomind.recommenders.data import history_from_actions, training_data
from recomind.recommenders.features import feature_names
from recomind.recommenders.hybrid import SOURCES, HybridRecommender, _percentile
from recomind.recommenders.popularity import Popularity
from recomind.services import tuning
from recomind.services.evaluation import cold_start_split, ndcg, temporal_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    add_cold_target(parser)
    parser.add_argument("--variants", default="default={}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--mixes", default="0.25,0.5,0.75,1")
    parser.add_argument("--tuned", type=Path, help="tuned baseline parameters (JSON)")
    parser.add_argument("--dump", type=Path, help="write every cut's NDCG per variant (JSON)")
    args = parser.parse_args()
    variants = {
        name: json.loads(kw) for name, kw in (v.split("=", 1) for v in args.variants.split(";"))
    }
    mixes = [float(w) for w in args.mixes.split(",") if w]
    tuned = json.loads(args.tuned.read_text()) if args.tuned else {}
    sources = {tuning.HYBRID_SOURCE[name]: p for name, p in tuned.items()}
    popularity_params = tuned.get("popularity", {})
    weights = ActionWeights()
    videos, actions = load(args.folder)
    durations = {v.video_id: v.duration_ms for v in videos}
    split = temporal_split(actions, 0.2, durations)
    validation = temporal_split(split.train, 0.2, durations)  # split.test is never used
    column = feature_names(SOURCES).index("popularity_z")
    gains: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        cold = cold_start_split(validation, 0.1, seed, durations)
        train, cut = cold.train, cold.scored_on(args.target)
        data = training_data(videos, train, weights, now=max(a.timestamp for a in train))
        index = data.catalog.index()
        per_user: dict[str, list[VideoAction]] = {}
        for a in train:
            per_user.setdefault(a.user_id, []).append(a)
        users = sorted(cut.test)
        histories = [
            history_from_actions(sorted(per_user[u], key=lambda a: a.timestamp), index, weights)
            for u in users
        ]

        def score(
            lists: list[list[int]],
            name: str,
            users: list[str] = users,
            ids: np.ndarray = data.catalog.item_ids,
            test: dict[str, set[str]] = cut.test,
        ) -> None:
            gains.setdefault(name, []).extend(
                ndcg([str(ids[i]) for i in items], test[u], 10)
                for u, items in zip(users, lists, strict=True)
            )

        pop = Popularity(**popularity_params).fit(data)
        score([[i for i, _ in pop.recommend(h, 10)] for h in histories], "popularity")
        for name, kw in variants.items():
            start = time.perf_counter()
            model = HybridRecommender(sources=sources, **kw).fit(data)
            score([[r.item for r in recs] for recs in model.explain_many(histories, 10)], name)
            if model.cold_ranker.trained:
                pools = model._pools(model.sources, model.stats, histories, model.now_)
                ranked = [model.cold_ranker.predict(p.features.astype(np.float32)) for p in pools]
                if model.transitions.n_items:
                    starts = model.transitions.starts_
                    moves = [model.transitions.score(h) for h in histories]
                    for w in [*mixes, -1.0]:  # -1: by evidence, S / (S + shrink)
                        lists = []
                        for pool, predicted, move, h in zip(
                            pools, ranked, moves, histories, strict=True
                        ):
                            s = float(starts[np.unique(h.items)].sum())
                            v = s / (s + model.transitions.shrink) if w < 0 else w
                            mixed = (1 - v) * _percentile(predicted) + v * _percentile(
                                move[pool.items]
                            )
                            order = np.lexsort((pool.items, -mixed))
                            lists.append(pool.items[order[:10]].tolist())
                        label = "evidence" if w < 0 else f"{w:g}"
                        score(lists, f"{name} ranker x transitions {label}")
                for w in mixes:
                    lists = []
                    for pool, predicted in zip(pools, ranked, strict=True):
                        mixed = (1 - w) * _percentile(predicted) + w * _percentile(
                            pool.features[:, column]
                        )
                        order = np.lexsort((pool.items, -(mixed + 1e-6 * pool.blend[pool.items])))
                        lists.append(pool.items[order[:10]].tolist())
                    score(lists, f"{name} mix {w:g}")
            took = time.perf_counter() - start
            print(
                f"seed {seed} {name}: {took:.0f}s, training {json.dumps(model.training_)}",
                flush=True,
            )
    if args.dump:
        args.dump.write_text(json.dumps(gains))
    base = float(np.mean(gains["popularity"]))
    print("validation cold_start NDCG@10, seeds pooled")
    for name, values in gains.items():
        v = np.array(values)
        print(
            f"{name:28s} n={len(v):4d} {v.mean():.4f} (se {v.std() / np.sqrt(len(v)):.4f})"
            f" /popularity {v.mean() / base:.3f}"
        )


if __name__ == "__main__":
    main()
