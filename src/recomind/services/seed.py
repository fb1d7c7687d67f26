"""Seed a RecoMind with the simulator's synthetic platform (`recomind demo`)."""

from __future__ import annotations

from collections.abc import Callable

from recomind.services.importer import Importer
from recomind.services.simulator import SimulatedWorld, simulate


def seed_demo(
    importer: Importer,
    n_videos: int = 500,
    n_users: int = 200,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Writes the catalog, the viewers and their actions; returns how many of each."""
    step = progress or (lambda _msg: None)
    step("simulating viewers")
    world = simulate(n_videos=n_videos, n_users=n_users, seed=seed)
    step("writing the catalog, actions, popularity and profiles")
    written = write_world(importer, world)
    return {"videos": len(world.videos), "users": len(world.users), "actions": written}


def write_world(importer: Importer, world: SimulatedWorld) -> int:
    """The world's catalog, viewers and actions into RecoMind; returns the actions written."""
    importer.catalog.add_videos(world.videos)
    importer.catalog.add_users(world.users)
    return len(importer.write_actions(world.actions))
