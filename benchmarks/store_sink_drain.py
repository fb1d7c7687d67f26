"""The store and profile groups' own cost, without Kafka: CPU per store call, client and server.

Needs PostgreSQL or MariaDB from scripts/services (their pid files give the server's CPU):
    scripts/services/start.sh postgres mariadb && . .services/env.sh
    python benchmarks/store_sink_drain.py postgres [--events 20000] [--batch 5000]

Simulated events go, as Kafka records, to `ConsumerRunner.handle` of `recomind-store`, then of
`recomind-profile`, in batches on a fresh database (the catalog loaded first), as the worker
applies a poll. Printed per group: rows/s, this process's CPU time, the server's (PostgreSQL's
processes or `mariadbd`, from /proc) and rows per CPU-second of both; then the thread CPU of the
client and the server's CPU around each store call. The same batches are then handled again, as
a replay, and must store (or count) nothing. The set-up's objects are frozen out of the garbage
collector first, as `recomind worker` does.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline_throughput import server_cpu, settings  # noqa: E402
from tests.integration.test_real_stack import fresh_database  # noqa: E402

from recomind.adapters.store import sql  # noqa: E402
from recomind.bootstrap import bootstrap  # noqa: E402
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded  # noqa: E402
from recomind.domain.ports import BusRecord  # noqa: E402
from recomind.services.simulator import simulate  # noqa: E402

URLS = {"postgres": "RECOMIND_TEST_POSTGRES_URL", "mariadb": "RECOMIND_TEST_MYSQL_URL"}
CALLS = (
    "insert_new_action_columns",
    "count_new_events",
    "ensure_users",
    "add_to_popularity",
    "add_to_tag_weights",
    "refresh_top_tags",
    "known_videos",
)


def timed(server: str, costs: dict[str, list[float]], name: str, f: Callable[..., Any]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        client, served = time.thread_time(), server_cpu(server)
        try:
            return f(*args, **kwargs)
        finally:
            cost = costs.setdefault(name, [0.0, 0.0])
            cost[0] += time.thread_time() - client
            cost[1] += server_cpu(server) - served

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(URLS))
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    n = args.events
    url = fresh_database(os.environ[URLS[args.server]])
    world = simulate(n_videos=2_000, n_users=max(50, n // 40), actions_per_user=40, seed=9)
    run = uuid.uuid4().hex[:8]
    recomind = bootstrap(settings(Path(tempfile.mkdtemp()), url, f"d{run}", f"d{run}"))
    recomind.catalog.add_videos(world.videos)
    records = [
        BusRecord(VIDEO_ACTIONS_TOPIC, 0, i, a.user_id, VideoActionRecorded(a).to_json())
        for i, a in enumerate(world.actions[:n])
    ]
    costs: dict[str, list[float]] = {}
    for name in CALLS:
        method = getattr(sql.SqlTransaction, name)
        setattr(sql.SqlTransaction, name, timed(args.server, costs, name, method))
    gc.collect()
    gc.freeze()
    for group in ("recomind-store", "recomind-profile"):
        runner = next(r for r in recomind.consumers if r.name == group)
        costs.clear()
        cpu, served, start = time.process_time(), server_cpu(args.server), time.perf_counter()
        for i in range(0, n, args.batch):
            runner.handle(records[i : i + args.batch])
        seconds = time.perf_counter() - start
        cpu, served = time.process_time() - cpu, server_cpu(args.server) - served
        print(
            f"{group} on {args.server}, {n:,} events in batches of {args.batch:,}, load"
            f" {os.getloadavg()[0]:.1f}: {n / seconds:,.0f} rows/s; client {cpu * 1000:,.0f} ms,"
            f" server {served * 1000:,.0f} ms of CPU; {n / (cpu + served):,.0f} rows/CPU-s"
        )
        for name, (client, server) in costs.items():
            print(f"  {name:26} client {client * 1000:6,.0f} ms   server {server * 1000:6,.0f} ms")
    stored, counted = recomind.store.count_actions(), recomind.store.top_popularity(5)
    for group in ("recomind-store", "recomind-profile"):
        runner = next(r for r in recomind.consumers if r.name == group)
        for i in range(0, n, args.batch):
            runner.handle(records[i : i + args.batch])
    assert recomind.store.count_actions() == stored, "the replay stored something"
    assert recomind.store.top_popularity(5) == counted, "the replay counted something"
    print(f"  {stored:,} actions stored (events on unknown videos are dead-lettered); replay: none")
    recomind.close()


if __name__ == "__main__":
    main()
