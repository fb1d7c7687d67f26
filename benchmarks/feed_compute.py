"""Computing a viewer's list on the fly: the full hybrid pass against the fast path.

Usage: python benchmarks/feed_compute.py [--videos N] [--viewers N] [--actions-per-viewer N]
                                         [--sample N] [--with-store]

It simulates a platform (`recomind simulate`'s generator), holds out each viewer's latest
20 % of actions, fits the hybrid on the rest and, for a sample of viewers, builds their
Top-100 twice: `HybridRecommender.explain` (every source over the whole catalogue, what
the hourly precompute runs) and `QuickRecommender.explain` (candidates only: the recent
items' neighbours, favourite tags, trending). The two are timed alternately per viewer
in the same run, so machine load hits both alike, and scored on the held-out actions
(Recall@10, NDCG@10, HitRate@10) and on how much of the full Top-10 the fast one keeps.
`--with-store` also imports everything into SQLite and times `FeedService.compute`
(store read of the viewer's history included) on both paths.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recomind.bootstrap import bootstrap
from recomind.config import FeedCompute, Settings
from recomind.domain.model import ActionWeights
from recomind.recommenders.data import History, history_from_actions, training_data
from recomind.recommenders.hybrid import HybridRecommender, Recommendation
from recomind.recommenders.quick import QuickRecommender
from recomind.services.evaluation import ndcg, temporal_split
from recomind.services.simulator import export_parquet, simulate

TOP_N = 100
K = 10


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def timing_line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name:<5} mean {statistics.fmean(ms):7.3f} ms  p50 {percentile(ms, 50):7.3f} ms  "
        f"p99 {percentile(ms, 99):7.3f} ms  ({1000 / statistics.fmean(ms):,.0f} viewers/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5_000)
    parser.add_argument("--viewers", type=int, default=5_000)
    parser.add_argument("--actions-per-viewer", type=int, default=40)
    parser.add_argument("--sample", type=int, default=1_000, help="viewers timed and scored")
    parser.add_argument("--with-store", action="store_true", help="also time FeedService.compute")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))

    world = simulate(args.videos, args.viewers, args.actions_per_viewer, seed=1)
    weights = ActionWeights()
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    latest = max(a.timestamp for a in split.train)
    data = training_data(world.videos, split.train, weights, now=latest)
    print(
        f"simulated {len(world.videos):,} videos, {len(world.users):,} viewers, "
        f"{len(world.actions):,} actions; training on {len(split.train):,}"
    )
    t = time.perf_counter()
    model = HybridRecommender().fit(data)
    print(f"fit the hybrid in {time.perf_counter() - t:.2f}s")
    t = time.perf_counter()
    quick = QuickRecommender(model)
    print(f"built the fast path's index in {(time.perf_counter() - t) * 1000:.1f} ms")

    index = data.catalog.index()
    per_user: dict[str, list] = {}
    for a in split.train:
        per_user.setdefault(a.user_id, []).append(a)
    viewers = sorted(split.test)[: args.sample]
    histories: dict[str, History] = {
        u: history_from_actions(per_user.get(u, []), index, weights) for u in viewers
    }

    full_s: list[float] = []
    fast_s: list[float] = []
    lists: dict[str, dict[str, list[str]]] = {"full": {}, "fast": {}}
    for n, u in enumerate(viewers):
        h = histories[u]
        runs = [("full", model.explain), ("fast", quick.explain)]
        for name, explain in runs if n % 2 == 0 else runs[::-1]:
            t = time.perf_counter()
            picks: list[Recommendation] = explain(h, TOP_N)
            elapsed = time.perf_counter() - t
            (full_s if name == "full" else fast_s).append(elapsed)
            lists[name][u] = [str(model.item_ids[p.item]) for p in picks]

    print(f"\nTop-{TOP_N} per viewer, {len(viewers):,} viewers, timed alternately:")
    print(timing_line("full", full_s))
    print(timing_line("fast", fast_s))
    print(f"fast / full mean time: {statistics.fmean(fast_s) / statistics.fmean(full_s):.3f}")

    print(f"\nquality on the held-out actions (@{K}):")
    for name in ("full", "fast"):
        ranked = lists[name]
        recall = [len(set(ranked[u][:K]) & split.test[u]) / len(split.test[u]) for u in viewers]
        hits = [1.0 if set(ranked[u][:K]) & split.test[u] else 0.0 for u in viewers]
        gains = [ndcg(ranked[u], split.test[u], K) for u in viewers]
        print(
            f"{name:<5} recall {statistics.fmean(recall):.4f}  ndcg {statistics.fmean(gains):.4f}"
            f"  hit rate {statistics.fmean(hits):.4f}"
        )
    overlap = [len(set(lists["full"][u][:K]) & set(lists["fast"][u][:K])) / K for u in viewers]
    print(f"share of the full Top-{K} that the fast Top-{K} keeps: {statistics.fmean(overlap):.3f}")

    if args.with_store:
        time_service(world, viewers)


def time_service(world: object, viewers: list[str]) -> None:
    """FeedService.compute on embedded SQLite: the viewer's history read plus either path."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = export_parquet(world, root)  # type: ignore[arg-type]
        recomind = bootstrap(Settings(home=root / "home", train_interval_seconds=0))
        try:
            recomind.importer.videos(files["videos"])
            recomind.importer.actions(files["actions"])
            recomind.trainer.train()
            seconds: dict[FeedCompute, list[float]] = {p: [] for p in FeedCompute}
            for n, u in enumerate(viewers):
                paths = list(FeedCompute) if n % 2 == 0 else list(FeedCompute)[::-1]
                for path in paths:
                    t = time.perf_counter()
                    recomind.feed.compute(u, path)
                    seconds[path].append(time.perf_counter() - t)
        finally:
            recomind.close()
    print("\nFeedService.compute (SQLite history read included):")
    print(timing_line("full", seconds[FeedCompute.FULL]))
    print(timing_line("fast", seconds[FeedCompute.FAST]))
    ratio = statistics.fmean(seconds[FeedCompute.FAST]) / statistics.fmean(
        seconds[FeedCompute.FULL]
    )
    print(f"fast / full mean time: {ratio:.3f}")


if __name__ == "__main__":
    main()
