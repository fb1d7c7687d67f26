"""Action -> refreshed feed latency under `RECOMIND_REFRESH_POLICY=immediate`, under load.

    benchmarks/setup_load_tools.sh                    # vegeta, for the background load
    python benchmarks/feed_freshness.py --stack embedded
    scripts/services/start.sh postgres redis kafka && . "$RECOMIND_SERVICES_DIR/env.sh"
    python benchmarks/feed_freshness.py --stack kafka

`embedded`: `recomind serve` on the embedded defaults (SQLite, in-process cache, local event
log) with its embedded worker. `kafka`: `recomind serve` (API only) and `recomind worker` on
PostgreSQL, Redis and Kafka. Both on 127.0.0.1, children of this process.

While vegeta posts `--rate` views per second (default 500) from `--background-viewers`
viewers, each probe takes a viewer who is not in the background, reads their feed, likes its
first video and polls `GET /recommendations/{viewer}?limit=100` every 20 ms until that video
is gone. Under `immediate` nothing but a rebuild removes it (a viewer due for a rebuild is not
given the cheap drop of acted-on videos), so that is the time from the like's POST to a
rebuilt list being served. Prints p50/p95/max over the probes and what the background got.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.serving_load import tool  # noqa: E402
from tests.integration.test_real_stack import fresh_database  # noqa: E402
from tests.support.servers import RecoMindProcess  # noqa: E402

from recomind.bootstrap import bootstrap  # noqa: E402
from recomind.config import Settings  # noqa: E402
from recomind.services.seed import write_world  # noqa: E402
from recomind.services.simulator import simulate  # noqa: E402


def stack_env(stack: str, tmp: Path, run: str) -> dict[str, str]:
    env = {
        "RECOMIND_REFRESH_POLICY": "immediate",
        "RECOMIND_LOG_LEVEL": "info",
        "RECOMIND_TRAIN_INTERVAL_SECONDS": "0",
    }
    if stack == "kafka":
        missing = [
            v
            for v in (
                "RECOMIND_TEST_POSTGRES_URL",
                "RECOMIND_TEST_REDIS_URL",
                "RECOMIND_TEST_KAFKA_URL",
            )
            if not os.environ.get(v)
        ]
        if missing:
            sys.exit(f"set {', '.join(missing)}: . $RECOMIND_SERVICES_DIR/env.sh")
        db = 1 + int(run, 16) % 15
        env |= {
            "RECOMIND_STORE_URL": fresh_database(os.environ["RECOMIND_TEST_POSTGRES_URL"]),
            "RECOMIND_CACHE_URL": os.environ["RECOMIND_TEST_REDIS_URL"].rsplit("/", 1)[0]
            + f"/{db}",
            "RECOMIND_BUS_URL": f"{os.environ['RECOMIND_TEST_KAFKA_URL']}?namespace=f{run}",
            "RECOMIND_LAKE_URL": f"file://{tmp / 'lake'}",
            "RECOMIND_EMBEDDED_WORKER": "false",
        }
    return env


def seed(home: Path, env: dict[str, str], viewers: int) -> tuple[list[str], list[str]]:
    settings = Settings(
        home=home,
        store_url=env.get("RECOMIND_STORE_URL"),
        cache_url=env.get("RECOMIND_CACHE_URL", "memory://"),
        bus_url=env.get("RECOMIND_BUS_URL"),
        train_interval_seconds=0,
    )
    world = simulate(n_videos=2_000, n_users=viewers, actions_per_user=30, seed=5)
    recomind = bootstrap(settings)
    try:
        write_world(recomind.importer, world)
        recomind.trainer.train()
    finally:
        recomind.close()
    return [u.user_id for u in world.users], [v.video_id for v in world.videos]


def background(
    url: str, viewers: list[str], videos: list[str], rate: int, seconds: float, tmp: Path
) -> subprocess.Popen[bytes]:
    lines = []
    for i in range(2000):
        body = {
            "user_id": viewers[i % len(viewers)],
            "video_id": videos[(i * 13) % len(videos)],
            "action_type": "view",
        }
        lines.append(
            json.dumps(
                {
                    "method": "POST",
                    "url": f"{url}/video_action",
                    "header": {"Content-Type": ["application/json"]},
                    "body": __import__("base64").b64encode(json.dumps(body).encode()).decode(),
                }
            )
        )
    targets = tmp / "background.targets"
    targets.write_text("\n".join(lines) + "\n")
    return subprocess.Popen(
        [
            tool("vegeta"),
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate}/1s",
            f"-duration={seconds:g}s",
            "-timeout=10s",
            f"-output={tmp / 'background.bin'}",
        ]
    )


def probe(http: httpx.Client, viewer: str, timeout: float) -> float | None:
    feed = http.get(f"/recommendations/{viewer}", params={"limit": 100})
    feed.raise_for_status()
    items = feed.json()
    if not items:
        return None
    liked = items[0]["video_id"]
    start = time.perf_counter()
    r = http.post(
        "/video_action", json={"user_id": viewer, "video_id": liked, "action_type": "like"}
    )
    assert r.status_code == 202, r.text
    while time.perf_counter() - start < timeout:
        ids = {
            i["video_id"]
            for i in http.get(f"/recommendations/{viewer}", params={"limit": 100}).json()
        }
        if liked not in ids:
            return time.perf_counter() - start
        time.sleep(0.02)
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--rate", type=int, default=500, help="background actions per second")
    parser.add_argument("--background-viewers", type=int, default=300)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before probing")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra RECOMIND_* setting"
    )
    args = parser.parse_args()
    tool("vegeta")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("load before:", os.getloadavg())
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="recomind-fresh-"))
    env = stack_env(args.stack, tmp, run) | dict(e.split("=", 1) for e in args.env)
    viewers, videos = seed(tmp / "home", env, args.background_viewers + args.probes)
    probes, busy = viewers[: args.probes], viewers[args.probes :]
    api = RecoMindProcess(tmp / "home", "serve", env=env)
    api.env["RECOMIND_LOG_LEVEL"] = "info"
    api.start()
    worker = None
    if args.stack == "kafka":
        log = (tmp / "worker.log").open("ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "recomind.entrypoints.cli", "worker", "--no-train"],
            env={**api.env},
            cwd=tmp / "home",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    seconds = args.warmup + args.probes * 1.5 + 30
    load = None
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            for v in probes:  # a first read caches each probe viewer's list
                http.get(f"/recommendations/{v}")
            load = background(api.url, busy, videos, args.rate, seconds, tmp)
            time.sleep(args.warmup)
            for v in probes:
                try:
                    took = probe(http, v, timeout=15)
                except httpx.TimeoutException:
                    took = float("inf")  # an API too busy to answer counts as never fresh
                if took is not None:
                    latencies.append(took)
        stopped_early = load.poll() is None
    finally:
        if load is not None and load.poll() is None:
            load.terminate()  # vegeta writes out what it has, then exits
            try:
                load.wait(60)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait(10)
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        api.stop()
    report = json.loads(
        subprocess.run(
            [tool("vegeta"), "report", "-type=json", str(tmp / "background.bin")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    print("load after:", os.getloadavg())
    ok = report["status_codes"].get("202", 0) / max(1, report["requests"])
    print(
        f"\n{args.stack}: background {report['requests']:,} POST /video_action at "
        f"{report['rate']:,.0f}/s offered, {report['throughput']:,.0f}/s answered, {ok:.1%} 202, "
        f"p99 {report['latencies']['99th'] / 1e6:,.0f} ms; from {len(busy)} viewers"
        + (" (still running at the end)" if stopped_early else "")
    )
    latencies.sort()
    if not latencies:
        sys.exit("no probe had a feed to like from")
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    p50 = statistics.median(latencies)
    print(
        f"like -> rebuilt feed served, {len(latencies)} probes: p50 {p50:.3f} s, "
        f"p95 {p95:.3f} s, max {latencies[-1]:.3f} s; {time.strftime('%Y-%m-%d %H:%M')}"
    )


if __name__ == "__main__":
    main()
