"""Throughput of the real stack on this machine, each figure beside a raw baseline in the same run.

Needs the servers: scripts/services/install.sh && scripts/services/start.sh && . .services/env.sh
Then:              python benchmarks/pipeline_throughput.py [--events 10000] [--runs 3]

1. API -> Kafka: events/s through `recomind serve` (POST /video_actions, batches of 100, 4
   clients), and single POST /video_action requests/s (8 clients); baseline: the Kafka producer
   alone (idempotent, acks=all) sending the same messages.
2. Kafka -> PostgreSQL: rows/s of the `recomind-store` consumer group (the actions, once per
   viewer and event id); baseline: a bare COPY of the same rows into a table with a primary
   key on id only, and again into one of `video_actions`' shape: its primary key and secondary
   indexes as schema.py declares them (since migration 0006, the key (user_id, id) and no secondary
   index; before it, the key on id and an index on viewer and time). Then events/s of the
   `recomind-profile` group (the ledger of counted ids, popularity, tag weights and top tags in
   one transaction per batch), printed beside the same baselines, though it writes other rows
   (ADR 0008).
3. Kafka -> MariaDB: the same; baseline: a bare LOAD DATA LOCAL INFILE of the same rows (both
   table shapes).
4. Kafka -> lake (S3): rows/s of the `recomind-lake` group; baseline: the same rows encoded as
   one Parquet object with pyarrow and written by one PUT of the lake's own client (`S3Put`).

Beside rows/s, the sinks and their baselines print rows per CPU-second: this process's CPU time
plus the database server's (read from /proc, by the pid files that scripts/services writes under
RECOMIND_SERVICES_DIR). On a shared machine wall-clock rates fall with the load of others; CPU
cost does much less, so the CPU ratio is the steadier comparison. Before each timed drain the
set-up's objects are frozen out of the garbage collector, as a worker process does with its
start-up heap; `--no-freeze` drains without that.

The S3 server is warmed up first (`warm_up_s3`): the test server (S3Proxy) is a JVM, and
on a freshly started one the first LIST took 114 ms and the first PUT 66 ms, against 8 and
24 ms after (a drain of 10,000 events). The sink ran first, so its first run paid for that and
the baseline, right after it, did not (0.16 of it in each set's first run).

One baseline is one short measurement, and moves a lot from run to run (one Parquet PUT of
10,000 rows took from 274,000 to 770,000 rows/s on the same day), so a single run's ratio
moves with it. `--runs K` repeats the whole measurement K times, each on fresh topics,
databases and lake prefixes, and ends with the median of each figure and of each ratio.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_real_stack import fresh_database  # noqa: E402
from tests.support.servers import RecoMindProcess  # noqa: E402

from recomind.adapters.lake.s3 import S3Put  # noqa: E402
from recomind.adapters.store.schema import video_actions  # noqa: E402
from recomind.bootstrap import RecoMind, bootstrap  # noqa: E402
from recomind.config import Settings  # noqa: E402
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded  # noqa: E402
from recomind.domain.ports import BusConsumer, BusRecord  # noqa: E402
from recomind.services.simulator import simulate  # noqa: E402

NEEDED = (
    "RECOMIND_TEST_POSTGRES_URL",
    "RECOMIND_TEST_MYSQL_URL",
    "RECOMIND_TEST_REDIS_URL",
    "RECOMIND_TEST_KAFKA_URL",
    "RECOMIND_TEST_S3_URL",
)


SERVICES_DIR = Path(os.environ.get("RECOMIND_SERVICES_DIR", REPO / ".services"))


def server_cpu(name: str | None) -> float:
    """CPU seconds used so far by a server of scripts/services and its children (PostgreSQL runs
    a process per connection); 0 when it is not one of ours."""
    pid_file = SERVICES_DIR / f"{name}/{name}.pid"
    if name is None or not pid_file.exists():
        return 0.0
    root = pid_file.read_text().split()[0]
    pids = [root]
    children = Path(f"/proc/{root}/task/{root}/children")
    if children.exists():
        pids += children.read_text().split()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """CPU seconds of this process (every thread) plus one server's, between start and stop."""

    def __init__(self, server: str | None) -> None:
        self.server = server
        self.seconds = 0.0

    def __enter__(self) -> CpuClock:
        self._start = time.process_time() + server_cpu(self.server)
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.process_time() + server_cpu(self.server) - self._start


