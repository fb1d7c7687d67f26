"""Seed a store and lake with the simulator's synthetic platform (`recomind demo`)."""

from __future__ import annotations

from collections.abc import Callable

from recomind.domain.model import ActionWeights
from recomind.domain.ports import Lake, Store
from recomind.services.aggregates import rebuild_aggregates
from recomind.services.simulator import simulate


def seed_demo(
    store: Store,
    lake: Lake,
    weights: ActionWeights,
    half_lives: tuple[float, float],
    n_videos: int = 500,
    n_users: int = 200,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Returns how many videos, viewers and actions were written."""
    step = progress or (lambda _msg: None)
    step("simulating viewers")
    world = simulate(n_videos=n_videos, n_users=n_users, seed=seed)
    step("writing the catalog")
    store.add_videos(world.videos)
    store.add_users(world.users)
    step("writing actions")
    new = store.bulk_insert_actions(world.actions)
    lake.archive_actions(new)
    step("popularity and profiles")
    rebuild_aggregates(store, weights, *half_lives)
    return {"videos": len(world.videos), "users": len(world.users), "actions": len(new)}
