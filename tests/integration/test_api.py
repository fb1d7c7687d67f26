"""The HTTP API over real HTTP on embedded defaults: contracts, validation, no side effects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.integration.conftest import Served

FEED_KEYS = {"video_id", "title", "url", "tags"}


def _counts(s: Served) -> dict[str, int]:
    stats = s.http.get("/admin/stats").json()
    return {**stats["counts"], "lake": stats["lake_actions"]}


def test_trending_is_a_bare_array_in_the_seed_shape(served: Served) -> None:
    r = served.http.get("/trending")
    assert r.status_code == 200
    items = r.json()
    assert isinstance(items, list) and len(items) == 10
    assert all(set(i) == FEED_KEYS for i in items)
    assert len({i["video_id"] for i in items}) == 10
    assert len(served.http.get("/trending", params={"limit": 25}).json()) == 25


@pytest.mark.parametrize("limit", ["0", "101", "-3", "ten"])
def test_out_of_range_limit_is_a_problem(served: Served, limit: str) -> None:
    r = served.http.get("/trending", params={"limit": limit})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 422 and "limit" in r.json()["detail"]


def test_known_viewer_gets_a_personal_list_without_seen_videos(served: Served) -> None:
    seen = {a.video_id for a in served.recomind.store.user_actions("u1")}
    r = served.http.get("/recommendations/u1", params={"limit": 20})
    assert r.status_code == 200
    items = r.json()
    assert len(items) == 20 and all(set(i) == FEED_KEYS for i in items)
    assert not seen & {i["video_id"] for i in items}
    assert r.headers["x-feed-source"] in {"cache", "table", "computed"}
    assert items != served.http.get("/trending", params={"limit": 20}).json()


def test_unknown_viewer_gets_trending(served: Served) -> None:
    r = served.http.get("/recommendations/never-seen-viewer")
    assert r.headers["x-feed-source"] == "trending"
    assert r.json() == served.http.get("/trending").json()


def test_explain_adds_a_reason(served: Served) -> None:
    items = served.http.get("/recommendations/u2", params={"explain": "true"}).json()
    assert all(set(i) == FEED_KEYS | {"reason"} and i["reason"] for i in items)


def test_cursor_pages_through_the_list_without_repeats(served: Served) -> None:
    first = served.http.get("/recommendations/u3", params={"limit": 5})
    cursor = first.headers["x-next-cursor"]
    assert 'rel="next"' in first.headers["link"]
    second = served.http.get("/recommendations/u3", params={"limit": 5, "cursor": cursor})
    one = [i["video_id"] for i in first.json()]
    two = [i["video_id"] for i in second.json()]
    assert len(two) == 5 and not set(one) & set(two)
    assert served.http.get("/recommendations/u3", params={"cursor": "!!"}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "bad id", "video_id": "v1", "action_type": "like"},
        {"user_id": "x" * 65, "video_id": "v1", "action_type": "like"},
        {"user_id": "", "video_id": "v1", "action_type": "like"},
        {"user_id": "ok", "video_id": "v1", "action_type": "love"},
        {"user_id": "ok", "video_id": "no-such-video", "action_type": "like"},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "timestamp": "yesterday"},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "id": "not-a-uuid"},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "watch_ms": -5},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "watch_ms": 2**31},
        {"user_id": "ok", "video_id": "v1", "action_type": "like", "surprise": 1},
        {"user_id": "ok", "video_id": "v1"},
    ],
)
def test_bad_action_is_rejected_and_changes_nothing(
    served: Served, body: dict[str, object]
) -> None:
    before = _counts(served)
    lag_before = served.recomind.bus.lag("nobody", "video_actions_stream")
    r = served.http.post("/video_action", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]
    assert served.recomind.bus.lag("nobody", "video_actions_stream") == lag_before
    served.wait_applied()
    assert _counts(served) == before


def test_action_is_accepted_and_applied_once_even_if_retried(served: Served) -> None:
    event_id = str(uuid.uuid4())
    body = {"user_id": "retry-viewer", "video_id": "v7", "action_type": "like", "id": event_id}
    body["timestamp"] = datetime.now(UTC).isoformat()  # a client's retry resends its own time
    before = _counts(served)
    for _ in range(3):
        r = served.http.post("/video_action", json=body)
        assert r.status_code == 202 and r.json()["id"] == event_id
    served.wait_applied()
    after = _counts(served)
    assert after["video_actions"] == before["video_actions"] + 1
    assert after["lake"] == before["lake"] + 1  # the lake too keeps each event id once (ADR 0003)
    # the viewer was registered on their first action, with a profile from the liked tags
    user = served.http.get("/users/retry-viewer").json()
    video = served.http.get("/videos/v7").json()
    assert user["top_tags"] and set(user["top_tags"]) <= set(video["tags"])


def test_batch_of_actions(served: Served) -> None:
    batch = [
        {"user_id": f"batch-{i}", "video_id": f"v{i + 1}", "action_type": "view"} for i in range(50)
    ]
    before = _counts(served)
    r = served.http.post("/video_actions", json=batch)
    assert r.status_code == 202 and len(set(r.json()["ids"])) == 50
    served.wait_applied()
    assert _counts(served)["video_actions"] == before["video_actions"] + 50


def test_batch_with_one_bad_action_records_none(served: Served) -> None:
    before = _counts(served)
    batch = [
        {"user_id": "b", "video_id": "v1", "action_type": "view"},
        {"user_id": "b", "video_id": "v2", "action_type": "nope"},
    ]
    r = served.http.post("/video_actions", json=batch)
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 1
    too_many = [{"user_id": "b", "video_id": "v1", "action_type": "view"}] * 1001
    assert served.http.post("/video_actions", json=too_many).status_code == 422
    assert served.http.post("/video_actions", json=[]).status_code == 422
    served.wait_applied()
    assert _counts(served) == before


def test_users_and_videos(served: Served) -> None:
    r = served.http.post("/users", json={"user_id": "alice", "name": "Alice"})
    assert r.status_code == 201 and r.json()["name"] == "Alice"
    made = served.http.post("/users", json={"name": "No Id"}).json()
    assert uuid.UUID(made["user_id"])
    assert served.http.get("/users/nobody-here").status_code == 404
    assert served.http.get("/users/bad%20id").status_code == 422

    one = {
        "video_id": "new-1",
        "title": "Hello",
        "url": "https://x.example/1.mp4",
        "tags": ["#Funny", "funny", " Cats "],
    }
    assert served.http.post("/videos", json=one).json() == {"video_ids": ["new-1"]}
    assert served.http.get("/videos/new-1").json()["tags"] == ["funny", "cats"]
    many = [{**one, "video_id": f"new-{i}"} for i in range(2, 5)]
    assert served.http.post("/videos", json=many).status_code == 201
    assert served.http.get("/videos/new-4").status_code == 200
    assert served.http.get("/videos/missing").status_code == 404
    # a new video can be acted on at once
    ok = {"user_id": "alice", "video_id": "new-4", "action_type": "view"}
    assert served.http.post("/video_action", json=ok).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {"video_id": "nt", "url": "u"},  # no title
        {"video_id": "nt", "title": " ", "url": "u"},
        {"video_id": "bad id", "title": "t", "url": "u"},
        {"video_id": "nt", "title": "t", "url": "u", "tags": [f"t{i}" for i in range(33)]},
        [
            {"video_id": "dup", "title": "t", "url": "u"},
            {"video_id": "dup", "title": "t", "url": "u"},
        ],
    ],
)
def test_bad_video_is_rejected_and_stores_nothing(served: Served, body: object) -> None:
    before = _counts(served)["videos"]
    r = served.http.post("/videos", json=body)
    assert r.status_code == 422, r.text
    assert _counts(served)["videos"] == before


def test_similar_videos(served: Served) -> None:
    items = served.http.get("/videos/v1/similar", params={"limit": 5}).json()
    assert 0 < len(items) <= 5 and "v1" not in {i["video_id"] for i in items}
    assert served.http.get("/videos/missing/similar").status_code == 404


def test_health_ready_stats_and_retrain(served: Served) -> None:
    assert served.http.get("/health").json() == {"status": "ok"}
    assert served.http.get("/ready").json()["status"] == "ready"
    before = served.http.get("/admin/stats").json()["model"]["version"]
    r = served.http.post("/admin/retrain")
    assert r.status_code == 200 and r.json()["version"] > before
    assert served.http.get("/admin/stats").json()["model"]["version"] == r.json()["version"]
    assert served.http.get("/openapi.json").json()["paths"]["/video_action"]


def test_profile_is_cached_and_follows_new_actions(served: Served) -> None:
    viewer = f"profile-{uuid.uuid4().hex[:6]}"
    cats = served.http.get("/videos/v9").json()["tags"]
    served.http.post(
        "/video_action", json={"user_id": viewer, "video_id": "v9", "action_type": "like"}
    )
    served.wait_applied()
    first = served.http.get(f"/users/{viewer}").json()["top_tags"]
    assert first and set(first) <= set(cats)
    assert served.recomind.cache.get(f"user_profile:{viewer}") is not None
    # a newer, stronger interest replaces the cached profile at once
    other = next(
        v
        for v in (f"v{i}" for i in range(10, 300))
        if not set(served.http.get(f"/videos/{v}").json()["tags"]) & set(cats)
    )
    for _ in range(3):
        served.http.post(
            "/video_action", json={"user_id": viewer, "video_id": other, "action_type": "like"}
        )
    served.wait_applied()
    after = served.http.get(f"/users/{viewer}").json()["top_tags"]
    assert set(after[:1]) <= set(served.http.get(f"/videos/{other}").json()["tags"])


def test_event_for_a_video_the_store_does_not_have_is_dead_lettered(served: Served) -> None:
    # Ingest lets actions through unverified while the store is down; the consumer refuses them.
    from recomind.domain.events import DEAD_LETTER_TOPIC, VIDEO_ACTIONS_TOPIC, VideoActionRecorded
    from recomind.services.ingest import ActionRequest, to_action

    action = to_action(ActionRequest("ghost-viewer", "ghost-video", "like"))
    before = _counts(served)
    served.recomind.bus.publish(
        VIDEO_ACTIONS_TOPIC, [(action.user_id, VideoActionRecorded(action).to_json())]
    )
    served.wait_applied()
    assert _counts(served)["video_actions"] == before["video_actions"]
    dlq = served.recomind.bus.subscribe("test-dlq-reader", DEAD_LETTER_TOPIC)
    reasons = [r.value for r in dlq.poll(1000, 2.0)]
    assert any(b"ghost-video" in r and b"unknown video" in r for r in reasons)
