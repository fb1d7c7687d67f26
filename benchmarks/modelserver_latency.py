"""What ranking over HTTP costs: the same viewers ranked in-process and by `recomind modelserver`.

    python benchmarks/modelserver_latency.py --videos 5000 --viewers 1000 --requests 500

Simulates a catalog, imports it (which writes the lake), trains the model server's model from
the lake with `recomind modelserver train`, starts `recomind modelserver serve` on a free
127.0.0.1 port, then ranks the same viewers' histories (top 100) through the in-process ranker
and through the HTTP ranker, one request at a time, and prints p50 / p95 / mean per request.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from recomind.adapters.ranker.http import HttpRanker
from recomind.adapters.ranker.local import ModelRanker
from recomind.bootstrap import bootstrap
from recomind.config import Settings
from recomind.domain.ports import Ranker, RankRequest
from recomind.services.model_registry import ModelHolder, ModelRegistry
from recomind.services.simulator import export_parquet, simulate


def start_server(
    home: Path, model_dir: Path, env: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "recomind.entrypoints.cli", "modelserver", "serve"]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--model-dir", str(model_dir)],
        env={**env, "RECOMIND_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the model server did not start")


def timings(ranker: Ranker, requests: list[RankRequest]) -> list[float]:
    ranker.rank(requests[0])  # warm up (connection, caches)
    out = []
    for request in requests:
        start = time.perf_counter()
        ranked = ranker.rank(request)
        out.append(time.perf_counter() - start)
        assert ranked is not None and ranked.items
    return out


def report(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    print(
        f"{name:12s} p50 {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--actions-per-viewer", type=int, default=40)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        model_dir = Path(tmp) / "sm-model"
        world = simulate(args.videos, args.viewers, args.actions_per_viewer, seed=1)
        files = export_parquet(world, Path(tmp) / "import")
        env = {**os.environ, "RECOMIND_HOME": str(home), "RECOMIND_TRAIN_INTERVAL_SECONDS": "0"}
        cli = [sys.executable, "-m", "recomind.entrypoints.cli"]
        for kind in ("videos", "users", "actions"):
            subprocess.run([*cli, "import", kind, str(files[kind])], env=env, check=True)
        subprocess.run(
            [*cli, "modelserver", "train", "--model-dir", str(model_dir)], env=env, check=True
        )
        api = bootstrap(Settings(home=home))
        users = sorted({a.user_id for a in world.actions})[: args.requests]
        requests = [RankRequest(tuple(api.store.user_actions(u)), 100, u) for u in users]
        api.close()
        url, server = start_server(home, model_dir, env)
        try:
            local = ModelRanker(ModelHolder(ModelRegistry(model_dir)), Settings().action_weights)
            http = HttpRanker(url, local, timeout_seconds=5.0)
            print(
                f"{len(world.videos):,} videos, {len(world.actions):,} actions, "
                f"{len(requests)} viewers ranked (top 100) one at a time; load {os.getloadavg()}"
            )
            report("in-process", timings(local, requests))
            report("over HTTP", timings(http, requests))
            assert http.outcomes["error"] == 0
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