@dataclass
class Figure:
    path: str
    rate: float
    base_name: str
    base_rate: float
    rows: int = 0
    cpu: float = 0.0  # CPU seconds of the path (client + server), when measured
    base_cpu: float = 0.0

    def per_cpu(self, cpu: float) -> str:
        return f"{self.rows / cpu:>10,.0f}" if cpu > 0 else f"{'-':>10}"


def settings(home: Path, store_url: str, namespace: str, lake_prefix: str) -> Settings:
    return Settings(
        home=home,
        store_url=store_url,
        cache_url=os.environ["RECOMIND_TEST_REDIS_URL"],
        bus_url=f"{os.environ['RECOMIND_TEST_KAFKA_URL']}?namespace={namespace}",
        lake_url=f"{os.environ['RECOMIND_TEST_S3_URL']}/{lake_prefix}",
        train_interval_seconds=0,
        refresh_policy="ttl",
    )


def raw_produce(messages: list[tuple[str, bytes]], topic: str) -> float:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": os.environ["RECOMIND_TEST_KAFKA_URL"].removeprefix("kafka://"),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    start = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    return len(messages) / (time.perf_counter() - start)


FREEZE = True  # main() clears it for --no-freeze


class Primed:
    """A consumer whose first poll, made before the clock starts (the group join is not
    timed), is handed out again at the first poll of the timed part."""

    def __init__(self, consumer: BusConsumer, first: Sequence[BusRecord]) -> None:
        self.consumer = consumer
        self.first = first

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[BusRecord]:
        if self.first:
            records, self.first = self.first, []
            return records
        return self.consumer.poll(max_records, timeout_seconds)

    def commit(self, records: Sequence[BusRecord]) -> None:
        self.consumer.commit(records)

    def close(self) -> None:
        self.consumer.close()


def timed_drain(recomind: RecoMind, group: str, expected: int, clock: CpuClock) -> float:
    """rows/s of one consumer group over `expected` events, through the worker's own loop
    (`ConsumerRunner.pump`); `clock` takes the CPU time of the timed part."""
    runner = next(r for r in recomind.consumers if r.name == group)
    # A buffered group (the lake's) writes once it holds them all, not after its flush age.
    # Not min(its flush rows, expected): with 53,000 events and flushes of 50,000, the last
    # polls' few hundred waited out the 5 s age (one run gave 10,171 rows/s at 166,687 rows
    # per CPU-second).
    if runner.group.buffered:
        runner.flush_rows = expected
    runner.ready()  # as `ConsumerRunner.run` does before it subscribes: the store's connections
    consumer = recomind.bus.subscribe(group, VIDEO_ACTIONS_TOPIC)
    records: Sequence[BusRecord] = []
    while not records:
        records = consumer.poll(runner.batch_size, 1.0)
    # A full collection now, so the timed part does not pay for the garbage of the set-up (the
    # simulated world, the API run), which a worker process does not hold. Then, as `recomind
    # worker` does with its start-up heap (entrypoints/heap.py), what is alive now is set aside
    # from later collections, unless --no-freeze.
    gc.collect()
    if FREEZE:
        gc.freeze()
    done = 0

    def finished(taken: int) -> bool:
        nonlocal done
        done = taken
        return taken >= expected

    with clock:
        start = time.perf_counter()
        runner.pump(Primed(consumer, records), finished)
        seconds = time.perf_counter() - start
    consumer.close()
    return done / seconds


def profile_figure(app: RecoMind, server: str, name: str, events: int, bare: Figure) -> Figure:
    """events/s of the `recomind-profile` group, printed beside the bare baseline of the store
    group's figure `bare`, though it writes other rows (ADR 0008)."""
    clock = CpuClock(server)
    rate = timed_drain(app, "recomind-profile", events, clock)
    return Figure(
        f"Kafka -> {name} (profile group)",
        rate,
        bare.base_name,
        bare.base_rate,
        events,
        clock.seconds,
        bare.base_cpu,
    )


def rows_of(world_actions: list) -> list[tuple]:  # type: ignore[type-arg]
    return [
        (a.id, a.user_id, a.video_id, a.action_type.value, a.timestamp, a.watch_ms)
        for a in world_actions
    ]


