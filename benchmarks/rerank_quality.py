"""What re-ranking costs and buys on the simulator: hidden-taste score and variety of top-10s,
and the precompute rate with and without it.

    python benchmarks/rerank_quality.py [--videos 1000] [--viewers 300]

For every simulated viewer, the hybrid's own order and the re-ranked list (default
settings, a few tag/creator caps, and without today's hit) are scored against the viewer's
hidden tastes (the simulator's oracle) and counted for distinct tags and creators in the top 10.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from recomind.domain.model import ActionWeights
from recomind.recommenders import embeddings
from recomind.recommenders.data import training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.recommenders.rerank import RerankSettings, candidate_count, rerank_picks
from recomind.services.simulator import simulate

K = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--viewers", type=int, default=300)
    args = parser.parse_args()
    embeddings.configure("off", 0)  # the list order is what is measured, not the text model
    world = simulate(n_videos=args.videos, n_users=args.viewers, actions_per_user=40, seed=3)
    data = training_data(world.videos, world.actions, ActionWeights())
    model = HybridRecommender().fit(data)
    video_at = {v.video_id: i for i, v in enumerate(world.videos)}
    user_at = {u.user_id: i for i, u in enumerate(world.users)}
    histories = data.user_histories()
    start = time.perf_counter()
    for h in histories:  # what precompute did before re-ranking: the model's top 100
        model.explain(h, 100)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    picks = [model.explain(h, candidate_count(100, 0)) for h in histories]
    for u, (h, ps) in enumerate(zip(histories, picks, strict=True)):
        rerank_picks(
            model,
            ps,
            model.item_ids[h.items],
            str(data.user_ids[u]),
            RerankSettings(),
            100,
            data.now,
        )
    reranked = time.perf_counter() - start
    n = len(histories)
    print(
        f"top-100 lists: model only {n / plain:,.0f} viewers/s, with re-ranking "
        f"{n / reranked:,.0f} viewers/s (load average {os.getloadavg()[0]:.1f})"
    )

    def report(name: str, lists: list[list[str]]) -> None:
        taste, tags, creators = [], [], []
        for u, ids in enumerate(lists):
            affinity = world.affinity(user_at[str(data.user_ids[u])])
            videos = [world.videos[video_at[v]] for v in ids]
            taste.append(np.mean([affinity[video_at[v]] for v in ids]))
            tags.append(len({t for v in videos for t in v.tags}))
            creators.append(len({v.creator_id for v in videos}))
        print(
            f"{name:34s} hidden-taste {np.mean(taste):.3f}  distinct tags {np.mean(tags):4.1f}"
            f"  distinct creators {np.mean(creators):4.1f}"
        )

    report("model order", [[str(model.item_ids[p.item]) for p in ps[:K]] for ps in picks])
    variants = [
        (
            f"re-ranked, caps {tag_cap}/tag {creator_cap}/creator",
            dataclasses.replace(RerankSettings(), max_per_tag=tag_cap, max_per_creator=creator_cap),
        )
        for tag_cap, creator_cap in ((4, 2), (3, 2), (5, 3), (0, 2), (0, 0))
    ]
    variants.append(("re-ranked, no today's hit", dataclasses.replace(RerankSettings(), hot_top=0)))
    for name, settings in variants:
        lists = [
            [
                r.video_id
                for r in rerank_picks(
                    model,
                    ps,
                    model.item_ids[h.items],
                    str(data.user_ids[u]),
                    settings,
                    100,
                    data.now,
                )[:K]
            ]
            for u, (h, ps) in enumerate(zip(histories, picks, strict=True))
        ]
        report(name, lists)
    rng = np.random.default_rng(0)
    ids = [v.video_id for v in world.videos]
    report("random", [list(rng.choice(ids, K, replace=False)) for _ in histories])


if __name__ == "__main__":
    main()
