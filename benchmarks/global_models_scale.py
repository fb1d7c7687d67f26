"""Fit time, Top-100 precompute rate and peak memory of the models on a large action log.

    python benchmarks/global_models_scale.py --actions 20000000 --videos 100000 --viewers 1000000

The log is drawn directly as index arrays (Zipf-like video popularity, viewers with
geometric activity, 30 days of timestamps, videos tagged from the simulator's topic
clusters), so it measures the models, not the simulator or the store. `hybrid` is the
production model (`recomind train`'s); its precompute rate includes re-ranking, as the hourly
job does (in batches of 512 viewers, the busiest first), but not the store and cache writes.
Each model fits in a fresh process, so each peak (ru_maxrss) is its own; it includes the log
itself, whose own peak is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time

import numpy as np

from recomind.config import Settings
from recomind.recommenders.als import ALS
from recomind.recommenders.base import Recommender
from recomind.recommenders.data import Catalog, TrainingData
from recomind.recommenders.ease import EASE
from recomind.recommenders.embeddings import configure
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.rerank import RerankSettings, candidate_count, rerank_picks
from recomind.services.simulator import TOPICS

PRECOMPUTE_BATCH = 512  # TrainSettings.precompute_batch


# Actions drawn per chunk, so the generator's temporaries stay ~50 MB whatever the log size.
CHUNK = 1 << 21


def _draw(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """`size` indices drawn with probability proportional to `weights`, as int32."""
    cdf = np.cumsum(weights / weights.sum())
    out = np.empty(size, np.int32)
    for start in range(0, size, CHUNK):
        stop = min(start + CHUNK, size)
        drawn = np.searchsorted(cdf, rng.random(stop - start), side="right")
        out[start:stop] = np.minimum(drawn, len(weights) - 1)
    return out


def synthetic(n_actions: int, n_videos: int, n_viewers: int, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    items = _draw(rng, 1.0 / np.arange(1, n_videos + 1) ** 0.9, n_actions)
    activity = rng.geometric(1.0 / max(2.0, n_actions / n_viewers), size=n_viewers).astype(float)
    users = _draw(rng, activity, n_actions)
    codes = _draw(rng, np.array([0.6, 0.25, 0.15]), n_actions).astype(np.int8)
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


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(model_name: str, args: argparse.Namespace) -> None:
    configure(args.text_model, Settings().text_model_max_videos)
    start = time.perf_counter()
    data = synthetic(args.actions, args.videos, args.viewers)
    made, log_peak = time.perf_counter() - start, _peak_gib()
    model: Recommender
    if model_name == "hybrid":
        model = HybridRecommender(
            ease_max_items=args.hybrid_ease_items,
            neighbour_max_items=args.neighbour_items,
            max_ranker_viewers=args.ranker_viewers,
            als_max_pairs=args.als_max_pairs,
            blas_threads=args.blas_threads,
        )
    elif model_name == "ease":
        model = EASE(max_items=args.ease_items)
    else:
        model = ALS(factors=args.factors, max_pairs=args.als_max_pairs)
    start = time.perf_counter()
    model.fit(data)
    fit = time.perf_counter() - start
    fit_peak = _peak_gib()
    # the most active viewers, as the hourly job's "active lately" are the busy ones
    counts = np.bincount(data.users, minlength=data.n_users)
    chosen = np.argsort(-counts, kind="stable")[: args.score_viewers]
    all_histories = data.user_histories()
    histories = [all_histories[u] for u in chosen]
    del all_histories
    rules = RerankSettings()
    start = time.perf_counter()
    if isinstance(model, HybridRecommender):  # as the hourly precompute ranks viewers
        for at in range(0, len(histories), PRECOMPUTE_BATCH):
            batch = histories[at : at + PRECOMPUTE_BATCH]
            lists = model.explain_many(batch, candidate_count(100, 0))
            for u, h, picks in zip(chosen[at:], batch, lists, strict=False):
                seen = model.item_ids[h.items]
                rerank_picks(model, picks, seen, f"u{u}", rules, 100, data.now)
    else:
        for h in histories:
            model.recommend(h, 100)
    rate = len(histories) / (time.perf_counter() - start)
    extra = f" {json.dumps(model.training_)}" if isinstance(model, HybridRecommender) else ""
    print(
        f"{model_name:6s} actions={args.actions:,} videos={args.videos:,} "
        f"viewers={args.viewers:,} (log made in {made:.0f}s, {log_peak:.2f} GiB): "
        f"fit {fit:.1f}s, peak {fit_peak:.2f} GiB while fitting (incl. the log); "
        f"top-100 {rate:,.0f} viewers/s; load average {os.getloadavg()[0]:.1f}{extra}",
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
    parser.add_argument("--hybrid-ease-items", type=int, default=Settings().ease_max_items)
    parser.add_argument("--neighbour-items", type=int, default=Settings().neighbour_max_items)
    parser.add_argument("--ranker-viewers", type=int, default=Settings().ranker_max_viewers)
    parser.add_argument("--als-max-pairs", type=int, default=Settings().als_max_pairs)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=Settings().train_blas_threads,
        help="the hybrid's BLAS threads (0: the library default)",
    )
    parser.add_argument("--text-model", default="auto", help="auto (MiniLM up to 20k videos), off")
    parser.add_argument("--models", default="hybrid,ease,als")
    args = parser.parse_args()
    for name in args.models.split(","):
        process = mp.get_context("spawn").Process(target=run, args=(name, args))
        process.start()
        process.join()


if __name__ == "__main__":
    main()
