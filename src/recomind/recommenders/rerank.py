"""Re-ranking: what happens to a ranked candidate list before a viewer sees it.

`rerank(candidates, context, settings)` applies, in this order:

1. filters: drop what the viewer has seen, blocked videos, videos with a blocked tag
   (and repeats of a video);
2. freshness: add `freshness_boost x best score x 2^(-age / half-life)` to young
   videos, then re-sort;
3. today's hit: the hottest of the `hot_top` most popular videos (the model's time-decayed
   popularity, refitted every hour) that the viewer's own list holds within its first
   `hot_depth` places moves up to place `hot_position`, so what viewers pile onto today
   reaches a returning viewer's first page when it fits their tastes at all;
4. diversity: walk down the list and, at each position, take the best of the next
   3 x `diversity_window` remaining videos that keeps every window of
   `diversity_window` consecutive items within `max_per_tag` videos per tag and
   `max_per_creator` per creator (when none fits, the best remaining is taken anyway);
5. exploration: slots at positions 3, 3 + 1/share, 3 + 2/share, … go to new videos
   (younger than `new_video_hours`) picked by Beta-Bernoulli Thompson sampling on
   their observed likes (successes) and skips (failures);
6. editorial pins: the configured videos go to their configured positions.

Every step is a pure function of its inputs, and the bandit draws come from the
context's seeded generator, so a list is reproducible. `rerank_picks` builds the
context from a trained hybrid (which knows every video's tags, creator, upload time,
popularity and like/skip counts) for the trainer and the feed service.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import numpy as np

from recomind.domain.model import ScoredVideo

if TYPE_CHECKING:
    from recomind.recommenders.content import TagContent
    from recomind.recommenders.hybrid import HybridRecommender, Recommendation

FIRST_EXPLORE_POSITION = 3  # so a first page of 10 already carries one new video
NEW_VIDEO_REASON = "new video"
PINNED_REASON = "featured"
HOT_REASON = "trending now"


@dataclass(frozen=True)
class RerankSettings:
    max_per_tag: int = 4  # 0: no cap
    max_per_creator: int = 2  # 0: no cap
    diversity_window: int = 10
    exploration_share: float = 0.05  # 0: no exploration
    new_video_hours: float = 72.0
    prior_likes: float = 1.0
    prior_skips: float = 1.0
    freshness_boost: float = 0.1  # 0: no boost
    freshness_half_life_hours: float = 24.0
    pins: Mapping[str, int] = field(default_factory=dict)  # video id -> 0-based position
    blocked_tags: frozenset[str] = frozenset()
    blocked_videos: frozenset[str] = frozenset()
    seed: int = 0
    # A cap per tag for the trending list (what a new or logged-out viewer sees) in each
    # window, so a new viewer finds a video of their own topic to like on the first page
    # (0: off; docs/evaluation.md, "Use case 1 and the trending list")
    trending_max_per_tag: int = 2
    # Today's hit (step 3): 0 turns it off
    hot_top: int = 10
    hot_depth: int = 20
    hot_position: int = 1

    @classmethod
    def from_config(cls, s: Any) -> RerankSettings:
        """From `recomind.config.Settings` (its `rerank_*` fields)."""
        return cls(
            max_per_tag=s.rerank_max_per_tag,
            max_per_creator=s.rerank_max_per_creator,
            diversity_window=s.rerank_diversity_window,
            exploration_share=s.rerank_exploration_share,
            new_video_hours=s.rerank_new_video_hours,
            prior_likes=s.rerank_bandit_prior_likes,
            prior_skips=s.rerank_bandit_prior_skips,
            freshness_boost=s.rerank_freshness_boost,
            freshness_half_life_hours=s.rerank_freshness_half_life_hours,
            pins=dict(s.rerank_pins),
            blocked_tags=frozenset(s.rerank_blocked_tags),
            blocked_videos=frozenset(s.rerank_blocked_videos),
            seed=s.rerank_seed,
            trending_max_per_tag=s.rerank_trending_max_per_tag,
            hot_top=s.rerank_hot_top,
            hot_depth=s.rerank_hot_depth,
            hot_position=s.rerank_hot_position,
        )


@dataclass(frozen=True)
class VideoInfo:
    tags: tuple[str, ...]
    creator_id: str | None
    created_at: float  # epoch seconds


@dataclass(frozen=True)
class NewVideo:
    """An exploration candidate with its observed rewards."""

    video_id: str
    likes: int
    skips: int


@dataclass(frozen=True)
class RerankContext:
    k: int  # the list length wanted
    now: float  # epoch seconds
    describe: Callable[[str], VideoInfo | None]  # a video's tags, creator, age (None: unknown)
    seen: Collection[str] = frozenset()
    new_videos: Sequence[NewVideo] = ()
    hot: Sequence[str] = ()  # the most popular videos now, the most popular first
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def rerank(
    candidates: Sequence[ScoredVideo], context: RerankContext, settings: RerankSettings
) -> list[ScoredVideo]:
    """The final list of at most `context.k` videos (see the module docstring)."""
    allowed = _allowed(context, settings)
    kept: list[ScoredVideo] = []
    taken: set[str] = set()
    for c in candidates:
        if c.video_id not in taken and allowed(c.video_id):
            kept.append(c)
            taken.add(c.video_id)
    ranked = boost_fresh(kept, context, settings)
    ranked = promote_hot(ranked, context.hot, settings)
    ranked = diversify(ranked, context.describe, settings, context.k)
    ranked = explore(ranked, context, settings, allowed)
    ranked = pin(ranked, settings, allowed, context.describe)
    return ranked[: context.k]


def _allowed(context: RerankContext, settings: RerankSettings) -> Callable[[str], bool]:
    seen, blocked, blocked_tags = context.seen, settings.blocked_videos, settings.blocked_tags

    def allowed(video_id: str) -> bool:
        if video_id in seen or video_id in blocked:
            return False
        if blocked_tags:
            info = context.describe(video_id)
            if info is not None and not blocked_tags.isdisjoint(info.tags):
                return False
        return True

    return allowed


def boost_fresh(
    ranked: Sequence[ScoredVideo], context: RerankContext, settings: RerankSettings
) -> list[ScoredVideo]:
    if settings.freshness_boost <= 0 or not ranked:
        return list(ranked)
    scale = max((abs(c.score) for c in ranked), default=0.0) or 1.0
    boosted = []
    for c in ranked:
        info = context.describe(c.video_id)
        if info is None:
            boosted.append(c)
            continue
        age_hours = max(0.0, context.now - info.created_at) / 3600.0
        fresh = 2.0 ** (-age_hours / settings.freshness_half_life_hours)
        boosted.append(
            ScoredVideo(c.video_id, c.score + settings.freshness_boost * scale * fresh, c.reason)
        )
    return sorted(boosted, key=lambda c: -c.score)  # stable: ties keep the model's order


def promote_hot(
    ranked: Sequence[ScoredVideo], hot: Sequence[str], settings: RerankSettings
) -> list[ScoredVideo]:
    """The list with the hottest video of its first `hot_depth` (by its place in `hot`, only
    the first `hot_top` of which count) moved up to `hot_position`, if it was lower; it takes
    the score of the video whose place it takes, so the scores still fall down the list."""
    out = list(ranked)
    if settings.hot_top <= 0 or not hot or not out:
        return out
    heat = {v: i for i, v in enumerate(hot[: settings.hot_top])}
    near = [
        (heat[c.video_id], i) for i, c in enumerate(out[: settings.hot_depth]) if c.video_id in heat
    ]
    if not near:
        return out
    _, at = min(near)
    if at > settings.hot_position:
        video = out.pop(at)
        score = max(video.score, out[settings.hot_position].score)
        out.insert(settings.hot_position, ScoredVideo(video.video_id, score, HOT_REASON))
    return out


def diversify(
    ranked: Sequence[ScoredVideo],
    describe: Callable[[str], VideoInfo | None],
    settings: RerankSettings,
    limit: int,
) -> list[ScoredVideo]:
    """Reorder the first `limit` places so no window is crowded by one tag or creator."""
    tag_cap, creator_cap = settings.max_per_tag, settings.max_per_creator
    if tag_cap <= 0 and creator_cap <= 0:
        return list(ranked)
    # each video as the set of "features" a cap counts: its tags and "creator:" + its creator
    remaining = [(c, _features(describe(c.video_id), tag_cap, creator_cap)) for c in ranked]
    before = max(0, settings.diversity_window - 1)  # places before the one being filled
    lookahead = 3 * settings.diversity_window  # how far down a video may be pulled up
    counts: Counter[str] = Counter()
    full: set[str] = set()  # features at their cap within the window
    picked: list[frozenset[str]] = []
    out: list[ScoredVideo] = []
    # True when no video in the lookahead fits; while `full` only grows, that stays true for
    # all of them but the one that has just come into the lookahead (saves rescanning)
    stuck = False
    while remaining and len(out) < limit:
        if not full:
            pick = 0
        elif stuck:
            last = min(lookahead, len(remaining)) - 1
            pick = last if full.isdisjoint(remaining[last][1]) else 0
        else:
            found = next(
                (i for i, (_, f) in enumerate(remaining[:lookahead]) if full.isdisjoint(f)), None
            )
            stuck = found is None
            pick = found or 0  # nothing near fits: the best remaining anyway
        video, features = remaining.pop(pick)
        out.append(video)
        picked.append(features)
        changed = set(features)
        counts.update(features)
        if len(picked) > before:  # the oldest leaves the window
            leaving = picked[len(picked) - before - 1]
            counts.subtract(leaving)
            changed |= leaving
        for f in changed:
            if counts[f] >= _cap(f, tag_cap, creator_cap):
                full.add(f)
            elif f in full:
                full.discard(f)
                stuck = False
    return out + [c for c, _ in remaining]


def _features(info: VideoInfo | None, tag_cap: int, creator_cap: int) -> frozenset[str]:
    if info is None:
        return frozenset()
    features = set(info.tags) if tag_cap > 0 else set()
    if creator_cap > 0 and info.creator_id:
        features.add(_CREATOR + info.creator_id)
    return frozenset(features)


def _cap(feature: str, tag_cap: int, creator_cap: int) -> int:
    return creator_cap if feature.startswith(_CREATOR) else tag_cap


_CREATOR = "\0creator:"  # cannot collide with a tag, which has no control characters


def exploration_positions(k: int, share: float) -> list[int]:
    """Where new videos go: one slot every 1/share places, the first at position 3."""
    if share <= 0 or k <= 0:
        return []
    step = 1.0 / share
    positions = []
    j = 0
    while (p := FIRST_EXPLORE_POSITION + int(j * step)) < k:
        positions.append(p)
        j += 1
    return positions


def thompson_order(
    new_videos: Sequence[NewVideo], settings: RerankSettings, rng: np.random.Generator
) -> list[NewVideo]:
    """New videos by a draw from each one's Beta(prior + likes, prior + skips), best first."""
    if not new_videos:
        return []
    a = settings.prior_likes + np.array([v.likes for v in new_videos], dtype=np.float64)
    b = settings.prior_skips + np.array([v.skips for v in new_videos], dtype=np.float64)
    draws = rng.beta(a, b)
    return [new_videos[i] for i in np.argsort(-draws, kind="stable")]


