"""Rows/s of consumer groups draining the same events from Kafka, without the API in front.

Needs the servers: scripts/services/start.sh && . .services/env.sh
Then:              python benchmarks/kafka_sink_drain.py postgres [--groups recomind-store,…]
                       [--events 13000] [--tree PATH]

Simulated events, stamped now (so the lake gets one hour folder, as live traffic does), are
published to a fresh topic namespace; then each group drains them through `timed_drain` of
`pipeline_throughput.py` (the group join is not timed). Printed per group: rows/s, and rows per
CPU-second of this process plus the database server's (the lake's S3 server is not counted).

`--tree PATH` runs another checkout's code (its `src` and `benchmarks` first on the path, its
own `timed_drain`), for before/after pairs: `git worktree add /tmp/before <rev>`, then
alternate runs with and without `--tree /tmp/before`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
import uuid
from pathlib import Path

URLS = {"postgres": "RECOMIND_TEST_POSTGRES_URL", "mariadb": "RECOMIND_TEST_MYSQL_URL"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(URLS))
    parser.add_argument("--groups", default="recomind-store,recomind-lake")
    parser.add_argument("--events", type=int, default=13_000)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    tree = args.tree.resolve()
    for path in (tree, tree / "benchmarks", tree / "src"):
        sys.path.insert(0, str(path))

    from pipeline_throughput import CpuClock, fresh_database, settings, timed_drain

    import recomind
    from recomind.bootstrap import bootstrap
    from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
    from recomind.services.simulator import simulate

    assert Path(recomind.__file__).is_relative_to(tree), f"recomind from {recomind.__file__}"
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    url = fresh_database(os.environ[URLS[args.server]])
    n = args.events
    world = simulate(n_videos=2_000, n_users=n // 40 + 30, actions_per_user=40, seed=9)
    now = datetime.datetime.now(datetime.UTC)
    actions = [dataclasses.replace(a, timestamp=now) for a in world.actions[:n]]
    run = uuid.uuid4().hex[:8]
    recomind_ = bootstrap(settings(Path(tempfile.mkdtemp()), url, f"k{run}", f"k{run}"))
    recomind_.catalog.add_videos(world.videos)
    recomind_.bus.publish(
        VIDEO_ACTIONS_TOPIC, [(a.user_id, VideoActionRecorded(a).to_json()) for a in actions]
    )
    figures = []
    for group in args.groups.split(","):
        clock = CpuClock(None if group == "recomind-lake" else args.server)
        rate = timed_drain(recomind_, group, len(actions), clock)
        figures.append(
            f"{group} {rate:,.0f} rows/s, {len(actions) / clock.seconds:,.0f} rows/CPU-s"
        )
    print(
        f"{len(actions):,} events on {args.server}, code of {tree}, load"
        f" {os.getloadavg()[0]:.1f}: " + "; ".join(figures)
    )
    recomind_.close()


if __name__ == "__main__":
    main()
