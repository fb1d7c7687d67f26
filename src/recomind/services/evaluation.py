"""`recomind evaluate`: offline quality on a temporal per-viewer hold-out, every model side by side.

Protocol (docs/evaluation.md):

- **Test split.** For every viewer, the latest `holdout` share of their actions (at least
  one) is held out; models fit on everything else. A held-out video is relevant when the
  viewer engaged with it (liked it, or watched at least half of it; a view of unknown length
  counts). Each model ranks the catalog for each viewer, leaving out what the viewer saw in
  training, and is scored on Recall@K, NDCG@K, HitRate@K, catalog coverage and novelty
  (mean self-information, -log2 of the share of training viewers who touched the video).
- **Tuning.** Each baseline tries the same number of configurations (`tuning.GRIDS`), each
  fitted on a validation split carved the same way out of the training part and scored
  there by NDCG@K; the winner is refitted on the whole training part and scored once on
  test. The test split is never looked at while tuning. The hybrid's sources take the
  tuned parameters of the baseline of the same family; its ranker is not tuned.
- **Segments.** "all" (every test viewer) and "cold" (test viewers with at most 3 training
  actions). Because a data set may have no cold viewers at all (every MovieLens viewer has
  at least 20 ratings), a **cold-start protocol** also runs: a seeded `cold_share` of the
  test viewers keep only their first k = 1-3 training actions, the rest of their history
  is removed, and every model is refitted without it. Those viewers are scored as the "cold"
  segment would score them: on their action k + 1, when they engaged with it (segment
  "cold_start"; ADR 0007), and, as before that ADR, on their unchanged test items
  ("cold_start_late").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recomind.domain.model import ActionWeights, Video, VideoAction
from recomind.recommenders.base import Recommender
from recomind.recommenders.data import History, history_from_actions, is_engaged, training_data
from recomind.recommenders.hybrid import HybridRecommender
from recomind.services import tuning

COLD_MAX_ACTIONS = 3
MODELS = ("hybrid", *tuning.BASELINES)
Factory = Callable[[], Recommender]


@dataclass(frozen=True)
class Split:
    train: list[VideoAction]
    test: dict[str, set[str]]  # viewer -> relevant held-out videos


@dataclass(frozen=True)
class ModelScore:
    model: str
    segment: str
    users: int
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    novelty: float = 0.0


@dataclass(frozen=True)
class Tuned:
    model: str
    params: dict[str, Any]
    validation_ndcg: float
    tried: int


@dataclass
class Evaluation:
    k: int
    holdout: float
    cold_share: float
    scores: list[ModelScore]
    tuned: list[Tuned] = field(default_factory=list)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    cold_seeds: int = 1
    # NDCG per model in each repetition of the cold-start protocol (their pool is `cold_start`)
    cold_start_runs: list[dict[str, float]] = field(default_factory=list)

    def get(self, model: str, segment: str) -> ModelScore | None:
        return next((s for s in self.scores if s.model == model and s.segment == segment), None)

    def ratios(self) -> dict[str, float]:
        """The hybrid's NDCG against the best baseline ("all") and popularity (the cold
        segments)."""
        out: dict[str, float] = {}
        hybrid = self.get("hybrid", "all")
        rivals = [s for s in self.scores if s.segment == "all" and s.model in tuning.BASELINES]
        if hybrid and rivals:
            best = max(rivals, key=lambda s: s.ndcg)
            if best.ndcg > 0:
                out[f"hybrid/best_baseline[{best.model}] all"] = hybrid.ndcg / best.ndcg
        for segment in ("cold", "cold_start", "cold_start_late"):
            h, p = self.get("hybrid", segment), self.get("popularity", segment)
            if h and p and p.users and p.ndcg > 0:
                out[f"hybrid/popularity {segment}"] = h.ndcg / p.ndcg
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "holdout": self.holdout,
            "cold_share": self.cold_share,
            "cold_seeds": self.cold_seeds,
            "cold_start_runs": self.cold_start_runs,
            "tuned": [asdict(t) for t in self.tuned],
            "results": [asdict(s) for s in self.scores],
            "ratios": self.ratios(),
            "fit_seconds": self.fit_seconds,
        }


def temporal_split(
    actions: Sequence[VideoAction],
    holdout: float = 0.2,
    durations: dict[str, int | None] | None = None,
) -> Split:
    by_user: dict[str, list[VideoAction]] = {}
    for a in actions:
        by_user.setdefault(a.user_id, []).append(a)
    durations = durations or {}
    train: list[VideoAction] = []
    test: dict[str, set[str]] = {}
    for user, acts in by_user.items():
        acts.sort(key=lambda a: (a.timestamp, a.id))
        if len(acts) < 2:
            train.extend(acts)
            continue
        cut = len(acts) - max(1, round(len(acts) * holdout))
        train.extend(acts[:cut])
        seen = {a.video_id for a in acts[:cut]}
        relevant = {
            a.video_id for a in acts[cut:] if is_engaged(a, durations.get(a.video_id))
        } - seen
        if relevant:
            test[user] = relevant
    return Split(train, test)


@dataclass(frozen=True)
class ColdCut:
    """One run of the cold-start protocol: the training actions with the chosen viewers cut to
    their first 1-3 actions, and two ways to score those viewers."""

    train: list[VideoAction]
    # segment "cold_start": each cut viewer's next action after the ones kept, when engaged:
    # exactly what the temporal split holds out for a viewer with 1-3 training actions
    next: dict[str, set[str]]
    # segment "cold_start_late": each cut viewer's unchanged test items, the latest 20% of
    # their whole history (the protocol's only target before ADR 0007)
    late: dict[str, set[str]]

    def scored_on(self, target: str) -> Split:
        """The cut as a split whose test part is `target`: "next" or "late"."""
        return Split(self.train, {"next": self.next, "late": self.late}[target])


def cold_start_split(
    split: Split,
    share: float,
    seed: int = 0,
    durations: dict[str, int | None] | None = None,
) -> ColdCut:
    """A seeded `share` of the test viewers (those with more than 3 training actions) keep
    only their first k = 1-3 training actions and lose the rest of their history. They are
    scored on their action k + 1 (`next`, when they engaged with it) and on their unchanged
    test items (`late`)."""
    by_user: dict[str, list[VideoAction]] = {}
    for a in split.train:
        by_user.setdefault(a.user_id, []).append(a)
    eligible = sorted(u for u in split.test if len(by_user.get(u, [])) > COLD_MAX_ACTIONS)
    rng = np.random.default_rng(seed)
    count = round(share * len(eligible))
    chosen = set(rng.choice(eligible, count, replace=False).tolist()) if count else set()
    durations = durations or {}
    train: list[VideoAction] = []
    following: dict[str, set[str]] = {}
    for user, acts in by_user.items():
        if user in chosen:
            acts.sort(key=lambda a: (a.timestamp, a.id))
            kept = int(rng.integers(1, COLD_MAX_ACTIONS + 1))
            after = acts[kept]
            if is_engaged(after, durations.get(after.video_id)) and after.video_id not in {
                a.video_id for a in acts[:kept]
            }:
                following[user] = {after.video_id}
            acts = acts[:kept]
        train.extend(acts)
    late = {u: split.test[u] for u in sorted(chosen)}
    return ColdCut(train, {u: following[u] for u in sorted(following)}, late)


def ndcg(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, v in enumerate(ranked[:k]) if v in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def score_models(
    videos: Sequence[Video],
    train: Sequence[VideoAction],
    segments: Mapping[str, dict[str, set[str]]],
    weights: ActionWeights,
    k: int,
    factories: Mapping[str, Factory],
    fit_seconds: dict[str, float] | None = None,
) -> list[ModelScore]:
    """Fit each model on `train`, rank for every viewer of every segment, and score."""
    # The models see the data as of its last training action, not the wall clock: time-decayed
    # scores of an old log would otherwise all decay to zero.
    latest = max((a.timestamp for a in train), default=None)
    data = training_data(videos, train, weights, now=latest)
    index = data.catalog.index()
    per_user: dict[str, list[VideoAction]] = {}
    for a in train:
        per_user.setdefault(a.user_id, []).append(a)
    users = sorted({u for test in segments.values() for u in test})
    histories: dict[str, History] = {
        u: history_from_actions(
            sorted(per_user.get(u, []), key=lambda a: a.timestamp), index, weights
        )
        for u in users
    }
    # self-information of each video: -log2(share of training viewers who touched it)
    touched = np.zeros(data.n_items)
    pairs = np.unique(np.stack([data.users, data.items]), axis=1) if len(data.users) else None
    if pairs is not None:
        touched = np.bincount(pairs[1], minlength=data.n_items).astype(np.float64)
    info = -np.log2(np.maximum(touched, 1.0) / max(data.n_users, 1))
    results = []
    for name, factory in factories.items():
        start = time.perf_counter()
        model = factory().fit(data)
        if fit_seconds is not None:
            fit_seconds[name] = round(time.perf_counter() - start, 2)
        if isinstance(model, HybridRecommender):
            lists = model.explain_many([histories[u] for u in users], k)
            picks = {u: [r.item for r in recs] for u, recs in zip(users, lists, strict=True)}
        else:
            picks = {u: [i for i, _ in model.recommend(histories[u], k)] for u in users}
        ranked = {u: [str(data.catalog.item_ids[i]) for i in p] for u, p in picks.items()}
        for segment, test in segments.items():
            results.append(_score(name, segment, test, ranked, picks, info, k, data.n_items))
    return results


def _score(
    name: str,
    segment: str,
    test: dict[str, set[str]],
    ranked: dict[str, list[str]],
    picks: dict[str, list[int]],
    info: np.ndarray,
    k: int,
    n_items: int,
) -> ModelScore:
    users = list(test)
    if not users:
        return ModelScore(name, segment, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    recall = [len(set(ranked[u][:k]) & test[u]) / len(test[u]) for u in users]
    hits = [1.0 if set(ranked[u][:k]) & test[u] else 0.0 for u in users]
    gains = [ndcg(ranked[u], test[u], k) for u in users]
    novelty = [float(info[picks[u][:k]].mean()) if picks[u] else 0.0 for u in users]
    shown = {v for u in users for v in ranked[u][:k]}
    return ModelScore(
        model=name,
        segment=segment,
        users=len(users),
        recall=float(np.mean(recall)),
        ndcg=float(np.mean(gains)),
        hit_rate=float(np.mean(hits)),
        coverage=len(shown) / n_items if n_items else 0.0,
        novelty=float(np.mean(novelty)),
    )


def tune(
    videos: Sequence[Video],
    train: Sequence[VideoAction],
    weights: ActionWeights,
    k: int = 10,
    holdout: float = 0.2,
    models: Sequence[str] = tuple(tuning.BASELINES),
    progress: Callable[[str], None] | None = None,
) -> list[Tuned]:
    """The best configuration of each baseline by NDCG@k on a validation split of `train`."""
    durations = {v.video_id: v.duration_ms for v in videos}
    validation = temporal_split(train, holdout, durations)
    tuned = []
    for name in models:
        best: tuple[float, dict[str, Any]] | None = None
        for params in tuning.GRIDS[name]:
            if progress:
                progress(f"tuning {name} {tuning.label(params)}")
            factory = {name: tuning.baseline(name, params)}
            (score,) = score_models(
                videos, validation.train, {"all": validation.test}, weights, k, factory
            )
            if best is None or score.ndcg > best[0]:
                best = (score.ndcg, params)
        assert best is not None
        tuned.append(Tuned(name, best[1], best[0], len(tuning.GRIDS[name])))
    return tuned


def evaluate(
    videos: Sequence[Video],
    actions: Sequence[VideoAction],
    weights: ActionWeights,
    k: int = 10,
    holdout: float = 0.2,
    models: Sequence[str] = MODELS,
    factories: Mapping[str, Factory] | None = None,
    tune_baselines: bool = False,
    cold_share: float = 0.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    cold_seeds: int = 1,
) -> Evaluation:
    """Every model on the test split (and the cold-start protocol when `cold_share` > 0,
    repeated with seeds `seed`, `seed + 1`, ... `cold_seeds` times and pooled).

    `factories` (name -> model) replaces the named `models` when given.
    """
    say = progress or (lambda _msg: None)
    durations = {v.video_id: v.duration_ms for v in videos}
    split = temporal_split(actions, holdout, durations)
    tuned: list[Tuned] = []
    if factories is None:
        baselines = [m for m in models if m in tuning.BASELINES]
        if tune_baselines:
            tuned = tune(videos, split.train, weights, k, holdout, baselines, say)
        params = {t.model: t.params for t in tuned}
        chosen: dict[str, Factory] = {}
        for name in models:
            if name == "hybrid":
                chosen[name] = tuning.hybrid(params)
            else:
                chosen[name] = tuning.baseline(name, params.get(name))
    else:
        chosen = dict(factories)
    per_user: dict[str, int] = {}
    for a in split.train:
        per_user[a.user_id] = per_user.get(a.user_id, 0) + 1
    cold = {u: r for u, r in split.test.items() if per_user.get(u, 0) <= COLD_MAX_ACTIONS}
    fit_seconds: dict[str, float] = {}
    say("fitting every model on the training split")
    scores = score_models(
        videos, split.train, {"all": split.test, "cold": cold}, weights, k, chosen, fit_seconds
    )
    runs: list[list[ModelScore]] = []
    for run in range(cold_seeds if cold_share > 0 else 0):
        say(f"cold-start protocol (seed {seed + run}): refitting without the cut viewers' history")
        cut = cold_start_split(split, cold_share, seed + run, durations)
        segments = {"cold_start": cut.next, "cold_start_late": cut.late}
        runs.append(score_models(videos, cut.train, segments, weights, k, chosen))
    scores += pool_runs(runs)
    result = Evaluation(k, holdout, cold_share, scores, tuned, fit_seconds, cold_seeds)
    result.cold_start_runs = [
        {s.model: s.ndcg for s in r if s.segment == "cold_start"} for r in runs
    ]
    return result


def pool_runs(runs: Sequence[Sequence[ModelScore]]) -> list[ModelScore]:
    """One score per model and segment over repeated runs: every (run, viewer) pair counts
    once in the means; coverage is the mean of the runs' coverages."""
    if not runs:
        return []
    pooled = []
    for first in runs[0]:
        same = [s for r in runs for s in r if (s.model, s.segment) == (first.model, first.segment)]
        users = sum(s.users for s in same)

        def mean(field: str, same: list[ModelScore] = same, users: int = users) -> float:
            total = sum(getattr(s, field) * s.users for s in same)
            return float(total / users) if users else 0.0

        pooled.append(
            ModelScore(
                model=first.model,
                segment=first.segment,
                users=users,
                recall=mean("recall"),
                ndcg=mean("ndcg"),
                hit_rate=mean("hit_rate"),
                coverage=float(np.mean([s.coverage for s in same])),
                novelty=mean("novelty"),
            )
        )
    return pooled