def explore(
    ranked: Sequence[ScoredVideo],
    context: RerankContext,
    settings: RerankSettings,
    allowed: Callable[[str], bool],
) -> list[ScoredVideo]:
    positions = exploration_positions(context.k, settings.exploration_share)
    if not positions or not context.new_videos:
        return list(ranked)
    picks: list[str] = []
    for video in thompson_order(context.new_videos, settings, context.rng):
        if len(picks) == len(positions):
            break
        vid = video.video_id  # a pinned video has its own place: it takes no exploration slot
        if allowed(vid) and vid not in picks and vid not in settings.pins:
            picks.append(vid)
    chosen = set(picks)
    out = [c for c in ranked if c.video_id not in chosen]
    for position, video_id in zip(positions, picks, strict=False):
        out.insert(min(position, len(out)), ScoredVideo(video_id, 0.0, NEW_VIDEO_REASON))
    return out


def pin(
    ranked: Sequence[ScoredVideo],
    settings: RerankSettings,
    allowed: Callable[[str], bool],
    describe: Callable[[str], VideoInfo | None],
) -> list[ScoredVideo]:
    """Editorial pins, lowest position first; unknown, seen or blocked videos are not pinned."""
    pins = sorted(
        (pos, vid)
        for vid, pos in settings.pins.items()
        if allowed(vid) and describe(vid) is not None
    )
    if not pins:
        return list(ranked)
    pinned = {vid for _, vid in pins}
    out = [c for c in ranked if c.video_id not in pinned]
    for position, video_id in pins:
        out.insert(min(position, len(out)), ScoredVideo(video_id, 0.0, PINNED_REASON))
    return out