# The primary key and secondary indexes of `video_actions`, as the baselines' column lists
# (`timestamp` is `ts` there), so a shaped baseline has the real table's shape.
def _listed(columns: Iterable[sa.Column[Any]]) -> str:
    return ", ".join("ts" if c.name == "timestamp" else c.name for c in columns)


KEY = _listed(video_actions.primary_key.columns)
INDEXES = [_listed(ix.columns) for ix in sorted(video_actions.indexes, key=lambda ix: str(ix.name))]
SHAPE = "same key" + (
    f", {len(INDEXES)} index{'es' if len(INDEXES) > 1 else ''}" if INDEXES else ""
)


def copy_postgres(
    url: str,
    rows: list[tuple],  # type: ignore[type-arg]
    clock: CpuClock,
    table: str = "copy_baseline",
    shaped: bool = False,
) -> float:
    """A bare COPY into a table of the same columns with a primary key on id only, or,
    `shaped`, with the primary key and the secondary indexes of `video_actions`."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id text, user_id text, video_id text,"
            f" action_type text, ts timestamptz, watch_ms int,"
            f" primary key ({KEY if shaped else 'id'}))"
        )
        for columns in INDEXES if shaped else []:
            conn.execute(f"CREATE INDEX ON {table} ({columns})")
        conn.commit()
        with clock:
            start = time.perf_counter()
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            seconds = time.perf_counter() - start
        return len(rows) / seconds


def load_data_mariadb(
    url: str,
    rows: list[tuple],  # type: ignore[type-arg]
    folder: Path,
    clock: CpuClock,
    table: str = "load_baseline",
    shaped: bool = False,
) -> float:
    """A bare LOAD DATA into a table with a primary key on id only, or, `shaped`, with the
    primary key and the secondary indexes of `video_actions`."""
    path = folder / "rows.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        for r in rows:
            writer.writerow([r[0], r[1], r[2], r[3], r[4].strftime("%Y-%m-%d %H:%M:%S.%f"), r[5]])
    engine = sa.create_engine(url, connect_args={"local_infile": True})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (id varchar(36), user_id varchar(64),"
                " video_id varchar(64), action_type varchar(8), ts datetime(6), watch_ms int,"
                f" primary key ({KEY if shaped else 'id'}))"
            )
        )
        for i, columns in enumerate(INDEXES if shaped else []):
            conn.execute(sa.text(f"CREATE INDEX ix_{table}_{i} ON {table} ({columns})"))
    with clock:
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table}"
                    " FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\r\\n'"
                )
            )
        rate = len(rows) / (time.perf_counter() - start)
    engine.dispose()
    return rate


def parquet_to_s3(rows: list[tuple], prefix: str) -> float:  # type: ignore[type-arg]
    """rows/s of one Parquet object of the rows, written by the lake's own PUT (`S3Put`, its
    client made before the clock, as the sink's is by `ConsumerRunner.ready`)."""
    put = S3Put()
    put.connect()
    bucket_path = os.environ["RECOMIND_TEST_S3_URL"].removeprefix("s3://")
    start = time.perf_counter()
    table = pa.table(
        {
            name: [r[i] for r in rows]
            for i, name in enumerate(
                ("id", "user_id", "video_id", "action_type", "timestamp", "watch_ms")
            )
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    put(f"{bucket_path}/{prefix}/baseline.parquet", sink.getvalue())
    return len(rows) / (time.perf_counter() - start)


def warm_up_s3(writes: int = 20, rows: int = 1_000) -> None:
    """The lake's own writes (a LIST and a PUT each) under a prefix of their own, until the
    S3 server has warmed up; prints how long the first and the last took."""
    from recomind.adapters.lake import open_lake
    from recomind.domain.ports import LakeRecord

    lake = open_lake(f"{os.environ['RECOMIND_TEST_S3_URL']}/warm-up-{uuid.uuid4().hex[:8]}")
    lake.connect()
    now = datetime.now(UTC)  # one hour folder, as live traffic makes
    world = simulate(n_videos=200, n_users=50, actions_per_user=rows // 50, seed=3)
    actions = [dataclasses.replace(a, timestamp=now) for a in world.actions]
    took = []
    for w in range(writes):
        start = time.perf_counter()
        lake.write_actions([LakeRecord(0, w * rows + i, a) for i, a in enumerate(actions)])
        took.append(time.perf_counter() - start)
    print(
        f"S3 server warmed up: {writes} lake writes of {len(actions):,} rows, the first in"
        f" {took[0] * 1000:.0f} ms, the last in {took[-1] * 1000:.0f} ms"
    )


def post_batches(url: str, bodies: list[dict], size: int = 100, clients: int = 4) -> float:  # type: ignore[type-arg]
    batches = [bodies[i : i + size] for i in range(0, len(bodies), size)]
    with httpx.Client(timeout=60) as http:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for r in pool.map(lambda b: http.post(f"{url}/video_actions", json=b), batches):
                assert r.status_code == 202, r.text
        return len(bodies) / (time.perf_counter() - start)


def post_singles(url: str, bodies: list[dict], clients: int = 8) -> float:  # type: ignore[type-arg]
    with httpx.Client(timeout=60) as http:
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for r in pool.map(lambda b: http.post(f"{url}/video_action", json=b), bodies):
                assert r.status_code == 202, r.text
        return len(bodies) / (time.perf_counter() - start)


def measure(n: int) -> list[Figure]:
    """One run of every path and its baselines, on fresh topics, databases and lake prefixes;
    prints its table."""
    load_before = os.getloadavg()
    world = simulate(n_videos=2_000, n_users=max(50, n // 40), actions_per_user=40, seed=9)
    actions = world.actions[:n]
    n = len(actions)
    messages = [(a.user_id, VideoActionRecorded(a).to_json()) for a in actions]
    # Live traffic: no timestamp, so the API stamps each action with the time it arrives.
    bodies = [
        {
            "user_id": a.user_id,
            "video_id": a.video_id,
            "action_type": a.action_type.value,
            "watch_ms": a.watch_ms,
        }
        for a in actions
    ]
    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="recomind-bench-"))
    pg_url = fresh_database(os.environ["RECOMIND_TEST_POSTGRES_URL"])
    my_url = fresh_database(os.environ["RECOMIND_TEST_MYSQL_URL"])
    figures: list[Figure] = []

    # 1. API -> Kafka, beside the producer alone
    raw = raw_produce(messages, f"raw{run}.video_actions_stream")
    api_settings = settings(tmp / "api", pg_url, f"a{run}", f"a{run}")
    seeding = bootstrap(api_settings)
    seeding.catalog.add_videos(world.videos)
    seeding.close()
    env = {
        "RECOMIND_STORE_URL": pg_url,
        "RECOMIND_CACHE_URL": api_settings.cache_url,
        "RECOMIND_BUS_URL": str(api_settings.bus_url),
        "RECOMIND_LAKE_URL": str(api_settings.lake_url),
        "RECOMIND_EMBEDDED_WORKER": "false",
        "RECOMIND_S3_ENDPOINT_URL": os.environ.get("RECOMIND_S3_ENDPOINT_URL", ""),
    }
    api = RecoMindProcess(tmp / "api", "serve", env=env).start()
    try:
        batched = post_batches(api.url, bodies)
        singles = post_singles(api.url, bodies[: min(n, 3000)])
    finally:
        api.stop()
    figures.append(Figure("API -> Kafka (batches of 100)", batched, "producer alone", raw))
    figures.append(Figure("API -> Kafka (one action per request)", singles, "producer alone", raw))

    # 2. Kafka -> PostgreSQL, beside COPY (the API's events: n batched + the singles)
    pg = bootstrap(api_settings)
    total = n + min(n, 3000)
    sink, base = CpuClock("postgres"), CpuClock("postgres")
    rate = timed_drain(pg, "recomind-store", total, sink)
    base_rate = copy_postgres(pg_url, rows_of(actions), base)
    figures.append(
        Figure(
            "Kafka -> PostgreSQL (store group)", rate, "bare COPY", base_rate, total, sink.seconds
        )
    )
    figures[-1].base_cpu = base.seconds * total / n  # the same number of rows as the sink
    base = CpuClock("postgres")
    base_rate = copy_postgres(pg_url, rows_of(actions), base, "copy_shaped", shaped=True)
    figures.append(
        Figure(
            "Kafka -> PostgreSQL (store group)",
            rate,
            f"COPY, {SHAPE}",
            base_rate,
            total,
            sink.seconds,
        )
    )
    figures[-1].base_cpu = base.seconds * total / n
    figures.append(profile_figure(pg, "postgres", "PostgreSQL", total, bare=figures[-2]))
    # 4. Kafka -> lake, beside one Parquet object
    sink = CpuClock(None)  # the S3 server's CPU is not counted
    rate = timed_drain(pg, "recomind-lake", total, sink)
    figures.append(
        Figure(
            "Kafka -> lake (S3)",
            rate,
            "one Parquet PUT",
            parquet_to_s3(rows_of(actions), f"a{run}"),
            total,
            sink.seconds,
        )
    )
    pg.close()

    # 3. Kafka -> MariaDB, beside LOAD DATA (same events, own namespace)
    my_settings = settings(tmp / "my", my_url, f"m{run}", f"m{run}")
    my = bootstrap(my_settings)
    my.catalog.add_videos(world.videos)
    my.bus.publish(VIDEO_ACTIONS_TOPIC, messages)
    sink, base = CpuClock("mariadb"), CpuClock("mariadb")
    rate = timed_drain(my, "recomind-store", n, sink)
    base_rate = load_data_mariadb(my_url, rows_of(actions), tmp, base)
    figures.append(
        Figure("Kafka -> MariaDB (store group)", rate, "bare LOAD DATA", base_rate, n, sink.seconds)
    )
    figures[-1].base_cpu = base.seconds
    base = CpuClock("mariadb")
    base_rate = load_data_mariadb(my_url, rows_of(actions), tmp, base, "load_shaped", True)
    figures.append(
        Figure(
            "Kafka -> MariaDB (store group)",
            rate,
            f"LOAD DATA, {SHAPE}",
            base_rate,
            n,
            sink.seconds,
        )
    )
    figures[-1].base_cpu = base.seconds
    figures.append(profile_figure(my, "mariadb", "MariaDB", n, bare=figures[-2]))
    my.close()

    print(
        f"\n{n:,} events; {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; consumer"
        f" batch {my_settings.consumer_batch:,}; load average (1/5/15 min) at start"
        f" {'/'.join(f'{x:.1f}' for x in load_before)}, at end"
        f" {'/'.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("rows/CPU-s: rows per CPU-second of this process plus the database server's")
    print(
        f"{'path':40} {'rows/s':>9} {'rows/CPU-s':>10}   {'baseline':18} {'rows/s':>9}"
        f" {'rows/CPU-s':>10}  ratio  CPU ratio"
    )
    for f in figures:
        cpu_ratio = f"{f.base_cpu / f.cpu:.2f}" if f.cpu > 0 and f.base_cpu > 0 else "-"
        print(
            f"{f.path:40} {f.rate:>9,.0f} {f.per_cpu(f.cpu)}   {f.base_name:18}"
            f" {f.base_rate:>9,.0f} {f.per_cpu(f.base_cpu)}  {f.rate / f.base_rate:5.2f}"
            f"  {cpu_ratio:>9}"
        )
    return figures


def print_medians(runs: list[list[Figure]]) -> None:
    """Per path and baseline: the median over the runs of its rate, its baseline's and their
    ratio (each run's ratio is of one run's pair), with the ratios' range."""
    print(f"\nmedians of {len(runs)} runs (ratio: the median of the runs' ratios, and their range)")
    print(f"{'path':40} {'rows/s':>9}   {'baseline':18} {'rows/s':>9}  ratio  range")
    for same in zip(*runs, strict=True):
        f = same[0]
        ratios = [g.rate / g.base_rate for g in same]
        print(
            f"{f.path:40} {statistics.median(g.rate for g in same):>9,.0f}   {f.base_name:18}"
            f" {statistics.median(g.base_rate for g in same):>9,.0f}"
            f"  {statistics.median(ratios):5.2f}  {min(ratios):.2f}-{max(ratios):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat the whole measurement; print medians"
    )
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="drain without gc.freeze() first (as workers did before entrypoints/heap.py)",
    )
    args = parser.parse_args()
    global FREEZE
    FREEZE = not args.no_freeze
    missing = [v for v in NEEDED if not os.environ.get(v)]
    if missing:
        sys.exit(f"set {', '.join(missing)}: scripts/services/start.sh && . .services/env.sh")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    warm_up_s3()
    runs = [measure(args.events) for _ in range(args.runs)]
    if len(runs) > 1:
        print_medians(runs)


if __name__ == "__main__":
    main()
