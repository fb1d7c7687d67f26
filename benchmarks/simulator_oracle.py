"""How close each model gets to the simulator's hidden-taste oracle.

    python benchmarks/simulator_oracle.py [--videos 2000 --viewers 3000 --actions-per-viewer 40]

The simulator knows what every viewer would enjoy (its hidden tastes), so besides the held-out
metrics of `recomind evaluate` it can say how good a list is against the truth. The same
temporal per-viewer split as `recomind evaluate`; for every held-out viewer each model's top K
(unseen videos only) is compared with the oracle's top K by hidden affinity:

- closeness: where the list's mean hidden affinity sits between a random pick of unseen
  videos (0) and the oracle's own top K (1);
- NDCG@K on the held-out actions (every model with its default settings, untuned),
  beside the oracle's NDCG@K on the same held-out actions
  (the oracle ranks by taste; it knows nothing of what the viewer happened to be shown).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from recomind.domain.model import ActionWeights  # noqa: E402
from recomind.recommenders.data import history_from_actions, training_data  # noqa: E402
from recomind.services import tuning  # noqa: E402
from recomind.services.evaluation import MODELS, ndcg, temporal_split  # noqa: E402
from recomind.services.simulator import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--viewers", type=int, default=3000)
    parser.add_argument("--actions-per-viewer", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    k = args.k

    world = simulate(args.videos, args.viewers, args.actions_per_viewer, seed=args.seed)
    weights = ActionWeights()
    durations = {v.video_id: v.duration_ms for v in world.videos}
    split = temporal_split(world.actions, 0.2, durations)
    latest = max(a.timestamp for a in split.train)
    data = training_data(world.videos, split.train, weights, now=latest)
    index = data.catalog.index()
    row = {v.video_id: i for i, v in enumerate(world.videos)}  # world arrays are by video order
    user_row = {u.user_id: i for i, u in enumerate(world.users)}
    per_user: dict[str, list] = {}
    for a in split.train:
        per_user.setdefault(a.user_id, []).append(a)
    viewers = sorted(split.test)
    histories = {u: history_from_actions(per_user.get(u, []), index, weights) for u in viewers}

    # The oracle's view of each held-out viewer: hidden affinity per catalog index, unseen mask.
    to_world = np.array([row[str(v)] for v in data.catalog.item_ids])
    affinity = {u: world.affinity(user_row[u])[to_world] for u in viewers}
    unseen = {}
    for u in viewers:
        mask = np.ones(data.n_items, bool)
        mask[histories[u].items] = False
        unseen[u] = mask

    def closeness(u: str, picks: np.ndarray) -> float:
        aff = affinity[u][unseen[u]]
        oracle = np.sort(aff)[::-1][:k].mean()
        return float((affinity[u][picks].mean() - aff.mean()) / (oracle - aff.mean()))

    def oracle_list(u: str) -> np.ndarray:
        scores = np.where(unseen[u], affinity[u], -np.inf)
        return np.argsort(-scores, kind="stable")[:k]

    ids = data.catalog.item_ids
    rows = []
    oracle_ndcg = np.mean(
        [ndcg([str(ids[i]) for i in oracle_list(u)], split.test[u], k) for u in viewers]
    )
    rows.append(("oracle (hidden tastes)", 0.0, float(oracle_ndcg), 1.0))
    for name in args.models.split(","):
        started = time.perf_counter()
        factory = tuning.hybrid() if name == "hybrid" else tuning.baseline(name)
        model = factory().fit(data)  # default settings: no tuning here
        fit_s = time.perf_counter() - started
        gains, close = [], []
        for u in viewers:
            picks = np.array([i for i, _ in model.recommend(histories[u], k)], dtype=np.int64)
            gains.append(ndcg([str(ids[i]) for i in picks], split.test[u], k))
            close.append(closeness(u, picks))
        rows.append((name, fit_s, float(np.mean(gains)), float(np.mean(close))))

    print(
        f"$ python benchmarks/simulator_oracle.py --videos {args.videos} --viewers {args.viewers} "
        f"--actions-per-viewer {args.actions_per_viewer} --seed {args.seed} -k {k}"
    )
    print(f"{len(world.actions):,} actions, {len(viewers):,} held-out viewers")
    print(f"| model | fit s | NDCG@{k} | NDCG / oracle NDCG | closeness to oracle |")
    print("|---|---|---|---|---|")
    for name, fit_s, gain, close in rows:
        print(f"| {name} | {fit_s:.2f} | {gain:.4f} | {gain / oracle_ndcg:.2f} | {close:.3f} |")


if __name__ == "__main__":
    main()
