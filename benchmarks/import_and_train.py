"""Import rows/s, training time and batch-recommend rate on embedded defaults.

Usage: python benchmarks/import_and_train.py [--videos N] [--viewers N] [--actions-per-viewer N]

It simulates a platform, writes it as Parquet and CSV files, and times the CLI's work through
the same services: import videos, import actions (store + lake + popularity/profile rebuild),
train (fit + precompute), and `recommend` for every viewer. The baseline beside the import
figure is a bare executemany INSERT of the same rows into SQLite, in the same run.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.services.simulator import export_parquet, import_rows, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5_000)
    parser.add_argument("--viewers", type=int, default=5_000)
    parser.add_argument("--actions-per-viewer", type=int, default=40)
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))

    t = time.perf_counter()
    world = simulate(args.videos, args.viewers, args.actions_per_viewer, seed=1)
    print(
        f"simulated {len(world.videos):,} videos, {len(world.users):,} viewers, "
        f"{len(world.actions):,} actions in {time.perf_counter() - t:.1f}s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = export_parquet(world, root)
        videos, actions = files["videos"], files["actions"]
        rows = import_rows(world)["actions"]

        baseline = root / "baseline.db"
        with sqlite3.connect(baseline) as conn:
            conn.execute(
                "CREATE TABLE a (id TEXT PRIMARY KEY, user_id TEXT, video_id TEXT,"
                " action_type TEXT, timestamp REAL, watch_ms INTEGER)"
            )
            t = time.perf_counter()
            conn.executemany(
                "INSERT INTO a VALUES (?, ?, ?, ?, ?, ?)", [tuple(r.values()) for r in rows]
            )
            conn.commit()
            raw_rate = len(rows) / (time.perf_counter() - t)

        recomind = bootstrap(Settings(home=root / "home", train_interval_seconds=0))
        t = time.perf_counter()
        recomind.importer.videos(videos)
        video_rate = len(world.videos) / (time.perf_counter() - t)
        t = time.perf_counter()
        result = recomind.importer.actions(actions)
        seconds = time.perf_counter() - t
        rate = result.rows / seconds
        print(f"import videos : {video_rate:,.0f} rows/s")
        print(
            f"import actions: {rate:,.0f} rows/s ({result.written:,} rows in {seconds:.1f}s, "
            f"validation + store + popularity/profile updates + lake)"
        )
        print(
            f"baseline      : {raw_rate:,.0f} rows/s (bare SQLite executemany, same rows); "
            f"ratio {rate / raw_rate:.2f}"
        )

        t = time.perf_counter()
        report = recomind.trainer.train()
        print(
            f"train         : fit {report.fit_seconds:.2f}s, precompute {report.precomputed:,} "
            f"lists in {report.precompute_seconds:.2f}s "
            f"({report.precomputed / report.precompute_seconds:,.0f} viewers/s); "
            f"total {time.perf_counter() - t:.1f}s"
        )
        users = [u.user_id for u in world.users[:1000]]
        t = time.perf_counter()
        for u in users:
            recomind.feed.ranked(u, 10)
        print(
            f"recommend     : {len(users) / (time.perf_counter() - t):,.0f} viewers/s "
            f"(on the fly from each viewer's stored history)"
        )
        recomind.close()


if __name__ == "__main__":
    main()
