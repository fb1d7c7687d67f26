"""Cold-start scorers learned from synthetic cold cuts, on the VALIDATION split only.

    python benchmarks/cold_cuts_validation.py FOLDER [--seeds 30] [--pool 300] [--folds 5]
        [--combos 'name=feature:weight,...;...'] [--lightgbm] [--dump cuts.json]

The splits are `cold_start_validation.py`'s: the test split is carved as `recomind evaluate`
carves it and never used again; the validation split is carved out of its training part; each
seed cuts a seeded 10% of the validation viewers to their first 1-3 actions
(`evaluation.cold_start_split`). Those cuts are scored by NDCG@10 over the `--pool` most
popular videos (the popularity baseline's own top 10 is always in it).

What is learned, and from what: every other viewer with more than 4 actions in the cut data is
cut again, to their first 1, 2 and 3 actions, labelled with the videos they engaged with in
their latest 20% (about 2,460 groups a seed on ML-100K, against the ~200 cold groups of the
hybrid's cold ranker). The features of a training viewer come from statistics of the *other*
folds' viewers (`--folds`, counts scaled back to the whole log): leaving only the viewer's own
actions out of each count (leave-one-out) leaks the label, because the same video then shows a
slightly lower count in exactly the groups where it is a positive, and a tree model learns to
read that (held-out training groups of seed 0 scored 11x popularity that way, the validation
cuts of seeds 0-9 0.94x).
The cuts being scored use statistics of everyone in the cut data, as a served model would.

Scorers, each compared with popularity on the same cuts (ratio of mean NDCG@10, the standard
error of the per-cut difference as a share of popularity's mean, and seeds split in halves):
`--combos` fixed weighted sums of any of `CutStatistics.features`' columns (log features make
them weighted products);
`linear`: weights of --linear-features fitted by coordinate search on the training groups'
NDCG@10 (the first feature held at 1); `lightgbm`: LambdaRank on --lgb-features.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from tune_baselines import add_cold_target, load  # type: ignore[import-not-found]  # benchmarks/ is on the path

from recomind.domain.model import ActionWeights
from recomind.recommenders.data import TrainingData, training_data
from recomind.recommenders.popularity import decayed_engagement
from recomind.services.evaluation import cold_start_split, temporal_split

DAY = 86_400.0
POPULARITY_HALF_LIFE_HOURS = 1e9  # what `evaluate` tunes popularity to on ML-100K
# as StartTransitions: a start is a viewer's first 3 actions, an end their latest 20%
EARLY, LATE_SHARE = 3, 0.2
TRANSITION_SHRINK, CO_SHRINK, COHORT_SHRINK = 100.0, 20.0, 20.0
DISCOUNTS = 1.0 / np.log2(np.arange(2, 12))
DEFAULT_COMBOS = (
    "transitions=log_popularity:1,log_transitions:1;"
    "transitions x ratings=log_ratings:1,log_transitions:1;"
    "transitions x engaged=log_engaged:1,log_transitions:1;"
    "transitions - like rate=log_popularity:1,log_transitions:1,like_rate:-1"
)
LINEAR = "log_popularity,log_transitions,like_rate,release_age,log_cooccurrence,log_late"
LGB = (
    "log_popularity,log_transitions,like_rate,release_age,log_cooccurrence,log_late,"
    "log_recent_30d,age_days,viewer_time,n_seeds,seed_popularity,tag_match"
)


class CutStatistics:
    """What the cold features are computed from: counts over one set of viewers' actions,
    scaled by `scale` so that a fold's counts are on the whole log's footing."""

    def __init__(self, data: TrainingData, years: np.ndarray, scale: float = 1.0) -> None:
        n = data.n_items
        self.scale, self.years = scale, years
        order = np.lexsort((data.timestamps, data.users))
        users, items = data.users[order], data.items[order]
        bounds = np.searchsorted(users, np.arange(data.n_users + 1))
        counts = np.diff(bounds)[users]
        position = np.arange(len(order)) - bounds[users]
        engaged = data.engagement()[order]
        long = counts > EARLY + 1
        early = long & (position < EARLY)
        late = long & (position >= counts - np.maximum(1, np.round(counts * LATE_SHARE))) & engaged
        starts = _binary(users[early], items[early], data.n_users, n)
        self.ends = _binary(users[late], items[late], data.n_users, n)
        self.transitions = (starts.T @ self.ends).tocsr() * scale
        self.starters = np.asarray(starts.sum(axis=0)).ravel() * scale
        ending = np.diff(self.ends.indptr) > 0
        self.late = np.asarray(self.ends.sum(axis=0)).ravel() / max(int(ending.sum()), 1)
        first = np.full(data.n_users, np.inf)
        np.minimum.at(first, data.users, data.timestamps)
        self.ending_first = np.where(ending, first, np.inf)  # start time of each ending viewer
        positive = _binary(users[engaged], items[engaged], data.n_users, n)
        self.cooccurrence = (positive.T @ positive).tocsr() * scale
        self.engagers = np.asarray(positive.sum(axis=0)).ravel() * scale
        self.engaging_viewers = max(int(np.count_nonzero(np.diff(positive.indptr))), 1) * scale
        # as the tuned popularity baseline scores (all-time on ML-100K), so ties fall alike
        self.popularity = decayed_engagement(data, POPULARITY_HALF_LIFE_HOURS) * scale
        self.engaged = np.bincount(items[engaged], minlength=n) * scale
        self.likes = np.bincount(data.items[data.actions == 1], minlength=n).astype(np.float64)
        self.total = np.bincount(data.items, minlength=n).astype(np.float64)
        self.first_seen = np.full(n, np.inf)
        np.minimum.at(self.first_seen, data.items, data.timestamps)
        # engaged actions as sorted keys video * 1e10 + seconds: a window's count per video
        # is two searchsorted calls (as features.ItemStats.recent)
        kept = data.engagement()
        self.keys = np.sort(
            data.items[kept].astype(np.int64) * 10**10 + data.timestamps[kept].astype(np.int64)
        )
        self.tags = _tag_matrix(data)
        self.now = data.now

    def features(
        self, seeds: np.ndarray, weights: np.ndarray, times: np.ndarray, items: np.ndarray
    ) -> dict[str, np.ndarray]:
        """One column per feature for candidate `items` of a viewer whose only actions are
        `seeds` (with their signed weights and times)."""
        k, c = len(seeds), items
        shares = 1.0 / (self.starters[seeds] + TRANSITION_SHRINK)
        moves = np.asarray(self.transitions[seeds].multiply(shares[:, None]).sum(axis=0)).ravel()
        chance = (moves + self.late * TRANSITION_SHRINK * shares.sum()) / k
        prior = self.engagers / self.engaging_viewers
        rows = self.cooccurrence[seeds].toarray()
        own = rows[np.arange(k), seeds]
        co = ((rows + CO_SHRINK * prior) / (own[:, None] + CO_SHRINK)).mean(axis=0)
        at, start = float(times.max()), float(times.min())
        cohort = np.abs(self.ending_first - start) <= 15 * DAY
        cohort_late = (np.asarray(self.ends[cohort].sum(axis=0)).ravel() * self.scale) + (
            COHORT_SHRINK * self.late
        )
        cohort_late /= float(cohort.sum()) * self.scale + COHORT_SHRINK
        profile = np.asarray(self.tags[seeds].sum(axis=0)).ravel()
        tag_match = np.asarray(self.tags[c] @ profile).ravel() / k
        base = c.astype(np.int64) * 10**10
        recent = np.searchsorted(self.keys, base + int(at), side="right") - np.searchsorted(
            self.keys, base + int(at - 30 * DAY), side="right"
        )
        log_popularity = np.log(np.maximum(self.popularity, 0.5))
        year = 1970 + at / (365.25 * DAY)
        return {
            "log_popularity": log_popularity[c],
            "log_ratings": np.log1p(self.total[c] * self.scale),
            "log_engaged": np.log1p(self.engaged[c]),
            "like_rate": (self.likes[c] + 0.5) / (self.total[c] + 1.0),
            "log_late": np.log(self.late[c] + 1e-5),
            "log_transitions": np.log(chance[c] + 1e-7),
            "log_cooccurrence": np.log(co[c] + 1e-7),
            "log_cohort_late": np.log(cohort_late[c] + 1e-5),
            "tag_match": tag_match,
            "age_days": (at - self.first_seen[c]) / DAY,
            "release_age": year - self.years[c],
            "log_recent_30d": np.log1p(recent * self.scale),
            "viewer_time": np.full(len(c), (at - self.now) / DAY),
            "n_seeds": np.full(len(c), float(k)),
            "seed_popularity": np.full(len(c), float(log_popularity[seeds].mean())),
            "seed_liked": np.full(len(c), float(np.mean(weights > 1))),
        }


def _binary(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n_rows, n_columns))
    matrix.data[:] = 1.0
    return matrix


def _tag_matrix(data: TrainingData) -> sp.csr_matrix:
    """Videos x tags, each row of unit length."""
    vocabulary: dict[str, int] = {}
    pairs = [
        (i, vocabulary.setdefault(t, len(vocabulary)))
        for i, tags in enumerate(data.catalog.tags)
        for t in tags
    ]
    rows, columns = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    tags = sp.csr_matrix(
        (np.ones(len(rows)), (rows, columns)), shape=(data.n_items, max(len(vocabulary), 1))
    )
    norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-9)) @ tags).tocsr()


def _release_years(titles: list[str] | tuple[str, ...]) -> np.ndarray:
    """The "(1995)" at the end of a MovieLens title; the median where there is none."""
    found = [re.search(r"\((\d{4})\)\s*$", t or "") for t in titles]
    years = np.array([float(m.group(1)) if m else np.nan for m in found])
    return np.where(np.isnan(years), np.nanmedian(years), years)


class Groups:
    """Feature rows of many viewers over their candidates, padded to one width."""

    def __init__(
        self,
        rows: list[dict[str, np.ndarray]],
        labels: list[np.ndarray],
        candidates: list[np.ndarray],
        relevant: list[int],
    ) -> None:
        self.names = list(rows[0])
        width = max(len(c) for c in candidates)
        self.mask = np.zeros((len(rows), width), dtype=bool)
        self.features = np.zeros((len(rows), width, len(self.names)))
        self.labels = np.zeros((len(rows), width))
        self.items = np.full((len(rows), width), -1, np.int64)
        for g, (row, label, items) in enumerate(zip(rows, labels, candidates, strict=True)):
            n = len(items)
            self.mask[g, :n] = True
            self.features[g, :n] = np.column_stack([row[name] for name in self.names])
            self.labels[g, :n] = label
            self.items[g, :n] = items
        self.relevant = np.array(relevant)

    def column(self, name: str) -> np.ndarray:
        return self.features[..., self.names.index(name)]

    def flat(self, names: list[str]) -> np.ndarray:
        return self.features[self.mask][:, [self.names.index(n) for n in names]]

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        """NDCG@10 per group, ties broken by the lower video index (as `top_k` does)."""
        scores = np.where(self.mask, scores - 1e-9 * self.items / max(self.items.max(), 1), -np.inf)
        top = np.argpartition(-scores, 9, axis=1)[:, :10]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        dcg = (np.take_along_axis(self.labels, top, 1) * DISCOUNTS).sum(1)
        ideal = np.concatenate([[0.0], np.cumsum(DISCOUNTS)])[np.minimum(self.relevant, 10)]
        return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def linear_weights(groups: Groups, names: list[str]) -> np.ndarray:
    """Weights (standardised features, the first held at 1) by coordinate search on the
    groups' mean NDCG@10; two passes over a fixed grid."""
    x = groups.features[..., [groups.names.index(n) for n in names]]
    mean, spread = x[groups.mask].mean(0), x[groups.mask].std(0) + 1e-9
    x = (x - mean) / spread
    w = np.zeros(len(names))
    w[0] = 1.0
    best = groups.ndcg(x @ w).mean()
    for _ in range(2):
        for f in range(1, len(names)):
            for value in (-1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0):
                trial = w.copy()
                trial[f] = value
                score = groups.ndcg(x @ trial).mean()
                if score > best + 1e-6:
                    best, w = score, trial
    return w / spread  # on the raw features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    add_cold_target(parser)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--combos", default=DEFAULT_COMBOS)
    parser.add_argument("--linear-features", default=LINEAR)
    parser.add_argument("--lightgbm", action="store_true")
    parser.add_argument("--lgb-features", default=LGB)
    parser.add_argument("--dump", type=Path, help="write every cut's NDCG per scorer (JSON)")
    args = parser.parse_args()
    combos = {
        name: [(t.split(":")[0], float(t.split(":")[1])) for t in body.split(",")]
        for name, body in (c.split("=", 1) for c in args.combos.split(";") if c)
    }
    weights = ActionWeights()
    videos, actions = load(args.folder)
    durations = {v.video_id: v.duration_ms for v in videos}
    split = temporal_split(actions, 0.2, durations)
    validation = temporal_split(split.train, 0.2, durations)  # split.test is never used
    gains: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        start = time.perf_counter()
        cold = cold_start_split(validation, 0.1, seed, durations)
        train, cut = cold.train, cold.scored_on(args.target)
        data = training_data(videos, train, weights, now=max(a.timestamp for a in train))
        years = _release_years(data.catalog.titles)
        everyone = CutStatistics(data, years)
        pool = np.argsort(-everyone.popularity, kind="stable")[: args.pool]
        fold = np.random.default_rng([seed, 1]).integers(0, args.folds, data.n_users)
        folds = [
            CutStatistics(
                data.subset((fold != f)[data.users]), years, data.n_users / np.sum(fold != f)
            )
            for f in range(args.folds)
        ]
        order = np.lexsort((data.timestamps, data.users))
        bounds = np.searchsorted(data.users[order], np.arange(data.n_users + 1))
        items, stamps = data.items[order], data.timestamps[order]
        signed, engaged = data.weights[order], data.engagement()[order]
        rows, labels, candidates, relevant = [], [], [], []
        for u in range(data.n_users):
            a, b = int(bounds[u]), int(bounds[u + 1])
            if b - a <= EARLY + 1:
                continue
            tail = slice(b - max(1, round((b - a) * LATE_SHARE)), b)
            ends = items[tail][engaged[tail]]
            for k in (1, 2, 3):
                seeds = items[a : a + k]
                liked = np.setdiff1d(ends, seeds)
                shown = np.setdiff1d(pool, seeds)
                label = np.isin(shown, liked).astype(np.float32)
                if not label.any():
                    continue
                rows.append(
                    folds[fold[u]].features(seeds, signed[a : a + k], stamps[a : a + k], shown)
                )
                labels.append(label)
                candidates.append(shown)
                relevant.append(int(label.sum()))
        training = Groups(rows, labels, candidates, relevant)
        index = data.catalog.index()
        users = sorted(cut.test)
        user_index = {str(u): i for i, u in enumerate(data.user_ids)}
        rows, labels, candidates, relevant = [], [], [], []
        for user in users:
            u = user_index[user]
            a, b = int(bounds[u]), int(bounds[u + 1])
            shown = np.setdiff1d(pool, items[a:b])
            rows.append(everyone.features(items[a:b], signed[a:b], stamps[a:b], shown))
            labels.append(np.isin(shown, [index[v] for v in cut.test[user]]).astype(np.float32))
            candidates.append(shown)
            relevant.append(len(cut.test[user]))
        cuts = Groups(rows, labels, candidates, relevant)

        def score(name: str, values: np.ndarray, groups: Groups = cuts) -> None:
            gains.setdefault(name, []).extend(groups.ndcg(values).tolist())

        score("popularity", cuts.column("log_popularity"))
        for name, terms in combos.items():
            score(name, sum(w * cuts.column(f) for f, w in terms))
        linear = args.linear_features.split(",")
        w = linear_weights(training, linear)
        score("linear (learned on cuts)", sum(w[i] * cuts.column(f) for i, f in enumerate(linear)))
        note = f"linear weights {dict(zip(linear, np.round(w, 3).tolist(), strict=True))}"
        if args.lightgbm:
            names = args.lgb_features.split(",")
            params = {
                "objective": "lambdarank",
                "metric": "ndcg",
                "eval_at": [10],
                "learning_rate": 0.05,
                "num_leaves": 7,
                "min_data_in_leaf": 2000,
                "bagging_fraction": 0.8,
                "bagging_freq": 1,
                "lambda_l2": 1.0,
                "num_threads": 1,
                "seed": 0,
                "deterministic": True,
                "force_row_wise": True,
                "verbosity": -1,
            }
            booster = lgb.train(
                params,
                lgb.Dataset(
                    training.flat(names), training.labels[training.mask], group=training.mask.sum(1)
                ),
                num_boost_round=150,
            )
            predicted = np.zeros(cuts.mask.shape)
            predicted[cuts.mask] = booster.predict(cuts.flat(names), num_threads=1)
            score("lightgbm (learned on cuts)", predicted)
        print(
            f"seed {seed}: {len(training.relevant)} training groups, "
            f"{time.perf_counter() - start:.0f}s, {note}",
            flush=True,
        )
    if args.dump:
        args.dump.write_text(json.dumps(gains))
    base = np.array(gains["popularity"])
    half = len(base) // 2  # every seed cuts the same number of viewers: seeds in halves
    print(
        f"validation cold_start NDCG@10, {args.seeds} seeds, {len(base)} cuts, "
        f"popularity {base.mean():.4f}"
    )
    for name, values in gains.items():
        v = np.array(values)
        se = (v - base).std() / np.sqrt(len(v)) / base.mean()
        print(
            f"{name:34s} {v.mean():.4f} /popularity {v.mean() / base.mean():.3f} "
            f"(paired se {se:.3f}) halves {v[:half].mean() / base[:half].mean():.3f} "
            f"{v[half:].mean() / base[half:].mean():.3f}"
        )


if __name__ == "__main__":
    main()
