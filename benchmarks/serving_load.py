"""Serving load on the real stack: RecoMind's routes beside a bare ASGI endpoint, in one run.

Needs PostgreSQL, Redis and Kafka and the load generators:

    benchmarks/setup_load_tools.sh                          # wrk (apt) and vegeta (Go proxy)
    scripts/services/start.sh postgres redis kafka && . "$RECOMIND_SERVICES_DIR/env.sh"
    python benchmarks/serving_load.py [--server uvicorn|granian] [--workers 1]

(`--server granian` needs the extra: `pip install -e '.[granian]'`.)

It seeds a catalog into a fresh PostgreSQL database, trains (which caches every viewer's list
in Redis), then serves, on 127.0.0.1 and with the same ASGI server and worker count:

(a) `benchmarks/bare_asgi.py`: one Redis GET of `recommendations:{user}`, the bytes returned;
(b) `recomind serve` (Kafka bus, PostgreSQL store, Redis cache) with API-key auth, metrics and
    JSON access logs on: `GET /recommendations/{user}` (cached), `GET /trending` and
    `POST /video_action`, cycling over many viewers and videos. The cached feed is also
    served by a second `recomind serve` whose cache URL turns the near cache off
    (`?near_cache=false`, ADR 0006), so each run shows the feed with and without it.

For each: the maximum requests/s in a closed loop (wrk, bounded by a request count and a time
limit), then p50/p99 latency in an open loop at a fixed rate of half the bare endpoint's maximum
(vegeta, a fixed number of requests), and the ratios to (a). Every request's status is checked.
It also prints each server's CPU per request in the closed loop (every thread and worker
process, from /proc), which moves much less with the machine's load than requests/s.

Then (`--freshness`, default both stacks) it runs `feed_freshness.py` on the embedded defaults
and on Kafka + PostgreSQL + Redis, as its child: the time from a like to a rebuilt feed while
500 other actions a second flow.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_real_stack import fresh_database  # noqa: E402
from tests.support.servers import RecoMindProcess, free_port, wait_until_up  # noqa: E402

from recomind.bootstrap import bootstrap  # noqa: E402
from recomind.config import Settings  # noqa: E402
from recomind.domain import cache_keys  # noqa: E402
from recomind.services.seed import write_world  # noqa: E402
from recomind.services.simulator import simulate  # noqa: E402

NEEDED = ("RECOMIND_TEST_POSTGRES_URL", "RECOMIND_TEST_REDIS_URL", "RECOMIND_TEST_KAFKA_URL")
API_KEY = "bench-" + uuid.uuid4().hex


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path.home() / "go" / "bin"))
    if not found:
        sys.exit(f"{name} not found: run benchmarks/setup_load_tools.sh")
    return found


@dataclass(frozen=True)
class Target:
    name: str
    slug: str
    method: str
    urls: list[str]
    bodies: list[bytes] | None
    headers: dict[str, str]
    expect: int


@dataclass(frozen=True)
class Closed:
    rps: float
    requests: int
    bad: int
    p50_ms: float
    p99_ms: float
    cpu_us: float = 0.0  # the server's CPU (every process and thread) per request


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process and its children (the workers), from /proc:
    per request, a figure that moves much less with the machine's load than requests/s."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or a child
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Open:
    rate: float
    requests: int
    success: float
    p50_ms: float
    p99_ms: float


# -- seeding ---------------------------------------------------------------------------------


def seed(home: Path, env: dict[str, str], viewers: int) -> tuple[list[str], list[str]]:
    """Catalog, history and a trained model; returns viewers whose feed is cached, and videos."""
    settings = Settings(
        home=home,
        store_url=env["RECOMIND_STORE_URL"],
        cache_url=env["RECOMIND_CACHE_URL"],
        bus_url=env["RECOMIND_BUS_URL"],
        train_interval_seconds=0,
    )
    world = simulate(n_videos=2_000, n_users=viewers, actions_per_user=30, seed=11)
    recomind = bootstrap(settings)
    try:
        write_world(recomind.importer, world)
        recomind.trainer.train()
        cached = [
            u.user_id
            for u in world.users
            if recomind.cache.get(cache_keys.recommendations(u.user_id)) is not None
        ]
    finally:
        recomind.close()
    return cached, [v.video_id for v in world.videos]


# -- servers ---------------------------------------------------------------------------------


def start_bare(
    server: str, workers: int, redis_url: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    if server == "granian":
        cmd = [str(bin_dir / "granian"), "--interface", "asgi", "--no-ws", "--loop", "uvloop"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        cmd += ["--log-level", "warning", "benchmarks.bare_asgi:app"]
    else:
        cmd = [str(bin_dir / "uvicorn"), "--loop", "uvloop", "--http", "httptools"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        cmd += ["--no-access-log", "--log-level", "warning", "benchmarks.bare_asgi:app"]
    env = {**os.environ, "BARE_REDIS_URL": redis_url, "BARE_REDIS_CLIENT": "sync"}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, 30, proc)
    return proc, url


def start_api(home: Path, env: dict[str, str]) -> RecoMindProcess:
    """`recomind serve` with JSON access lines; a port taken meanwhile (by one of the load
    generator's outgoing connections) is retried on another, up to three servers."""
    for attempt in range(3):
        api = RecoMindProcess(home, "serve", env={**env, "RECOMIND_LOG_LEVEL": "info"})
        try:
            return api.start()
        except RuntimeError:
            if attempt == 2 or "address already in use" not in api.log_tail().lower():
                raise
    raise AssertionError("unreachable")


def api_pid(api: RecoMindProcess) -> int:
    assert api.proc is not None
    return api.proc.pid


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- load ------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local urls = %(urls)s
local bodies = %(bodies)s
local headers = %(headers)s
local expect = %(expect)d
local limit = %(limit)d
local reqs = {}
local k, n, bad = 0, 0, 0
function init(args)
  for i, u in ipairs(urls) do
    reqs[i] = wrk.format("%(method)s", u, headers, bodies[i])
  end
end
function request()
  k = k %% #reqs + 1
  return reqs[k]
end
function response(status, hdrs, body)
  n = n + 1
  if status ~= expect then bad = bad + 1 end
  if n >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  io.write(string.format("WRK {\\"requests\\":%%d,\\"us\\":%%d,\\"socket_errors\\":%%d," ..
    "\\"p50\\":%%d,\\"p99\\":%%d}\\n", summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(s: str | bytes) -> str:
    raw = s.decode() if isinstance(s, bytes) else s
    return json.dumps(raw)  # a JSON string literal is a valid Lua string literal here


def closed_loop(
    target: Target, base: str, requests: int, seconds: float, conns: int, tmp: Path
) -> Closed:
    bodies = target.bodies or []
    script = _WRK_SCRIPT % {
        "urls": "{" + ",".join(_lua_string(u) for u in target.urls) + "}",
        "bodies": "{" + ",".join(_lua_string(b) for b in bodies) + "}",
        "headers": "{"
        + ",".join(f"[{_lua_string(k)}]={_lua_string(v)}" for k, v in target.headers.items())
        + "}",
        "expect": target.expect,
        "limit": requests,
        "method": target.method,
    }
    path = tmp / f"{target.slug}.lua"
    path.write_text(script)
    out = subprocess.run(
        [
            tool("wrk"),
            "-t1",
            f"-c{conns}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(path),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    bad_line = 0
    figures = json.loads(line[4:])
    # `response` counted statuses per thread; non-2xx/3xx also show in wrk's own summary.
    for x in out.splitlines():
        if "Non-2xx or 3xx responses:" in x:
            bad_line = int(x.split(":")[1])
    if figures["requests"] >= requests:
        # wrk still waits out -d after a thread stops, so the rate would read low
        sys.exit(f"{target.name}: hit the cap of {requests:,} requests; raise --requests")
    return Closed(
        rps=figures["requests"] / (figures["us"] / 1e6),
        requests=figures["requests"],
        bad=bad_line + figures["socket_errors"],
        p50_ms=figures["p50"] / 1000,
        p99_ms=figures["p99"] / 1000,
    )


def open_loop(target: Target, base: str, rate: float, seconds: float, tmp: Path) -> Open:
    lines = []
    for i, u in enumerate(target.urls):
        t: dict[str, object] = {
            "method": target.method,
            "url": base + u,
            "header": {k: [v] for k, v in target.headers.items()},
        }
        if target.bodies:
            t["body"] = base64.b64encode(target.bodies[i]).decode()
        lines.append(json.dumps(t))
    targets = tmp / f"{target.slug}.targets"
    targets.write_text("\n".join(lines) + "\n")
    results = tmp / f"{target.slug}.bin"
    vegeta = tool("vegeta")
    subprocess.run(
        [
            vegeta,
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={round(rate)}/1s",
            f"-duration={seconds:g}s",
            "-timeout=10s",
            "-keepalive=true",
            f"-output={results}",
        ],
        check=True,
    )
    report = json.loads(
        subprocess.run(
            [vegeta, "report", "-type=json", str(results)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    ok = report["status_codes"].get(str(target.expect), 0)
    return Open(
        rate=rate,
        requests=report["requests"],
        success=ok / max(1, report["requests"]),
        p50_ms=report["latencies"]["50th"] / 1e6,
        p99_ms=report["latencies"]["99th"] / 1e6,
    )


def warm_up(target: Target, base: str) -> None:
    """Send each distinct request once, checking its status: connections, the feed lists and
    the ingest's cache of known video ids (a video seen for the first time is looked up in
    the store once) are warm before anything is measured, as in a server running for a while."""
    import httpx

    def send(i: int) -> int:
        body = target.bodies[i] if target.bodies else None
        r = client.request(target.method, target.urls[i], headers=target.headers, content=body)
        return r.status_code

    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, range(len(target.urls))))
    bad = [s for s in statuses if s != target.expect]
    if bad:
        sys.exit(f"{target.name}: {len(bad)} of {len(statuses)} warm-up requests got {bad[:5]}")


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--requests", type=int, default=200_000, help="closed loop: at most this many"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="closed loop: at most this long")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--open-seconds", type=float, default=8.0, help="open loop duration")
    parser.add_argument("--viewers", type=int, default=300)
    parser.add_argument(
        "--freshness",
        choices=("both", "embedded", "kafka", "none"),
        default="both",
        help="then action -> refreshed feed latency under load on these stacks "
        "(benchmarks/feed_freshness.py, run as a child)",
    )
    args = parser.parse_args()
    missing = [v for v in NEEDED if not os.environ.get(v)]
    if missing:
        sys.exit(
            f"set {', '.join(missing)}: scripts/services/start.sh postgres redis kafka"
            " && . $RECOMIND_SERVICES_DIR/env.sh"
        )
    tool("wrk"), tool("vegeta")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("load before:", os.getloadavg())

    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="recomind-serving-"))
    redis_db = 1 + int(run, 16) % 15  # a database of its own; flushed at the end
    redis_url = os.environ["RECOMIND_TEST_REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
    env = {
        "RECOMIND_STORE_URL": fresh_database(os.environ["RECOMIND_TEST_POSTGRES_URL"]),
        "RECOMIND_CACHE_URL": redis_url,
        "RECOMIND_BUS_URL": f"{os.environ['RECOMIND_TEST_KAFKA_URL']}?namespace=s{run}",
        "RECOMIND_LAKE_URL": f"file://{tmp / 'lake'}",
        "RECOMIND_EMBEDDED_WORKER": "false",  # an API replica; consumers run in `recomind worker`
        "RECOMIND_API_KEYS": API_KEY,
        "RECOMIND_LOG_LEVEL": "info",  # one JSON access line per request (to the log file)
        "RECOMIND_SERVER": args.server,
        "RECOMIND_WORKERS": str(args.workers),
    }
    users, videos = seed(tmp / "home", env, args.viewers)
    print(f"seeded: {len(users)} viewers with cached feeds, {len(videos)} videos")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    n = min(len(users), 200)
    bodies = [
        json.dumps(
            {
                "user_id": users[i % n],
                "video_id": videos[(i * 7) % len(videos)],
                "action_type": "view",
            }
        ).encode()
        for i in range(1000)
    ]
    targets = [
        Target(
            "bare Redis GET (a)", "bare", "GET", [f"/feed/{u}" for u in users[:n]], None, {}, 200
        ),
        Target(
            "GET /recommendations/{user}",
            "feed",
            "GET",
            [f"/recommendations/{u}" for u in users[:n]],
            None,
            auth,
            200,
        ),
        Target(
            "  the same, near cache off",
            "feed-far",
            "GET",
            [f"/recommendations/{u}" for u in users[:n]],
            None,
            auth,
            200,
        ),
        Target("GET /trending", "trending", "GET", ["/trending"], None, auth, 200),
        Target(
            "POST /video_action",
            "action",
            "POST",
            ["/video_action"] * len(bodies),
            bodies,
            {**auth, "Content-Type": "application/json"},
            202,
        ),
    ]
    bare_proc, bare_url = start_bare(args.server, args.workers, redis_url, tmp / "bare.log")
    api = start_api(tmp / "home", env)
    # the same API, reading Redis on every page: what the near cache is worth
    far_env = {**env, "RECOMIND_CACHE_URL": f"{redis_url}?near_cache=false"}
    far = start_api(tmp / "home", far_env)
    servers = {"bare": (bare_url, bare_proc.pid), "feed-far": (far.url, api_pid(far))}
    closed: dict[str, Closed] = {}
    opened: dict[str, Open] = {}
    try:
        for t in targets:
            base, pid = servers.get(t.slug, (api.url, api_pid(api)))
            # warm-up: every distinct request once, then 1 s of load (connections, caches,
            # the Kafka producer's first metadata)
            warm_up(t, base)
            closed_loop(t, base, 100_000, 1, args.connections, tmp)
            cpu = server_cpu_seconds(pid)
            c = closed_loop(t, base, args.requests, args.seconds, args.connections, tmp)
            cpu_us = (server_cpu_seconds(pid) - cpu) / max(1, c.requests) * 1e6
            closed[t.name] = replace(c, cpu_us=cpu_us)
        rate = closed[targets[0].name].rps / 2
        for t in targets:
            base, _ = servers.get(t.slug, (api.url, 0))
            opened[t.name] = open_loop(t, base, rate, args.open_seconds, tmp)
    finally:
        stop(bare_proc)
        api.stop()
        far.stop()
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    print("load after:", os.getloadavg())
    print(
        f"\n{args.server}, {args.workers} worker(s); closed loop: wrk -t1 -c{args.connections}, "
        f"at most {args.requests:,} requests or {args.seconds:g} s; open loop: vegeta at "
        f"{rate:,.0f}/s for {args.open_seconds:g} s; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    bare_c, bare_o = closed[targets[0].name], opened[targets[0].name]
    print(
        f"{'endpoint':30} {'max req/s':>10} {'x bare':>7} {'CPU us/req':>10} {'x bare':>7} "
        f"{'bad':>5} | "
        f"{'p50 ms':>7} {'p99 ms':>7} {'x bare p99':>10} {'ok':>6}"
    )
    for t in targets:
        c, o = closed[t.name], opened[t.name]
        print(
            f"{t.name:30} {c.rps:>10,.0f} {c.rps / bare_c.rps:>7.2f} {c.cpu_us:>10,.0f} "
            f"{bare_c.cpu_us / max(c.cpu_us, 1e-9):>7.2f} {c.bad:>5} | "
            f"{o.p50_ms:>7.2f} {o.p99_ms:>7.2f} {o.p99_ms / bare_o.p99_ms:>10.2f} {o.success:>6.1%}"
        )
    stacks = {"both": ("embedded", "kafka"), "none": ()}.get(args.freshness, (args.freshness,))
    for stack in stacks:
        freshness(stack)


def freshness(stack: str) -> None:
    """`feed_freshness.py --stack STACK` as a child of this process; its figures printed."""
    command = [sys.executable, str(REPO / "benchmarks" / "feed_freshness.py"), "--stack", stack]
    print(f"\naction -> refreshed feed under load: {' '.join(command[1:])}")
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"feed_freshness.py --stack {stack} failed:\n{run.stderr[-2000:]}")
    for line in run.stdout.splitlines():
        if line.startswith((f"{stack}:", "like ->")):
            print(line)


if __name__ == "__main__":
    main()
