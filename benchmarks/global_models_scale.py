"""Fit time, Top-100 precompute rate and peak memory of the models on a large action log.

    python benchmarks/global_models_scale.py --actions 20000000 --videos 100000 --viewers 1000000

The log is drawn directly as index arrays (Zipf-like video popularity, viewers with
geometric activity, 30 days of timestamps, videos tagged from the simulator's topic
clusters), so it measures the models, not the simulator or the store. `hybrid` is the
production model (`recomind train`'s); its precompute rate includes re-ranking, as the hourly
job does, but not the store and cache writes. Each model fits in a fresh process, so each
peak (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np

from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.data import Catalog, TrainingData
from recomind.recommenders.ease import EASE
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.rerank import RerankSettings, candidate_count, rerank_picks
from recomind.services.simulator import TOPICS


def synthetic(n_actions: int, n_videos: int, n_viewers: int, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_videos + 1) ** 0.9
    items = rng.choice(n_videos, size=n_actions, p=popularity / popularity.sum()).astype(np.int32)
    activity = rng.geometric(1.0 / max(2.0, n_actions / n_viewers), size=n_viewers).astype(float)
    users = rng.choice(n_viewers, size=n_actions, p=activity / activity.sum()).astype(np.int32)
    codes = rng.choice(np.array([0, 1, 2], np.int8), size=n_actions, p=[0.6, 0.25, 0.15])
    weights = np.array([1.0, 3.0, -1.0], np.float32)[codes]
    ids = np.array([f"v{i}" for i in range(n_videos)], dtype=object)
    clusters = list(TOPICS.values())
    topic = rng.integers(0, len(clusters), size=n_videos)
    picks = rng.integers(0, 4, size=(n_videos, 2))
    tags = [
        tuple(dict.fromkeys(clusters[t][j] for j in p)) for t, p in zip(topic, picks, strict=True)
    ]
    span = 30 * 86400.0
    created = rng.uniform(-span, span * 0.9, size=n_videos)
    creators: list[str | None] = [
        f"c{c}" for c in rng.integers(0, max(1, n_videos // 10), n_videos)
    ]
    titles = [f"{tags[i][0]} clip {i}" for i in range(n_videos)]
    catalog = Catalog(ids, tags, created, creators, titles)
    return TrainingData(
        catalog=catalog,
        user_ids=np.array([f"u{i}" for i in range(n_viewers)], dtype=object),
        users=users,
        items=items,
        actions=codes,
        weights=weights,
        timestamps=np.sort(rng.uniform(0, span, size=n_actions)),
        now=span,
    )


def run(model_name: str, args: argparse.Namespace) -> None:
    data = synthetic(args.actions, args.videos, args.viewers)
    model: Recommender
    if model_name == "hybrid":
        model = HybridRecommender()
    elif model_name == "ease":
        model = EASE(max_items=args.ease_items)
    else:
        model = ALS(factors=args.factors)
    start = time.perf_counter()
    model.fit(data)
    fit = time.perf_counter() - start
    histories = data.user_histories()[: args.score_viewers]
    rules = RerankSettings()
    start = time.perf_counter()
    for u, h in enumerate(histories):
        if isinstance(model, HybridRecommender):  # as the hourly precompute ranks a viewer
            picks = model.explain(h, candidate_count(100, 0))
            seen = model.item_ids[h.items]
            rerank_picks(model, picks, seen, f"u{u}", rules, 100, data.now)
        else:
            model.recommend(h, 100)
    rate = len(histories) / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"{model_name:5s} actions={args.actions:,} videos={args.videos:,} "
        f"viewers={args.viewers:,}: fit {fit:.1f}s, top-100 {rate:,.0f} viewers/s, "
        f"peak {peak:.2f} GiB (incl. the log)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--viewers", type=int, default=50_000)
    parser.add_argument("--ease-items", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--score-viewers", type=int, default=2_000)
    parser.add_argument("--models", default="hybrid,ease,als")
    args = parser.parse_args()
    for name in args.models.split(","):
        process = mp.get_context("spawn").Process(target=run, args=(name, args))
        process.start()
        process.join()


if __name__ == "__main__":
    main()