# -- from a trained hybrid ----------------------------------------------------------------


def candidate_count(k: int, seen: int) -> int:
    """How many ranked candidates to ask the model for, so filters and diversity have room."""
    return k + max(k // 2, 30) + seen


def rerank_picks(
    model: HybridRecommender,
    picks: Iterable[Recommendation],
    seen: Iterable[str],
    user_id: str,
    settings: RerankSettings,
    k: int,
    now: float,
) -> list[ScoredVideo]:
    """Re-rank a hybrid's `explain` output for one viewer; every fact comes from the model."""
    candidates = [ScoredVideo(str(model.item_ids[p.item]), p.score, p.reason) for p in picks]
    return rerank_ranked(model, candidates, seen, user_id, settings, k, now)


def rerank_ranked(
    model: HybridRecommender,
    candidates: Sequence[ScoredVideo],
    seen: Iterable[str],
    user_id: str,
    settings: RerankSettings,
    k: int,
    now: float,
) -> list[ScoredVideo]:
    """Re-rank a ranked list (from any ranker) for one viewer; the facts come from `model`."""
    content = model.content
    describe = _describer(model)

    # a different, reproducible draw per viewer and hour
    seed = [settings.seed, zlib.crc32(user_id.encode()), int(now // 3600)]
    context = RerankContext(
        k=k,
        now=now,
        describe=describe,
        seen=frozenset(seen),
        new_videos=_new_videos(content, model.item_ids, now, settings.new_video_hours),
        hot=_hot(model, settings.hot_top),
        rng=np.random.default_rng(seed),
    )
    return rerank(candidates, context, settings)


_DESCRIBERS: WeakKeyDictionary[Any, Callable[[str], VideoInfo | None]] = WeakKeyDictionary()
_POOLS: WeakKeyDictionary[Any, tuple[tuple[float, float], list[NewVideo]]] = WeakKeyDictionary()
_HOT: WeakKeyDictionary[Any, tuple[int, list[str]]] = WeakKeyDictionary()


def _hot(model: HybridRecommender, top: int) -> list[str]:
    """The model's `top` most popular videos, the most popular first (remembered per model)."""
    if top <= 0:
        return []
    cached = _HOT.get(model)
    if cached is not None and cached[0] == top:
        return cached[1]
    scores = model.popularity.scores_
    order = np.argsort(-scores, kind="stable")[:top]
    hot = [str(model.item_ids[i]) for i in order if scores[i] > 0]
    _HOT[model] = (top, hot)
    return hot


def _describer(model: HybridRecommender) -> Callable[[str], VideoInfo | None]:
    """Tags, creator and upload time of a model's videos, remembered per model."""
    found = _DESCRIBERS.get(model)
    if found is not None:
        return found
    content = model.content
    index = {str(v): i for i, v in enumerate(model.item_ids)}
    known: dict[str, VideoInfo | None] = {}

    def describe(video_id: str) -> VideoInfo | None:
        if video_id in known:
            return known[video_id]
        i = index.get(video_id)
        info = None
        if i is not None:
            creator = str(content.creators_[i]) if len(content.creators_) else ""
            created = float(content.created_at_[i]) if len(content.created_at_) else 0.0
            info = VideoInfo(content.item_tags(i), creator or None, created)
        known[video_id] = info
        return info

    _DESCRIBERS[model] = describe
    return describe


def _new_videos(
    content: TagContent, item_ids: np.ndarray, now: float, hours: float
) -> list[NewVideo]:
    """Videos uploaded within `hours` of `now` with their like/skip counts (cached per minute)."""
    key = (now // 60, hours)
    cached = _POOLS.get(content)
    if cached is not None and cached[0] == key:
        return cached[1]
    young = np.flatnonzero(content.created_at_ >= now - hours * 3600.0)
    pool = [
        NewVideo(str(item_ids[i]), int(content.likes_[i]), int(content.skips_[i])) for i in young
    ]
    _POOLS[content] = (key, pool)
    return pool
