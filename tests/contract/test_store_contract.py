"""The Store port's shared suite: every backend (SQLite, PostgreSQL, MariaDB/MySQL) passes it.

SQLite runs always, on a fresh file per test. A server runs when its URL is set
(RECOMIND_TEST_POSTGRES_URL, RECOMIND_TEST_MYSQL_URL); its tables are emptied
before and after each test so tests stay independent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from recomind.adapters.store import open_store
from recomind.domain import scoring
from recomind.domain.model import (
    ActionType,
    Engagement,
    PopularityScore,
    ScoredVideo,
    StoredRecommendations,
    TagWeight,
    User,
    UserProfile,
    Video,
    VideoAction,
)
from recomind.domain.ports import Store
from recomind.services.consume import ConsumerGroup, Effects

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def _server(name: str, env_var: str) -> object:
    return pytest.param(
        env_var,
        id=name,
        marks=pytest.mark.skipif(not os.environ.get(env_var), reason=f"{env_var} is not set"),
    )


def _empty_tables(store: Store) -> None:
    """Servers are shared between runs: start and leave every table empty."""
    from recomind.adapters.store import schema

    engine = store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(
    params=[
        pytest.param(None, id="sqlite"),
        _server("postgresql", "RECOMIND_TEST_POSTGRES_URL"),
        _server("mysql", "RECOMIND_TEST_MYSQL_URL"),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    env_var = request.param
    url = f"sqlite:///{tmp_path / 'store.db'}" if env_var is None else os.environ[env_var]
    opened = open_store(url)
    if env_var is not None:
        _empty_tables(opened)
    try:
        yield opened
    finally:
        if env_var is not None:
            _empty_tables(opened)
        opened.close()


def action(
    n: int,
    user: str = "u1",
    video: str = "v1",
    kind: ActionType = ActionType.VIEW,
    at: datetime = T0,
    watch_ms: int | None = None,
) -> VideoAction:
    return VideoAction(f"00000000-0000-4000-8000-{n:012d}", user, video, kind, at, watch_ms)


def video(video_id: str, tags: tuple[str, ...] = ("cats",), **changes: object) -> Video:
    fields: dict[str, object] = {
        "video_id": video_id,
        "title": f"Title of {video_id}",
        "url": f"https://cdn.example/{video_id}.mp4",
        "tags": tags,
        "creator_id": "c1",
        "created_at": T0,
        "duration_ms": 15_000,
    }
    fields.update(changes)
    return Video(**fields)  # type: ignore[arg-type]


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- users and videos ---------------------------------------------------------------


def test_users_round_trip_with_aware_utc_timestamps(store: Store) -> None:
    joined = datetime(2024, 3, 1, 14, 30, 5, tzinfo=PLUS_TWO)
    assert store.add_users([User("u1", "Ada", joined), User("u2", None, T0)]) == 2

    got = store.get_user("u1")
    assert got is not None
    assert (got.user_id, got.name) == ("u1", "Ada")
    assert got.created_at == joined
    assert_utc(got.created_at)
    assert store.get_user("u2") == User("u2", None, T0)
    assert store.get_user("nobody") is None
    assert store.existing_user_ids(["u1", "u2", "u3"]) == {"u1", "u2"}


def test_adding_a_user_again_updates_the_name(store: Store) -> None:
    store.add_users([User("u1", "Ada", T0)])
    store.add_users([User("u1", "Ada L.", T0)])

    got = store.get_user("u1")
    assert got is not None and got.name == "Ada L."
    assert store.counts()["users"] == 1


def test_videos_round_trip_with_tags_in_order(store: Store) -> None:
    made = datetime(2024, 2, 29, 23, 59, 59, tzinfo=PLUS_TWO)
    stored = video("v1", tags=("zeta", "alpha", "mid"), created_at=made)
    untagged = video("v2", tags=(), creator_id=None, duration_ms=None)
    assert store.add_videos([stored, untagged]) == 2

    got = store.get_video("v1")
    assert got == stored
    assert got is not None
    assert got.tags == ("zeta", "alpha", "mid")
    assert_utc(got.created_at)
    assert store.get_video("v2") == untagged
    assert store.get_video("missing") is None
    assert store.get_videos(["v2", "missing", "v1"]) == {"v1": stored, "v2": untagged}
    assert store.existing_video_ids(["v1", "v9"]) == {"v1"}
    assert store.all_video_ids() == {"v1", "v2"}


def test_adding_a_video_again_updates_it(store: Store) -> None:
    store.add_videos([video("v1", tags=("cats",))])
    store.add_videos([video("v1", tags=("dogs", "cute"), title="New title")])

    got = store.get_video("v1")
    assert got is not None
    assert (got.title, got.tags) == ("New title", ("dogs", "cute"))
    assert store.counts()["videos"] == 1


def test_all_videos_lists_the_catalog_by_id(store: Store) -> None:
    store.add_videos([video("v3"), video("v1"), video("v2")])
    assert [v.video_id for v in store.all_videos()] == ["v1", "v2", "v3"]


# -- actions ---------------------------------------------------------------------------


def test_insert_new_actions_is_idempotent_on_event_id(store: Store) -> None:
    batch = [action(1), action(2, video="v2", kind=ActionType.LIKE, watch_ms=900)]
    with store.transaction() as tx:
        assert tx.insert_new_actions(batch) == batch
    with store.transaction() as tx:
        assert tx.insert_new_actions(batch) == []

    assert store.count_actions() == 2
    assert store.user_actions("u1") == batch


def test_insert_new_actions_returns_only_the_unseen_ones(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_new_actions([action(1)])
    with store.transaction() as tx:
        assert tx.insert_new_actions([action(1), action(2)]) == [action(2)]
    assert store.count_actions() == 2


def test_a_duplicate_inside_one_batch_is_stored_once(store: Store) -> None:
    with store.transaction() as tx:
        inserted = tx.insert_new_actions([action(1), action(1), action(2)])
    assert sorted(a.id for a in inserted) == [action(1).id, action(2).id]
    assert store.count_actions() == 2


def test_a_transaction_that_raises_rolls_everything_back(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        tx.insert_new_actions([action(1), action(2)])
        tx.ensure_users(["u1"], T0)
        tx.upsert_popularity([PopularityScore("v1", 4.0, T0)])
        tx.upsert_tag_weights([TagWeight("u1", "cats", 2.0, T0)])
        tx.upsert_profiles([UserProfile("u1", ("cats",), T0)])
        raise RuntimeError("boom")

    assert store.count_actions() == 0
    assert store.user_actions("u1") == []
    assert store.get_user("u1") is None
    assert store.top_popularity(10) == []
    assert store.tag_weights("u1") == []
    assert store.get_profile("u1") is None
    # and the same event can still be recorded afterwards
    with store.transaction() as tx:
        assert tx.insert_new_actions([action(1)]) == [action(1)]


def test_action_timestamps_come_back_aware_utc(store: Store) -> None:
    local = datetime(2024, 3, 1, 14, 0, 0, tzinfo=PLUS_TWO)
    store.bulk_insert_actions([action(1, at=local)])
    (got,) = store.user_actions("u1")
    assert got.timestamp == local
    assert_utc(got.timestamp)


def test_action_timestamps_keep_microseconds(store: Store) -> None:
    precise = T0.replace(microsecond=123456)
    store.bulk_insert_actions([action(1, at=precise)])
    (got,) = store.user_actions("u1")
    assert got.timestamp == precise


def test_bulk_insert_actions_skips_known_ids_and_creates_their_viewers(store: Store) -> None:
    store.add_users([User("u1", "Ada", T0)])
    first = [action(1, user="u1"), action(2, user="u2", at=T0 + timedelta(hours=1))]
    assert store.bulk_insert_actions(first) == first
    assert store.bulk_insert_actions([*first, action(3, user="u3")]) == [action(3, user="u3")]

    assert store.existing_user_ids(["u1", "u2", "u3"]) == {"u1", "u2", "u3"}
    ada = store.get_user("u1")
    assert ada is not None and ada.name == "Ada"  # an existing viewer is left as it was


def test_ensure_users_never_overwrites_a_viewer(store: Store) -> None:
    store.add_users([User("u1", "Ada", T0)])
    with store.transaction() as tx:
        tx.ensure_users(["u1", "u2", "u2"], T0 + timedelta(days=1))
    assert store.get_user("u1") == User("u1", "Ada", T0)
    assert store.get_user("u2") == User("u2", None, T0 + timedelta(days=1))


def test_user_actions_are_oldest_first_and_only_that_viewers(store: Store) -> None:
    late = action(1, at=T0 + timedelta(minutes=5))
    early = action(2, at=T0)
    other = action(3, user="u2")
    store.bulk_insert_actions([late, other, early])
    assert store.user_actions("u1") == [early, late]
    assert store.user_actions("nobody") == []


def test_iter_actions_yields_everything_in_time_order_in_batches(store: Store) -> None:
    times = [5, 1, 4, 1, 3, 0, 2]  # two actions share an instant: then ordered by id
    actions = [action(n, at=T0 + timedelta(seconds=s)) for n, s in enumerate(times)]
    store.bulk_insert_actions(actions)

    batches = list(store.iter_actions(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [a for b in batches for a in b]
    assert flat == sorted(actions, key=lambda a: (a.timestamp, a.id))


def test_iter_actions_on_an_empty_store_yields_nothing(store: Store) -> None:
    assert [a for batch in store.iter_actions(batch_size=10) for a in batch] == []
    assert store.count_actions() == 0


# -- popularity, tag weights, profiles --------------------------------------------------


def test_popularity_upserts_and_top_list(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert_popularity([PopularityScore("v1", 1.0, T0), PopularityScore("v2", 5.0, T0)])
    later = T0 + timedelta(hours=1)
    with store.transaction() as tx:
        assert tx.popularity_of(["v1", "v9"]) == {"v1": PopularityScore("v1", 1.0, T0)}
        tx.upsert_popularity([PopularityScore("v1", 7.5, later), PopularityScore("v3", 2.0, T0)])

    top = store.top_popularity(10)
    assert top == [
        PopularityScore("v1", 7.5, later),
        PopularityScore("v2", 5.0, T0),
        PopularityScore("v3", 2.0, T0),
    ]
    for row in top:
        assert_utc(row.last_updated)
    assert [p.video_id for p in store.top_popularity(2)] == ["v1", "v2"]
    assert store.counts()["video_popularity"] == 3


def test_tag_weights_upsert_per_viewer_and_tag(store: Store) -> None:
    later = T0 + timedelta(hours=2)
    with store.transaction() as tx:
        tx.upsert_tag_weights(
            [
                TagWeight("u1", "cats", 2.0, T0),
                TagWeight("u1", "dogs", -1.0, T0),
                TagWeight("u2", "cats", 0.5, T0),
            ]
        )
    with store.transaction() as tx:
        tx.upsert_tag_weights([TagWeight("u1", "cats", 3.5, later)])
        assert tx.tag_weights_of(["u1"]) == {
            ("u1", "cats"): TagWeight("u1", "cats", 3.5, later),
            ("u1", "dogs"): TagWeight("u1", "dogs", -1.0, T0),
        }

    assert sorted(store.tag_weights("u2"), key=lambda w: w.tag) == [
        TagWeight("u2", "cats", 0.5, T0)
    ]
    assert store.tag_weights("nobody") == []


def test_profiles_upsert(store: Store) -> None:
    with store.transaction() as tx:
        tx.upsert_profiles([UserProfile("u1", ("cats", "dogs"), T0)])
    with store.transaction() as tx:
        tx.upsert_profiles([UserProfile("u1", ("music",), T0 + timedelta(hours=1))])

    profile = store.get_profile("u1")
    assert profile == UserProfile("u1", ("music",), T0 + timedelta(hours=1))
    assert profile is not None
    assert_utc(profile.updated_at)
    assert store.get_profile("u2") is None
    assert store.counts()["user_profiles"] == 1


# Weights added to what is stored: out of order, repeated keys, one earlier than the stored
# instant, a negative one, and a tag that two videos share.
ADDED = [
    Engagement("u1", "v1", 1.0, T0 + timedelta(hours=5)),
    Engagement("u1", "v1", 3.0, T0 + timedelta(hours=1, microseconds=250)),
    Engagement("u1", "v2", -1.0, T0 + timedelta(hours=7)),
    Engagement("u2", "v1", 1.0, T0 - timedelta(hours=30)),
    Engagement("u2", "v3", 3.0, T0 + timedelta(hours=2)),
    Engagement("u3", "v-gone", 1.0, T0),  # a video not in the catalog: popularity only
]
TAGS = {"v1": ("cats", "cute"), "v2": ("cats", "dogs"), "v3": ("Émile", "dogs")}
# MariaDB/MySQL keep scores and weights in FLOAT columns (single precision), which they send
# as text with 6 significant digits.
CLOSE = 1e-5


def test_added_weights_match_the_domain_sums(store: Store) -> None:
    store.add_videos([video(v, tags=tags) for v, tags in TAGS.items()])
    stored_pop = [PopularityScore("v1", 10.0, T0), PopularityScore("v2", 2.0, T0)]
    stored_tags = [TagWeight("u1", "cats", 4.0, T0), TagWeight("u2", "dogs", -2.0, T0)]
    with store.transaction() as tx:
        tx.upsert_popularity(stored_pop)
        tx.upsert_tag_weights(stored_tags)
    with store.transaction() as tx:
        tx.add_to_popularity(ADDED, 48.0)
        tx.add_to_tag_weights(ADDED, 336.0)

    want_pop = {p.video_id: p for p in stored_pop}
    want_pop.update(scoring.add_to_popularity(want_pop, ADDED, 48.0))
    got_pop = {p.video_id: p for p in store.top_popularity(10)}
    assert got_pop.keys() == want_pop.keys()
    for key, want in want_pop.items():
        assert got_pop[key].score == pytest.approx(want.score, rel=CLOSE), key
        assert got_pop[key].last_updated == want.last_updated, key

    current = {(w.user_id, w.tag): w for w in stored_tags}
    want_tags = {**current, **scoring.add_to_tag_weights(current, ADDED, TAGS, 336.0)}
    got_tags = {(w.user_id, w.tag): w for u in ("u1", "u2", "u3") for w in store.tag_weights(u)}
    assert got_tags.keys() == want_tags.keys()
    for key, want_w in want_tags.items():
        assert got_tags[key].weight == pytest.approx(want_w.weight, rel=CLOSE), key
        assert got_tags[key].updated_at == want_w.updated_at, key


@pytest.mark.parametrize("half_lives", [400, 800])
def test_a_batch_spanning_many_half_lives_keeps_each_keys_sum(
    store: Store, half_lives: int
) -> None:
    """Each key's sum is at its own latest instant, however far the batch's other weights
    are: the servers take the sums from the batch's latest instant while it spans at most
    `engagement_sql.SPAN_LIMIT` half-lives (400), and by each key's latest instant beyond
    (800: from the batch's latest, the old key's weights would fall under 2^-700, as 0)."""
    store.add_videos([video("v-old", tags=("old",)), video("v-new", tags=("new",))])
    half_life = 1.0
    long_ago = T0 - timedelta(hours=half_lives * half_life)
    added = [
        Engagement("u1", "v-old", 2.0, long_ago),
        Engagement("u1", "v-old", 1.0, long_ago + timedelta(minutes=30)),
        Engagement("u1", "v-new", 5.0, T0),
    ]
    with store.transaction() as tx:
        tx.add_to_popularity(added, half_life)
        tx.add_to_tag_weights(added, half_life)

    want_pop = scoring.add_to_popularity({}, added, half_life)
    got_pop = {p.video_id: p for p in store.top_popularity(10)}
    assert got_pop["v-old"].score == pytest.approx(want_pop["v-old"].score, rel=CLOSE)
    assert got_pop["v-old"].score == pytest.approx(1.0 + 2.0 * 2**-0.5, rel=CLOSE)
    assert got_pop["v-old"].last_updated == long_ago + timedelta(minutes=30)
    assert got_pop["v-new"] == PopularityScore("v-new", 5.0, T0)
    got_tags = {w.tag: w for w in store.tag_weights("u1")}
    assert got_tags["old"].weight == pytest.approx(1.0 + 2.0 * 2**-0.5, rel=CLOSE)
    assert got_tags["new"].weight == pytest.approx(5.0, rel=CLOSE)


def test_tags_with_tabs_backslashes_and_line_breaks_keep_their_weights(store: Store) -> None:
    """Tags are free text: the bulk paths that carry them as delimited text keep them whole."""
    odd = ("tab\there", "back\\slash", "line\nbreak", "quote'\"s", "Émile")
    store.add_videos([video("v1", tags=odd)])
    with store.transaction() as tx:
        tx.add_to_tag_weights([Engagement("u1", "v1", 3.0, T0)], 336.0)
    assert {w.tag: w.weight for w in store.tag_weights("u1")} == pytest.approx(
        {tag: 3.0 for tag in odd}, rel=CLOSE
    )


def test_a_score_decayed_past_what_a_float_holds_counts_as_zero(store: Store) -> None:
    store.add_videos([video("v1", tags=("cats",))])
    ancient = T0 - timedelta(days=365 * 30)  # about 5,500 half-lives of two days
    with store.transaction() as tx:
        tx.upsert_popularity([PopularityScore("v1", 1e-5, ancient)])
        tx.upsert_tag_weights([TagWeight("u1", "cats", 1e-5, ancient)])
    with store.transaction() as tx:
        tx.add_to_popularity([Engagement("u1", "v1", 2.0, T0)], 48.0)
        tx.add_to_tag_weights([Engagement("u1", "v1", 2.0, T0)], 48.0)
    assert store.top_popularity(1) == [PopularityScore("v1", 2.0, T0)]
    assert store.tag_weights("u1") == [TagWeight("u1", "cats", 2.0, T0)]


def test_refresh_top_tags_keeps_the_strongest_positive_tags(store: Store) -> None:
    weights = [
        *(TagWeight("u1", f"t{n}", float(n), T0) for n in range(1, 8)),
        TagWeight("u1", "B", 7.0, T0),  # ties with t7: by code point, "B" < "t7"
        TagWeight("u1", "a", 7.0, T0),  # and "B" < "a"
        TagWeight("u1", "neg", -9.0, T0),
        TagWeight("u2", "neg", -1.0, T0),  # no positive tag: an empty profile
    ]
    later = T0 + timedelta(hours=3)
    with store.transaction() as tx:
        tx.upsert_tag_weights(weights)
        tx.upsert_profiles([UserProfile("u2", ("old",), T0)])
        tx.refresh_top_tags(["u1", "u2", "u3"], later)

    mine = [w for w in weights if w.user_id == "u1"]
    assert scoring.top_tags(mine) == ("B", "a", "t7", "t6", "t5")
    assert store.get_profile("u1") == UserProfile("u1", ("B", "a", "t7", "t6", "t5"), later)
    assert store.get_profile("u2") == UserProfile("u2", (), later)
    assert store.get_profile("u3") == UserProfile("u3", (), later)


def test_video_tags_inside_a_transaction(store: Store) -> None:
    store.add_videos([video("v1", tags=("b", "a")), video("v2", tags=())])
    with store.transaction() as tx:
        assert tx.video_tags(["v1", "v2", "v9"]) == {"v1": ("b", "a"), "v2": ()}


def test_known_videos_are_those_of_the_catalog_in_any_number(store: Store) -> None:
    """All known (the count alone answers), some not (the ids are read), none asked, and more
    ids than one IN list holds on MariaDB (5,000)."""
    store.add_videos([video(f"v{i}") for i in range(6000)])
    with store.transaction() as tx:
        assert tx.known_videos(["v1", "v2", "v1"]) == {"v1", "v2"}
        assert tx.known_videos(["v1", "v9999", "nope"]) == {"v1"}
        assert tx.known_videos([]) == set()
        many = [f"v{i}" for i in range(0, 12000, 2)]
        assert tx.known_videos(many) == {f"v{i}" for i in range(0, 6000, 2)}
        assert tx.known_videos(many[:3000]) == set(many[:3000])
        every = [f"v{i}" for i in range(6000)]
        assert tx.known_videos(every) == set(every)


def test_known_videos_match_ids_exactly_whatever_the_collation(store: Store) -> None:
    """MariaDB compares these columns case-insensitively: `abc` must not pass for `ABC`."""
    store.add_videos([video("ABC"), video("x.y")])
    with store.transaction() as tx:
        assert tx.known_videos(["abc"]) == set()
        assert tx.known_videos(["abc", "x.y"]) == {"x.y"}
        assert tx.known_videos(["ABC", "x.y"]) == {"ABC", "x.y"}


# -- stored recommendations and counts --------------------------------------------------


def test_recommendations_save_get_delete(store: Store) -> None:
    items = (
        ScoredVideo("v2", 0.9, "because you liked #cats"),
        ScoredVideo("v7", 0.5, None),
        ScoredVideo("v1", 0.25, "trending now"),
    )
    made = datetime(2024, 3, 1, 13, 0, tzinfo=PLUS_TWO)
    stored = StoredRecommendations("u1", items, "hybrid-7", made)
    store.save_recommendations([stored, StoredRecommendations("u2", (), "hybrid-7", T0)])

    got = store.get_recommendations("u1")
    assert got == stored
    assert got is not None
    assert_utc(got.generated_at)
    assert store.get_recommendations("u2") == StoredRecommendations("u2", (), "hybrid-7", T0)

    newer = StoredRecommendations("u1", items[:1], "hybrid-8", T0 + timedelta(hours=1))
    store.save_recommendations([newer])
    assert store.get_recommendations("u1") == newer

    store.delete_recommendations("u1")
    assert store.get_recommendations("u1") is None
    assert store.get_recommendations("u2") is not None
    store.delete_recommendations("never-had-any")


def test_counts_reports_every_table(store: Store) -> None:
    assert store.counts() == {
        "users": 0,
        "videos": 0,
        "video_actions": 0,
        "user_profiles": 0,
        "video_popularity": 0,
        "recommendations": 0,
    }
    store.add_videos([video("v1"), video("v2")])
    store.bulk_insert_actions([action(1, user="u1"), action(2, user="u2"), action(3)])
    store.save_recommendations([StoredRecommendations("u1", (), "m", T0)])

    counts = store.counts()
    assert counts["videos"] == 2
    assert counts["video_actions"] == 3
    assert counts["users"] == 2
    assert counts["recommendations"] == 1


def test_ping(store: Store) -> None:
    store.ping()


def test_open_connections_leaves_as_many_pooled_for_a_consumers_threads(store: Store) -> None:
    import sqlalchemy as sa

    opened: list[object] = []
    sa.event.listen(store.engine, "connect", lambda *_: opened.append(1))  # type: ignore[attr-defined]
    store.open_connections(2)
    assert len(opened) <= 2  # the pool may have held one already
    before = len(opened)
    # The store group's two threads, each in a transaction at once: no new session.
    with store.transaction(), store.transaction():
        pass
    assert len(opened) == before


# -- bulk writes: awkward text, and batches larger than one statement -------------------

AWKWARD = "it's a \"quote\", a back\\slash \\' \\\\, a\nnew line, \x1a, 100% _like_ and é🎬"
AWKWARD_TAG = "it's \"q\" \\ \\' \n\x1a 100% é🎬"  # tags are at most 64 characters


def test_awkward_text_round_trips_through_every_bulk_write(store: Store) -> None:
    """Quotes, backslashes, control characters and non-ASCII survive the literal and array
    encodings the server stores use for batches."""
    store.add_users([User("u1", AWKWARD, T0)])
    store.add_videos([video("v1", tags=(AWKWARD_TAG, "cats"), title=AWKWARD, url=AWKWARD)])
    weight = TagWeight("u1", AWKWARD_TAG, 1.5, T0)
    with store.transaction() as tx:
        tx.upsert_tag_weights([weight])
        tx.upsert_profiles([UserProfile("u1", (AWKWARD_TAG, "cats"), T0)])
        assert tx.video_tags(["v1"]) == {"v1": (AWKWARD_TAG, "cats")}
        assert tx.tag_weights_of(["u1"]) == {("u1", AWKWARD_TAG): weight}

    user = store.get_user("u1")
    assert user is not None and user.name == AWKWARD
    stored = store.get_video("v1")
    assert stored is not None and (stored.title, stored.url) == (AWKWARD, AWKWARD)
    assert store.get_profile("u1") == UserProfile("u1", (AWKWARD_TAG, "cats"), T0)


def test_large_batches_write_and_read_every_row(store: Store) -> None:
    """More rows than one IN list or one multi-row statement holds: nothing is lost or doubled,
    and a replay of the same batch inserts nothing."""
    n = 12_000
    at = T0.astimezone(PLUS_TWO)
    actions = [
        action(i, user=f"u{i % 700}", video=f"v{i % 3000}", at=at + timedelta(microseconds=i))
        for i in range(n)
    ]
    with store.transaction() as tx:
        assert len(tx.insert_new_actions(actions)) == n
        tx.upsert_popularity(PopularityScore(f"v{i}", i / 7, at) for i in range(n))
    with store.transaction() as tx:
        assert tx.insert_new_actions(actions) == []
        scores = tx.popularity_of(f"v{i}" for i in range(0, n, 2))
    assert len(scores) == n // 2
    assert scores["v14"] == PopularityScore("v14", 2.0, T0)
    assert store.count_actions() == n
    assert store.user_actions("u5")[0] == actions[5]


def test_added_weights_roll_back_with_their_transaction(store: Store) -> None:
    store.add_videos([video("v1", tags=("cats",))])
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as tx:
        tx.add_to_popularity([Engagement("u1", "v1", 3.0, T0)], 48.0)
        tx.add_to_tag_weights([Engagement("u1", "v1", 3.0, T0)], 48.0)
        tx.refresh_top_tags(["u1"], T0)
        raise RuntimeError("boom")
    assert store.top_popularity(10) == []
    assert store.tag_weights("u1") == []
    assert store.get_profile("u1") is None


def store_group_effects(store: Store, tmp_path: Path) -> tuple[Effects, ConsumerGroup]:
    """The `recomind-profile` group's handlers and their effects on this store, with the TAGS
    catalog loaded (popularity half-life 48 h, tag affinity 336 h); `store_new_actions` runs
    them after the insert, as `recomind import` does."""
    from recomind.adapters.cache.memory import MemoryCache
    from recomind.adapters.lake import open_lake
    from recomind.domain.model import ActionWeights
    from recomind.services.consume import EVENT_HANDLERS

    store.add_videos([video(v, tags=tags) for v, tags in TAGS.items()])
    lake = open_lake(f"file://{tmp_path / 'lake'}")
    fx = Effects(store, MemoryCache(), lake, ActionWeights(), 48.0, 336.0)
    return fx, EVENT_HANDLERS["recomind-profile"]


# -- the store group: actions in bulk, from the bus's columns -------------------------------


def columns(actions: list[VideoAction]) -> object:
    from recomind.domain.event_columns import columns_of

    return columns_of(actions)


@pytest.mark.parametrize("ahead", [False, True], ids=["columns", "encoded-ahead"])
def test_action_columns_are_stored_once_per_id_with_their_values(store: Store, ahead: bool) -> None:
    """The store group's bulk write: microseconds, a missing `watch_ms` and a time given in
    another zone survive it; an id the batch repeats is stored once (the first copy); a replay
    mixing stored and new ids stores only the new ones and returns exactly those rows. The
    same whether the columns are given as they are or encoded ahead (`Store.bulk_actions`)."""
    from recomind.domain.event_columns import actions_of

    def ready(actions: list[VideoAction]) -> object:
        table = columns(actions)
        return store.bulk_actions(table) if ahead else table  # type: ignore[arg-type]

    first = [
        action(1, kind=ActionType.LIKE, at=T0.replace(microsecond=123456), watch_ms=4_200),
        action(2, video="v2", kind=ActionType.SKIP, at=datetime(2024, 3, 1, 15, tzinfo=PLUS_TWO)),
        action(3, user="u2", watch_ms=0),
    ]
    changed_copy = action(1, video="v9", at=T0 + timedelta(days=1))
    with store.transaction() as tx:
        new = tx.insert_new_action_columns(ready([*first, changed_copy]))
    assert actions_of(new) == first
    later = [action(4, user="u2", at=T0 + timedelta(hours=1), watch_ms=None), action(5)]
    with store.transaction() as tx:
        new = tx.insert_new_action_columns(ready([first[2], later[0], first[0], later[1]]))
    assert actions_of(new) == later
    with store.transaction() as tx:
        assert tx.insert_new_action_columns(ready([*first, *later])).num_rows == 0

    assert store.count_actions() == 5
    assert store.user_actions("u1") == sorted(
        [first[0], first[1], later[1]], key=lambda a: (a.timestamp, a.id)
    )
    assert store.user_actions("u2") == [first[2], later[0]]
    for got in store.user_actions("u1"):
        assert_utc(got.timestamp)


@pytest.mark.parametrize("write", ["rows", "columns"])
def test_an_id_sent_for_two_viewers_is_one_action_of_each(store: Store, write: str) -> None:
    """Actions are keyed by viewer and id (ADR 0011). A replay of an event carries its viewer,
    so it is stored once; one id sent for two viewers' actions (a client's mistake) is an
    action of each, whether the two come in one batch or in two, by either write."""
    from recomind.domain.event_columns import actions_of

    def insert(actions: list[VideoAction]) -> list[VideoAction]:
        with store.transaction() as tx:
            if write == "rows":
                return tx.insert_new_actions(actions)
            return actions_of(tx.insert_new_action_columns(columns(actions)))

    mine = action(1)
    theirs = action(1, user="u2", video="v2", watch_ms=9)
    assert insert([mine, theirs, mine]) == [mine, theirs]
    later = action(1, user="u3")
    assert insert([theirs, later, mine, action(2)]) == [later, action(2)]
    assert insert([later, theirs]) == []

    assert store.count_actions() == 4
    assert store.user_actions("u2") == [theirs]
    assert store.user_actions("u3") == [later]
    assert [a.id for a in store.user_actions("u1")] == [mine.id, action(2).id]


def test_stored_actions_are_looked_up_by_their_key_not_by_a_scan(store: Store) -> None:
    """A replay's stored actions are found by the key, a search per key, not by reading the
    whole table. SQLite's and PostgreSQL's plans of the lookup search the key with both its
    columns (PostgreSQL's with sequential scans priced out, as on a large table); and by
    either write the server reads no run of rows: no sequential scan on PostgreSQL, and on
    MariaDB this session's reads of next rows stay under a fifth of the table's."""
    from recomind.adapters.store import pg_bulk
    from recomind.adapters.store.mysql_bulk import dbapi
    from recomind.adapters.store.sql import sqlite_stored_actions
    from recomind.domain.event_columns import actions_of

    stored = [action(n, user=f"u{n % 40}") for n in range(2_000)]
    with store.transaction() as tx:
        tx.insert_new_actions(stored)
    engine = store.engine  # type: ignore[attr-defined]
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {sqlite_stored_actions(2)}", ("u1", "x", "u2", "y")
            ).all()
        details = [str(row[-1]) for row in plan]
        assert any(
            d.startswith("SEARCH video_actions") and "(user_id=? AND id=?)" in d for d in details
        ), details
        assert not any(d.startswith("SCAN video_actions") for d in details), details
    if dialect == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            with dbapi(conn).cursor() as cur:
                cur.execute(f"EXPLAIN {pg_bulk.STORED_ACTIONS}", [["u1"], ["x"]], binary=True)
                plan = "\n".join(row[0] for row in cur.fetchall())
            conn.rollback()
        assert "Seq Scan on video_actions" not in plan, plan
        assert "Index Cond: ((user_id = " in plan and " AND (id = " in plan, plan

    def scans(conn: Any) -> int:
        if dialect == "postgresql":
            return int(
                conn.exec_driver_sql(
                    "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'video_actions'"
                ).scalar()
            )
        if dialect == "mysql":
            rows = conn.exec_driver_sql(
                "SHOW SESSION STATUS WHERE Variable_name IN"
                " ('Handler_read_next', 'Handler_read_rnd_next')"
            ).all()
            return sum(int(value) for _, value in rows)
        return 0

    for n, write in enumerate(("rows", "columns")):
        new = action(5_000 + n)
        replay = [*stored[::50], new]  # 40 stored, 1 new
        with store.transaction() as tx:
            conn = tx.conn  # type: ignore[attr-defined]
            if dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            before = scans(conn)
            if write == "rows":
                assert tx.insert_new_actions(replay) == [new]
            else:
                assert actions_of(tx.insert_new_action_columns(columns(replay))) == [new]
            read = scans(conn) - before
            assert (read == 0) if dialect == "postgresql" else (read < 400), (write, read)
    assert store.count_actions() == 2_002


def test_action_columns_in_another_order_or_with_more_columns_store_the_same(
    store: Store,
) -> None:
    """The bulk loads name their columns: a table holding them in another order, or with a
    column more (the lake's bus positions), stores the same rows."""
    import pyarrow as pa

    from recomind.domain.event_columns import COLUMNS, actions_of

    first = [action(1, watch_ms=5), action(2, video="v2", kind=ActionType.SKIP)]
    table = columns(first).select(list(reversed(COLUMNS)))  # type: ignore[attr-defined]
    with store.transaction() as tx:
        assert tx.insert_new_action_columns(store.bulk_actions(table)).num_rows == 2
    later = columns([action(3, user="u2")]).append_column(  # type: ignore[attr-defined]
        "bus_offset", pa.array([7], pa.int64())
    )
    with store.transaction() as tx:
        assert tx.insert_new_action_columns(later).num_rows == 1
    assert store.user_actions("u1") == first
    assert actions_of(later.select(COLUMNS)) == store.user_actions("u2")


def test_action_columns_keep_any_time_and_a_sliced_table(store: Store) -> None:
    """Times before 1970 and 2000 (PostgreSQL's binary `COPY` counts from 2000-01-01) and late
    in 9999 come back to the microsecond; a table that is a slice of a larger one stores its
    own rows only."""
    from recomind.domain.event_columns import actions_of

    times = [
        datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    batch = [action(i, at=at, watch_ms=i if i % 2 else None) for i, at in enumerate(times)]
    table = columns([action(90), *batch, action(91)]).slice(1, len(batch))  # type: ignore[attr-defined]
    with store.transaction() as tx:
        assert actions_of(tx.insert_new_action_columns(store.bulk_actions(table))) == batch
    assert store.user_actions("u1") == batch
    for got in store.user_actions("u1"):
        assert_utc(got.timestamp)


@pytest.mark.parametrize(
    "odd", [{"user": "u" * 65}, {"watch_ms": 2**31}], ids=["long-user-id", "watch-ms-over-int4"]
)
def test_action_columns_with_a_value_their_column_cannot_hold_fail_whole(
    store: Store, odd: dict[str, object]
) -> None:
    """As `insert_new_actions`: the bulk load refuses a user id over 64 characters or a
    `watch_ms` over a 32-bit integer (never cut short, clamped or wrapped), and nothing of its
    batch is stored. The event rules refuse both before a sink sees them."""
    if store.url.startswith("sqlite"):  # type: ignore[attr-defined]
        pytest.skip("SQLite does not enforce a column's length or an integer's size")
    with pytest.raises(Exception), store.transaction() as tx:  # noqa: B017 (each driver's own)
        tx.insert_new_action_columns(columns([action(1), action(2, **odd)]))  # type: ignore[arg-type]
    assert store.count_actions() == 0


def test_ids_that_differ_only_by_case_are_different(store: Store) -> None:
    """Ids are case-sensitive everywhere (MariaDB since migration 0004): users `ABC` and `abc`,
    videos `V1` and `v1`, each with their own rows, found only by their own id."""
    store.add_videos([video("V1", tags=("upper",)), video("v1", tags=("lower",))])
    assert store.add_users([User("ABC", "Upper", T0), User("abc", "Lower", T0)]) == 2
    upper = action(1, user="ABC", video="V1", kind=ActionType.LIKE)
    lower = action(2, user="abc", video="v1")
    with store.transaction() as tx:
        assert tx.insert_new_actions([upper, lower]) == [upper, lower]
        assert tx.known_videos({"V1", "v1", "V2"}) == {"V1", "v1"}
    assert store.user_actions("ABC") == [upper]
    assert store.user_actions("abc") == [lower]
    assert store.user_actions("Abc") == []
    assert store.get_video("V1").tags == ("upper",)  # type: ignore[union-attr]
    assert store.get_video("v1").tags == ("lower",)  # type: ignore[union-attr]
    assert store.existing_user_ids({"ABC", "aBc"}) == {"ABC"}
    assert store.get_user("abc") == User("abc", "Lower", T0)


def test_action_columns_roll_back_with_their_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_new_action_columns(columns([action(1), action(2)]))
        raise RuntimeError("boom")
    assert store.count_actions() == 0
    with store.transaction() as tx:
        assert tx.insert_new_action_columns(columns([action(1)])).num_rows == 1


def test_an_id_another_writer_commits_meanwhile_is_never_appended_as_new(store: Store) -> None:
    """The store group's transaction reads the catalog first, then appends its batch. If another
    worker commits one of the batch's ids in between (two workers over one partition during a
    rebalance), that id is stored once, and the append does not return it as new, which would
    run the after-commit hooks for it twice. The append may fail instead (the consumer retries
    the batch, and the retry finds the id stored). MariaDB's transaction reads from a snapshot
    taken at its first read, so its lookup of stored ids did not see the other worker's commit,
    and the duplicate its second load skipped was returned as appended."""
    from recomind.domain.event_columns import keys_of

    store.add_videos([video("v1")])
    theirs, ours = action(1), action(2)
    returned: list[str] = []
    failures = 0
    for attempt in range(3):
        try:
            with store.transaction() as tx:
                assert tx.known_videos({"v1"}) == {"v1"}  # the catalog check, as the sink does
                if attempt == 0:  # the other worker commits meanwhile
                    with store.transaction() as other:
                        added = other.insert_new_action_columns(columns([theirs]))  # type: ignore[arg-type]
                        assert added.num_rows == 1
                new = tx.insert_new_action_columns(columns([theirs, ours]))  # type: ignore[arg-type]
                returned += [id_ for _, id_ in keys_of(new)]
            break
        except AssertionError:
            raise
        except Exception:  # the consumer retries a failed batch
            failures += 1
    assert returned == [ours.id], f"after {failures} failure(s)"
    assert store.count_actions() == 2
    assert store.user_actions("u1") == [theirs, ours]


def test_the_ledger_counts_each_event_id_once(store: Store) -> None:
    """`count_new_events`: the profile group's ledger. It knows nothing of `video_actions`: an
    id counted is not counted again, stored or not, and one not counted yet is new even if the
    store group has stored it already."""
    with store.transaction() as tx:
        tx.insert_new_actions([action(1)])
    with store.transaction() as tx:
        assert tx.count_new_events([action(1), action(2), action(1)]) == [action(1), action(2)]
    with store.transaction() as tx:
        assert tx.count_new_events([action(2), action(3)]) == [action(3)]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.count_new_events([action(4)]) == [action(4)]
        raise RuntimeError("boom")
    with store.transaction() as tx:
        assert tx.count_new_events([action(4), action(1)]) == [action(4)]


def counted_long_ago(store: Store, *events: VideoAction) -> None:
    """Stamp ledger ids as counted in 2000 (each database reads the literal in its own way)."""
    import sqlalchemy as sa

    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        for a in events:
            conn.execute(
                sa.text(
                    "UPDATE counted_events SET counted_at = '2000-01-01 00:00:00' WHERE id = :i"
                ),
                {"i": a.id},
            )


def test_the_ledger_forgets_only_the_ids_counted_before_its_retention(store: Store) -> None:
    """`forget_counted`: ids counted longer ago than the age given go, by the database's clock;
    the others stay. An event forgotten counts again if a copy comes (the retention's price)."""
    old, recent = [action(1), action(2), action(3)], [action(4), action(5)]
    with store.transaction() as tx:
        assert len(tx.count_new_events([*old, *recent])) == 5
    counted_long_ago(store, *old)
    assert store.forget_counted(86_400, limit=2) == 2  # at most `limit` at a time
    assert store.forget_counted(86_400, limit=2) == 1
    assert store.forget_counted(86_400, limit=2) == 0
    with store.transaction() as tx:
        assert tx.count_new_events([*old, *recent]) == old
    assert store.forget_counted(3_600, limit=10) == 0  # all counted within the hour


def test_the_ledger_stamps_ids_in_utc_whatever_the_sessions_time_zone(store: Store) -> None:
    """The default that stamps an id and the age it is forgotten by read one clock: counted
    now, from a session five hours behind UTC, an id is not an hour old."""
    import sqlalchemy as sa

    behind = {"postgresql": "SET TIME ZONE '-05:00'", "mysql": "SET time_zone = '-05:00'"}
    engine = sa.create_engine(store.url)  # type: ignore[attr-defined]
    try:
        with engine.begin() as conn:
            if engine.dialect.name in behind:
                conn.execute(sa.text(behind[engine.dialect.name]))
            conn.execute(sa.text("INSERT INTO counted_events (id) VALUES ('counted-now')"))
    finally:
        engine.dispose()
    assert store.forget_counted(3_600, limit=10) == 0
    assert store.forget_counted(-3_600, limit=10) == 1  # but it is older than an hour ahead


def test_the_store_group_counts_each_event_id_once(store: Store, tmp_path: Path) -> None:
    """The consumer's store transaction on this backend: a batch that holds one id twice, then
    a replay mixing stored ids with new ones; popularity, tag weights and profiles count every
    id once, as the domain's sums over the distinct actions say."""
    from recomind.services.consume import store_new_actions

    fx, group = store_group_effects(store, tmp_path)
    weights = fx.weights
    first = [
        action(1, user="u1", video="v1", kind=ActionType.LIKE, at=T0 + timedelta(hours=2)),
        action(2, user="u1", video="v2", kind=ActionType.SKIP, at=T0),
        action(3, user="u2", video="v3", at=T0 + timedelta(hours=1)),
    ]
    second = [
        *first[1:],
        action(4, user="u2", video="v1", at=T0 + timedelta(hours=3)),
        action(4, user="u2", video="v1", at=T0 + timedelta(hours=3)),
    ]
    with store.transaction() as tx:
        assert store_new_actions(tx, [first[0], *first], group, fx) == first
    with store.transaction() as tx:
        assert store_new_actions(tx, second, group, fx) == [second[-1]]

    distinct = [*first, second[-1]]
    assert store.count_actions() == 4
    want_pop = scoring.apply_popularity({}, distinct, weights, 48.0)
    got_pop = {p.video_id: p for p in store.top_popularity(10)}
    assert got_pop.keys() == want_pop.keys()
    for key, want in want_pop.items():
        assert got_pop[key].score == pytest.approx(want.score, rel=CLOSE), key
        assert got_pop[key].last_updated == want.last_updated
    want_tags = scoring.apply_tag_weights({}, distinct, TAGS, weights, 336.0)
    for user in ("u1", "u2"):
        got = {w.tag: w for w in store.tag_weights(user)}
        mine = {tag: w for (u, tag), w in want_tags.items() if u == user}
        assert got.keys() == mine.keys()
        for tag, w in mine.items():
            assert got[tag].weight == pytest.approx(w.weight, rel=CLOSE), (user, tag)
        profile = store.get_profile(user)
        assert profile is not None
        assert profile.top_tags == scoring.top_tags(mine.values())
    assert store.existing_user_ids(["u1", "u2"]) == {"u1", "u2"}


def test_a_concurrent_writer_of_the_same_ids_counts_them_once(store: Store, tmp_path: Path) -> None:
    """Two store transactions apply the same batch at once (two workers over one partition, as
    during a rebalance): the second waits for the first, then fails or finds the ids stored;
    retried as the consumer retries, it adds nothing, so every effect counts each id once."""
    import threading

    from recomind.services.consume import store_new_actions

    fx, group = store_group_effects(store, tmp_path)
    weights = fx.weights
    batch = [
        action(i, user=f"u{i % 2}", video=f"v{i % 3 + 1}", at=T0 + timedelta(minutes=i))
        for i in range(1, 7)
    ]
    second: dict[str, object] = {"failures": 0}

    def second_worker() -> None:
        for _ in range(20):
            try:
                with store.transaction() as tx:
                    second["new"] = store_new_actions(tx, batch, group, fx)
                return
            except Exception:  # the consumer retries a failed batch
                second["failures"] = int(second["failures"]) + 1  # type: ignore[call-overload]
                threading.Event().wait(0.1)

    with store.transaction() as tx:
        assert store_new_actions(tx, batch, group, fx) == batch
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(1.0)  # it waits on this transaction's rows (or, on SQLite, its lock)
        assert worker.is_alive()
    worker.join(60)
    assert not worker.is_alive()
    assert second["new"] == []

    assert store.count_actions() == len(batch)
    want_pop = scoring.apply_popularity({}, batch, weights, 48.0)
    got_pop = {p.video_id: p for p in store.top_popularity(10)}
    assert got_pop.keys() == want_pop.keys()
    for key, want in want_pop.items():
        assert got_pop[key].score == pytest.approx(want.score, rel=CLOSE), key
    want_tags = scoring.apply_tag_weights({}, batch, TAGS, weights, 336.0)
    for user in ("u0", "u1"):
        got = {w.tag: w.weight for w in store.tag_weights(user)}
        mine = {tag: w.weight for (u, tag), w in want_tags.items() if u == user}
        assert got == pytest.approx(mine, rel=CLOSE), user


# -- schema ----------------------------------------------------------------------------


def test_the_migrated_tables_have_the_keys_and_indexes_the_schema_declares(store: Store) -> None:
    """What the migrations make is what schema.py says, key for key and index for index;
    `video_actions` is read by viewer only, by its key (user_id, id), so it has no index."""
    import sqlalchemy as sa

    from recomind.adapters.store import schema

    inspector = sa.inspect(store.engine)  # type: ignore[attr-defined]
    for table in schema.metadata.sorted_tables:
        made = {ix["name"]: list(ix["column_names"]) for ix in inspector.get_indexes(table.name)}
        declared = {str(ix.name): [c.name for c in ix.columns] for ix in table.indexes}
        assert made == declared, table.name
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert key == [c.name for c in table.primary_key.columns], table.name
    assert inspector.get_pk_constraint("video_actions")["constrained_columns"] == ["user_id", "id"]
    assert not schema.video_actions.indexes


@contextmanager
def migrated_to(url: str, revision: str, down: bool = False) -> Iterator[Any]:
    """The database at `url` migrated up to `revision` only, as a store made by an older
    RecoMind left it (or, `down`, back down to it), as `sql.migrate` runs Alembic; then a
    connection to it, in one transaction."""
    import sqlalchemy as sa
    from alembic import command

    from recomind.adapters.store.sql import alembic_config

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def test_opening_a_store_made_before_0002_drops_the_unread_index(tmp_path: Path) -> None:
    """A database migrated to 0001 keeps its rows and loses `ix_video_actions_video`."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with migrated_to(url, "0001") as conn:
        conn.execute(
            sa.text(
                "INSERT INTO video_actions VALUES"
                " ('e1', 'u1', 'v1', 'view', '2024-03-01 12:00:00.000000', NULL)"
            )
        )
        assert "ix_video_actions_video" in {
            ix["name"] for ix in sa.inspect(conn).get_indexes("video_actions")
        }

    opened = open_store(url)
    try:
        indexes = {ix["name"] for ix in sa.inspect(opened.engine).get_indexes("video_actions")}  # type: ignore[attr-defined]
        assert indexes == set()  # and 0006 dropped the other one
        assert [a.id for a in opened.user_actions("u1")] == ["e1"]
    finally:
        opened.close()


def test_opening_a_store_made_before_0003_counts_its_stored_actions(tmp_path: Path) -> None:
    """Before 0003 one group stored and counted each action in one transaction, so every stored
    id starts in the ledger: read again from the topic, none is counted twice, and a new one
    is."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    stored = [action(1), action(2, user="u2")]
    with migrated_to(url, "0002") as conn:
        for a in stored:
            conn.execute(
                sa.text("INSERT INTO video_actions VALUES (:id, :u, :v, 'view', :t, NULL)"),
                {"id": a.id, "u": a.user_id, "v": a.video_id, "t": "2024-03-01 12:00:00.000000"},
            )

    opened = open_store(url)
    try:
        with opened.transaction() as tx:
            assert tx.count_new_events([*stored, action(3)]) == [action(3)]
    finally:
        opened.close()


@pytest.fixture(
    params=[
        pytest.param(None, id="sqlite"),
        _server("postgresql", "RECOMIND_TEST_POSTGRES_URL"),
        _server("mysql", "RECOMIND_TEST_MYSQL_URL"),
    ]
)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database of its own, with no tables yet."""
    if request.param is None:
        return f"sqlite:///{tmp_path / 'old.db'}"
    from tests.integration.test_real_stack import fresh_database

    return fresh_database(os.environ[request.param])


def test_stores_opened_at_once_on_a_new_database_take_turns_to_migrate_it(
    empty_database: str,
) -> None:
    """Replicas that start together (the compose file's API and worker containers) each open
    the store, and opening it runs the migrations: they take turns, one process at a time per
    database, so every one opens, and the schema is migrated once, to head. Four processes
    (Alembic's context is global to a process, so not threads) open it at the same instant;
    without the turns, the late ones failed on tables another had just made, or waited on
    its locks."""
    import subprocess
    import sys
    import time

    import sqlalchemy as sa
    from alembic.script import ScriptDirectory

    from recomind.adapters.store.sql import alembic_config

    at = time.time() + 5.0  # once every process has imported the store's modules
    script = (
        "import sys, time\n"
        "import recomind.adapters.store.sql\n"  # the heavy imports, before the start
        "from recomind.adapters.store import open_store\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "store = open_store(sys.argv[1])\n"
        "print(store.count_actions())\n"
        "store.close()\n"
    )
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database, str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [opener.communicate(timeout=120) for opener in openers]
    assert [(o.returncode, out) for o, (out, _) in zip(openers, results, strict=True)] == [
        (0, "0\n")
    ] * 4, [err[-2000:] for _, err in results]
    engine = sa.create_engine(empty_database)
    try:
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
            recorded = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert recorded == [(head,)]


@pytest.mark.parametrize(
    "env_var",
    [
        _server("postgresql", "RECOMIND_TEST_POSTGRES_URL"),
        _server("mysql", "RECOMIND_TEST_MYSQL_URL"),
    ],
)
def test_a_store_gives_up_on_a_migration_lock_held_too_long(
    env_var: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that waits longer than `MIGRATION_WAIT_SECONDS` for another one's migrations
    fails with a clear error rather than hang; the database is left as it was."""
    import sqlalchemy as sa

    from recomind.adapters.store import sql
    from tests.integration.test_real_stack import fresh_database

    url = fresh_database(os.environ[env_var])
    monkeypatch.setattr(sql, "MIGRATION_WAIT_SECONDS", 1)
    lock_name = "CONCAT('recomind-migrate:', SHA1(DATABASE()))"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as holder:  # another process, migrating
            if holder.dialect.name == "postgresql":
                holder.execute(sa.text(f"SELECT pg_advisory_lock({sql._PG_MIGRATION_LOCK})"))
            else:
                got = holder.execute(sa.text(f"SELECT GET_LOCK({lock_name}, 0)")).scalar()
                assert got == 1
            holder.commit()
            with pytest.raises(TimeoutError, match="migration lock for over 1 s"):
                open_store(url)
            assert not sa.inspect(holder).has_table("alembic_version")
            holder.invalidate()  # the other process ends: its session, and so its lock, go
        opened = open_store(url)  # once the other is done, it opens
        try:  # and leaves the lock free, though its pooled session is still open
            with engine.connect() as other:
                if other.dialect.name == "postgresql":
                    free = other.execute(
                        sa.text(f"SELECT pg_try_advisory_lock({sql._PG_MIGRATION_LOCK})")
                    ).scalar()
                else:
                    free = other.execute(sa.text(f"SELECT IS_FREE_LOCK({lock_name})")).scalar()
                assert free in (True, 1)
        finally:
            opened.close()
    finally:
        engine.dispose()


def test_a_sqlite_store_opens_while_another_connection_writes_its_new_database(
    tmp_path: Path,
) -> None:
    """Switching a database to WAL needs it to itself, and SQLite refuses the switch at once,
    without its busy timeout, while another connection writes (as a replica that opened the
    same new database a moment before does while it migrates it). The store waits for that
    writer instead of failing to open: here one holds its write lock for 0.5 s."""
    import sqlite3
    import threading
    import time

    db = tmp_path / "store.db"
    writer = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other_work (x)")
    writer.execute("BEGIN IMMEDIATE")  # its write lock, as a migration holds it
    writer.execute("INSERT INTO other_work VALUES (1)")
    done = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    done.start()
    started = time.monotonic()
    try:
        store = open_store(f"sqlite:///{db}")
    finally:
        done.join()
        writer.close()
    try:
        assert time.monotonic() - started >= 0.5
        assert store.count_actions() == 0
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT x FROM other_work").fetchall() == [(1,)]
    finally:
        store.close()


def test_a_sqlite_store_gives_up_on_a_migration_lock_held_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's migration lock (an flock beside the database file) is waited for as long as
    the servers' are, then fails as clearly, leaving the database as it was."""
    import fcntl
    import sqlite3

    from recomind.adapters.store import sql

    monkeypatch.setattr(sql, "MIGRATION_WAIT_SECONDS", 1)
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    with open(f"{db}.migrate-lock", "a+b") as holder:  # another process, migrating
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TimeoutError, match="migration lock for over 1 s"):
            open_store(url)
        with sqlite3.connect(db) as conn:  # nothing was migrated
            assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)  # the other process is done
    opened = open_store(url)
    try:
        with open(f"{db}.migrate-lock", "a+b") as other:  # and the lock is free again
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        opened.close()


def test_opening_a_store_made_before_0005_keeps_its_ledger_for_a_whole_retention(
    empty_database: str,
) -> None:
    """0005 stamps the ids counted before it with the time it runs: none is forgotten until a
    retention has passed from the upgrade, and new ids are stamped as they are counted."""
    import sqlalchemy as sa

    with migrated_to(empty_database, "0004") as conn:
        for a in (action(1), action(2)):
            conn.execute(sa.text("INSERT INTO counted_events (id) VALUES (:i)"), {"i": a.id})

    opened = open_store(empty_database)
    try:
        assert opened.forget_counted(3_600, limit=10) == 0
        with opened.transaction() as tx:
            assert tx.count_new_events([action(1), action(3)]) == [action(3)]
        counted_long_ago(opened, action(1))
        assert opened.forget_counted(3_600, limit=10) == 1
        with opened.engine.connect() as conn:  # type: ignore[attr-defined]
            left = conn.execute(sa.text("SELECT id FROM counted_events ORDER BY id")).scalars()
            assert list(left) == [action(2).id, action(3).id]
    finally:
        opened.close()


def action_keys(conn: Any) -> tuple[list[str], set[str], int]:
    """`video_actions`' primary key columns, its indexes and its number of rows."""
    import sqlalchemy as sa

    inspector = sa.inspect(conn)
    return (
        inspector.get_pk_constraint("video_actions")["constrained_columns"],
        {str(ix["name"]) for ix in inspector.get_indexes("video_actions")},
        int(conn.scalar(sa.text("SELECT COUNT(*) FROM video_actions"))),
    )


def test_a_store_made_before_0006_keys_its_actions_by_viewer_and_goes_back_while_it_can(
    empty_database: str,
) -> None:
    """0006 keys `video_actions` by (user_id, id) and drops its index on (user_id, timestamp):
    the stored rows are kept and read by viewer, and a replay of one is not stored again.
    Downgraded, the key is on id again, with the index. Once one id is stored for two viewers
    the downgrade refuses, says so, and leaves the database at 0006 as it was."""
    import sqlalchemy as sa

    stored = [action(1), action(2, user="u2", watch_ms=5)]
    with migrated_to(empty_database, "0005") as conn:
        for a in stored:
            conn.execute(
                sa.text("INSERT INTO video_actions VALUES (:id, :u, :v, 'view', :t, :w)"),
                {
                    "id": a.id,
                    "u": a.user_id,
                    "v": a.video_id,
                    "t": "2024-03-01 12:00:00",
                    "w": a.watch_ms,
                },
            )
        assert action_keys(conn) == (["id"], {"ix_video_actions_user_time"}, 2)

    opened = open_store(empty_database)
    try:
        with opened.engine.connect() as conn:  # type: ignore[attr-defined]
            assert action_keys(conn) == (["user_id", "id"], set(), 2)
        assert [(a.id, a.watch_ms) for a in opened.user_actions("u2")] == [(stored[1].id, 5)]
        with opened.transaction() as tx:
            assert tx.insert_new_actions([stored[0], action(3)]) == [action(3)]
    finally:
        opened.close()
    with migrated_to(empty_database, "0005", down=True) as conn:
        assert action_keys(conn) == (["id"], {"ix_video_actions_user_time"}, 3)

    opened = open_store(empty_database)  # up to head again, then one id for a second viewer
    try:
        with opened.transaction() as tx:
            assert tx.insert_new_actions([action(1, user="u2")]) == [action(1, user="u2")]
    finally:
        opened.close()
    refused = pytest.raises(RuntimeError, match=r"1 event id\(s\) are stored for more than one")
    with refused, migrated_to(empty_database, "0005", down=True):
        pass
    with migrated_to(empty_database, "0006") as conn:  # already there: reads the revision only
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0006"
        assert action_keys(conn) == (["user_id", "id"], set(), 4)


@pytest.mark.skipif(
    not os.environ.get("RECOMIND_TEST_MYSQL_URL"), reason="RECOMIND_TEST_MYSQL_URL is not set"
)
def test_a_mariadb_store_made_before_0004_keeps_its_rows_and_tells_case_apart() -> None:
    """0004 makes MariaDB's id columns binary: a database at 0003 keeps its rows, and then
    takes an id that differs from a stored one only by case as another id."""
    import sqlalchemy as sa

    from tests.integration.test_real_stack import fresh_database

    url = fresh_database(os.environ["RECOMIND_TEST_MYSQL_URL"])
    with migrated_to(url, "0003") as conn:
        conn.execute(sa.text("INSERT INTO users VALUES ('ABC', 'Upper', '2024-03-01 12:00:00')"))
        conn.execute(
            sa.text(
                "INSERT INTO video_actions VALUES"
                " ('e1', 'ABC', 'V1', 'view', '2024-03-01 12:00:00.000000', 7)"
            )
        )

    opened = open_store(url)
    try:
        assert [(a.id, a.watch_ms) for a in opened.user_actions("ABC")] == [("e1", 7)]
        opened.add_users([User("abc", "Lower", T0)])
        assert opened.get_user("ABC").name == "Upper"  # type: ignore[union-attr]
        assert opened.get_user("abc").name == "Lower"  # type: ignore[union-attr]
        assert opened.user_actions("abc") == []
        assert id_collations(url) == {"utf8mb4_bin"}
    finally:
        opened.close()


def id_collations(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    sa.text(
                        "SELECT DISTINCT collation_name FROM information_schema.columns"
                        " WHERE table_schema = DATABASE() AND column_name IN ('id', 'user_id',"
                        " 'video_id', 'creator_id', 'tag')"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("RECOMIND_TEST_MYSQL_URL"), reason="RECOMIND_TEST_MYSQL_URL is not set"
)
def test_a_mariadb_store_goes_back_below_0004_only_while_no_ids_differ_by_case_alone() -> None:
    """Downgrading 0004 restores the database's collation; once `ABC` and `abc` are both
    stored it refuses and names the table. A downgrade from head then stops at 0004: the later
    steps' downgrades are done and recorded (MariaDB commits each ALTER at once), 0004's
    changed nothing."""
    import sqlalchemy as sa

    from tests.integration.test_real_stack import fresh_database

    url = fresh_database(os.environ["RECOMIND_TEST_MYSQL_URL"])
    opened = open_store(url)
    opened.add_users([User("ABC", "Upper", T0)])
    opened.close()
    with migrated_to(url, "0003", down=True) as conn:
        default = conn.scalar(sa.text("SELECT @@collation_database"))
    assert id_collations(url) == {default}

    opened = open_store(url)  # up to head again
    opened.add_users([User("abc", "Lower", T0)])
    opened.close()
    refused = pytest.raises(RuntimeError, match=r"differ only by case .* in users \(1\)\. ")
    with refused, migrated_to(url, "0003", down=True):
        pass
    assert id_collations(url) == {"utf8mb4_bin"}
    with migrated_to(url, "0004") as conn:  # already there: reads the revision only
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0004"
        columns = {c["name"] for c in sa.inspect(conn).get_columns("counted_events")}
        assert columns == {"id"}  # 0005's downgrade ran, and 0004 is what is recorded
    opened = open_store(url)
    try:
        assert {opened.get_user(u).name for u in ("ABC", "abc")} == {"Upper", "Lower"}  # type: ignore[union-attr]
    finally:
        opened.close()


def test_a_value_its_column_cannot_hold_fails_the_whole_insert(store: Store) -> None:
    """Never stored cut short, never skipped as if it were a duplicate: the batch fails."""
    if store.url.startswith("sqlite"):  # type: ignore[attr-defined]
        pytest.skip("SQLite does not enforce a column's length")
    too_long = action(2, user="u" * 65)  # user ids are at most 64 characters
    with pytest.raises(Exception), store.transaction() as tx:  # noqa: B017 (each driver's own)
        tx.insert_new_actions([action(1), too_long])
    assert store.count_actions() == 0
    with store.transaction() as tx:  # and stored ids are still skipped without a complaint
        tx.insert_new_actions([action(1)])
    with store.transaction() as tx:
        assert tx.insert_new_actions([action(1), action(3)]) == [action(3)]


@pytest.mark.parametrize("stored_every", [7, 11_000])
def test_a_large_batch_with_some_ids_stored_returns_exactly_the_others(
    store: Store, stored_every: int
) -> None:
    """Stored ids scattered through a batch of several statements' worth, or only near its
    end (after statements that met none): each id comes back once if new, never if stored."""
    n = 12_000
    actions = [action(i, user=f"u{i % 700}", video=f"v{i % 3000}") for i in range(n)]
    stored = [a for i, a in enumerate(actions) if i % stored_every == stored_every - 1]
    with store.transaction() as tx:
        assert tx.insert_new_actions(stored) == stored
    with store.transaction() as tx:
        new = tx.insert_new_actions(actions)
    assert sorted(a.id for a in new) == sorted({a.id for a in actions} - {a.id for a in stored})
    assert store.count_actions() == n


@pytest.mark.skipif(
    not os.environ.get("RECOMIND_TEST_MYSQL_URL"), reason="RECOMIND_TEST_MYSQL_URL is not set"
)
def test_action_columns_go_as_inserts_where_local_loads_are_refused() -> None:
    """A MySQL server refuses LOAD DATA LOCAL unless both sides allow it (MySQL 8 does not by
    default); a connection that does not allow it stands for that here. The rows still go in,
    once per id, as multi-row INSERTs."""
    from recomind.domain.event_columns import actions_of

    url = os.environ["RECOMIND_TEST_MYSQL_URL"]
    refused = open_store(f"{url}{'&' if '?' in url else '?'}local_infile=false")
    _empty_tables(refused)
    try:
        batch = [action(1, watch_ms=None), action(2, at=T0.replace(microsecond=7), watch_ms=5)]
        with refused.transaction() as tx:
            assert actions_of(tx.insert_new_action_columns(columns(batch))) == batch
        with refused.transaction() as tx:
            assert tx.insert_new_action_columns(columns(batch)).num_rows == 0
        assert refused.user_actions("u1") == batch
        theirs = action(1, user="u2")  # a stored id, for another viewer: that viewer's action
        with refused.transaction() as tx:
            assert actions_of(tx.insert_new_action_columns(columns([*batch, theirs]))) == [theirs]
        assert refused.user_actions("u2") == [theirs]
    finally:
        _empty_tables(refused)
        refused.close()


def test_the_store_group_stores_new_actions_and_refuses_the_rest(
    store: Store, tmp_path: Path
) -> None:
    """`recomind-store` on this backend: a batch in the bus's own form goes as columns, one
    holding poison event by event; both refuse an unknown video and poison with the reason,
    store each id once, and hand the after-commit hooks exactly the new actions."""
    from recomind.domain.event_columns import EventBatch
    from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
    from recomind.domain.model import ActedOn
    from recomind.domain.ports import BusRecord
    from recomind.services.consume import store_actions

    fx, _ = store_group_effects(store, tmp_path)
    seen: list[list[ActedOn]] = []
    fx.after_commit.append(lambda acted: seen.append(list(acted)))

    def records(*values: bytes) -> list[BusRecord]:
        return [BusRecord(VIDEO_ACTIONS_TOPIC, 0, i, "u1", v) for i, v in enumerate(values)]

    def event(a: VideoAction) -> bytes:
        return VideoActionRecorded(a).to_json()

    liked = action(1, kind=ActionType.LIKE, at=T0.replace(microsecond=5))
    lost = action(2, video="v404")
    first = records(event(liked), event(lost), event(liked))
    refused = store_actions(EventBatch.decode(first), fx)()
    assert [(r.offset, reason) for r, reason in refused] == [(1, "unknown video 'v404'")]
    assert seen == [[ActedOn("u1", "v1", ActionType.LIKE)]]

    skipped = action(3, user="u2", video="v2", kind=ActionType.SKIP, watch_ms=900)
    second = records(b"not json", event(liked), event(skipped), event(lost))
    refused = store_actions(EventBatch.decode(second), fx)()
    assert [r.offset for r, _ in refused] == [0, 3]
    assert "unknown video 'v404'" in refused[1][1]
    assert seen[1:] == [[ActedOn("u2", "v2", ActionType.SKIP)]]

    assert store_actions(EventBatch.decode(records(event(liked), event(skipped))), fx)() == []
    assert len(seen) == 2  # nothing new, no hook
    assert store.user_actions("u1") == [liked]
    assert store.user_actions("u2") == [skipped]
    assert store.count_actions() == 2
