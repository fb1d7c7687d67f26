"""A 202 survives anything short of losing the disk: restarts and SIGKILL lose nothing,
and nothing is applied twice."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from recomind.adapters.lake import open_lake
from recomind.adapters.store import open_store
from tests.integration.conftest import seeded
from tests.support.servers import RecoMindProcess


def _seeded_home(tmp_path: Path) -> Path:
    seeded(tmp_path).close()
    return tmp_path


def _wait_applied(url: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats: dict[str, object] = httpx.get(f"{url}/admin/stats", timeout=10).json()
        consumers = stats["consumers"]
        assert isinstance(consumers, dict)
        if all(c["lag"] == 0 for c in consumers.values()):
            return stats
        time.sleep(0.1)
    raise TimeoutError("consumers did not catch up")


def _stored_ids(home: Path, ids: set[str]) -> tuple[Counter[str], Counter[str]]:
    """How often each id is in the store and in the lake."""
    store = open_store(f"sqlite:///{home / 'recomind.db'}")
    try:
        in_store = Counter(a.id for batch in store.iter_actions() for a in batch if a.id in ids)
    finally:
        store.close()
    lake = open_lake(f"file://{home / 'lake'}")
    in_lake = Counter(a.id for a in lake.read_actions() if a.id in ids)
    return in_store, in_lake


def _post_actions(url: str, n: int) -> set[str]:
    ids: set[str] = set()
    with httpx.Client(base_url=url, timeout=10) as http:
        for i in range(n):
            r = http.post(
                "/video_action",
                json={
                    "user_id": f"d{i % 17}",
                    "video_id": f"v{i % 300 + 1}",
                    "action_type": ("view", "like", "skip")[i % 3],
                },
            )
            assert r.status_code == 202
            ids.add(r.json()["id"])
    return ids


def test_events_accepted_before_a_sigkill_are_applied_once_after_restart(tmp_path: Path) -> None:
    home = _seeded_home(tmp_path)
    # No consumers: the events exist only in the durable log when the process dies.
    api = RecoMindProcess(home, env={"RECOMIND_EMBEDDED_WORKER": "false"}).start()
    ids = _post_actions(api.url, 40)
    api.kill()

    server = RecoMindProcess(home).start()
    try:
        _wait_applied(server.url)
    finally:
        server.stop()
    in_store, in_lake = _stored_ids(home, ids)
    assert set(in_store) == ids and set(in_store.values()) == {1}
    assert set(in_lake) == ids and set(in_lake.values()) == {1}


def _post_batches(url: str, batches: int, size: int) -> set[str]:
    ids: set[str] = set()
    with httpx.Client(base_url=url, timeout=10) as http:
        for b in range(batches):
            batch = [
                {
                    "user_id": f"k{(b * size + i) % 23}",
                    "video_id": f"v{(b * size + i) % 300 + 1}",
                    "action_type": ("view", "like", "skip")[i % 3],
                }
                for i in range(size)
            ]
            r = http.post("/video_actions", json=batch)
            assert r.status_code == 202
            ids.update(r.json()["ids"])
    return ids


def test_sigkill_while_consuming_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    home = _seeded_home(tmp_path)
    server = RecoMindProcess(home).start()
    ids = _post_batches(server.url, 30, 100)
    lag = httpx.get(f"{server.url}/admin/stats").json()["consumers"]
    server.kill()
    # The kill really did land mid-stream: some events were still waiting to be applied.
    assert any(c["lag"] > 0 for c in lag.values()), lag

    server = RecoMindProcess(home).start()
    try:
        _wait_applied(server.url)
    finally:
        server.stop()
    in_store, in_lake = _stored_ids(home, ids)
    assert len(in_store) == 3000 and set(in_store.values()) == {1}
    assert len(in_lake) == 3000 and set(in_lake.values()) == {1}


def test_restart_keeps_data_model_and_feeds(tmp_path: Path) -> None:
    home = _seeded_home(tmp_path)
    server = RecoMindProcess(home).start()
    viewer = f"keep-{uuid.uuid4().hex[:6]}"
    httpx.post(
        f"{server.url}/video_action",
        json={"user_id": viewer, "video_id": "v5", "action_type": "like"},
    )
    before = _wait_applied(server.url)
    feed = httpx.get(f"{server.url}/recommendations/u1").json()
    server.stop()

    server = RecoMindProcess(home).start()
    try:
        after = _wait_applied(server.url)
        assert after["counts"] == before["counts"]
        assert after["lake_actions"] == before["lake_actions"]
        assert after["model"]["version"] == before["model"]["version"]  # type: ignore[index]
        r = httpx.get(f"{server.url}/recommendations/u1")
        assert r.headers["x-feed-source"] == "table" and r.json() == feed
        assert httpx.get(f"{server.url}/users/{viewer}").status_code == 200
    finally:
        server.stop()
