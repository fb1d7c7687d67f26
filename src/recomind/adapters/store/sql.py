"""The store on SQL databases through SQLAlchemy Core: SQLite, PostgreSQL, MariaDB/MySQL.

Opening a store runs the Alembic migrations up to head, so a fresh database is
ready to use and an old one is upgraded in place.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

import orjson
import pyarrow as pa
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from recomind.adapters.sqlite_wal import BUSY_SECONDS, to_wal
from recomind.adapters.store import engagement_sql, mysql_bulk, pg_bulk
from recomind.adapters.store import schema as t
from recomind.adapters.store.upsert import MYSQL, insert_rows, upsert
from recomind.domain import event_columns, scoring
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
from recomind.domain.ports import BulkActions

_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit
# Dialects whose decayed sums run as set-based SQL (engagement_sql).
_SET_BASED = ("postgresql", *MYSQL)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _video(row: Any) -> Video:
    return Video(
        video_id=row.video_id,
        title=row.title,
        url=row.url,
        tags=tuple(row.tags or ()),
        creator_id=row.creator_id,
        created_at=utc(row.created_at),
        duration_ms=row.duration_ms,
    )


def _action(row: Any) -> VideoAction:
    return VideoAction(
        id=row.id,
        user_id=row.user_id,
        video_id=row.video_id,
        action_type=ActionType(row.action_type),
        timestamp=utc(row.timestamp),
        watch_ms=row.watch_ms,
    )


def _action_row(a: VideoAction) -> dict[str, Any]:
    return {
        "id": a.id,
        "user_id": a.user_id,
        "video_id": a.video_id,
        "action_type": a.action_type.value,
        "timestamp": utc(a.timestamp),
        "watch_ms": a.watch_ms,
    }


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_SECONDS},
            pool_pre_ping=False,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            to_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # The store group loads actions with LOAD DATA LOCAL INFILE (mysql_bulk), unless the URL
    # says `local_infile=false`.
    local = {"local_infile": True} if url.startswith("mysql") and "local_infile" not in url else {}
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=local
    )


def sqlite_stored_actions(keys: int) -> str:
    """SQLite's lookup of `keys` (user_id, id) pairs in `video_actions`, given as parameters
    in that order. The pairs go through a subquery: `(user_id, id) IN (SELECT * FROM (VALUES
    …))` searches the key once per pair, where `(user_id, id) IN (VALUES …)` scans the key's
    whole index (SQLite 3.40.1, 400 keys in 200,000 rows in memory: 0.5 ms against 39 ms)."""
    pairs = ", ".join(["(?, ?)"] * keys)
    return (
        "SELECT user_id, id FROM video_actions"
        f" WHERE (user_id, id) IN (SELECT * FROM (VALUES {pairs}))"
    )


def bulk_actions(dialect: str, columns: pa.Table) -> BulkActions:
    """Each key (user_id, id) once, encoded as the dialect's bulk load takes rows (`COPY`'s
    binary rows or `LOAD DATA`'s CSV); SQLite inserts rows, so nothing is encoded for it."""
    columns = event_columns.first_copies(columns)
    if dialect == "postgresql":
        return BulkActions(columns, pg_bulk.copy_data(columns))
    if dialect in MYSQL:
        return BulkActions(columns, mysql_bulk.csv_of(columns))
    return BulkActions(columns)


def alembic_config(conn: Connection) -> Config:
    """Alembic's configuration for the project's migrations, run on `conn`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("recomind") / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine) -> None:
    # Handed over outside any transaction, so Alembic runs the migrations as each database
    # allows: on PostgreSQL all in one transaction; where DDL commits at once (MariaDB/MySQL,
    # SQLite) each in its own, committed with its revision, so a step that fails leaves the
    # recorded revision where the schema is.
    with engine.connect() as conn, _migrating_alone(conn):
        command.upgrade(alembic_config(conn), "head")


# How long a process waits for another one's migrations (0004 rebuilds every table on MariaDB).
MIGRATION_WAIT_SECONDS = 3600
# PostgreSQL's advisory lock key for migrations ("recomind" in ASCII); its locks are per database.
_PG_MIGRATION_LOCK = 0x7265636F6D696E64


@contextmanager
def _migrating_alone(conn: Connection) -> Iterator[None]:
    """Hold the database's migration lock, so replicas that start together take turns to
    migrate it: the first brings the schema to head, the others then find nothing to do. The
    lock belongs to the session (PostgreSQL's advisory lock, MariaDB/MySQL's `GET_LOCK` named
    after the database, an exclusive lock on a file beside a SQLite database), so it holds
    across the migrations' own commits. The connection is left outside any transaction, as
    Alembic expects it. A failed migration closes the connection, which frees the lock."""
    dialect = conn.dialect.name
    held = ExitStack()  # SQLite's file lock
    unlock: sa.TextClause | None = None
    waited_too_long = TimeoutError(
        f"another process held the store's migration lock for over {MIGRATION_WAIT_SECONDS} s"
    )
    if dialect == "postgresql":
        # The wait is bounded by lock_timeout alone, whatever the role's statement_timeout.
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{MIGRATION_WAIT_SECONDS}s'"))
        conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        try:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                raise waited_too_long from exc
            raise
        unlock = sa.text("SELECT pg_advisory_unlock(:key)").bindparams(key=_PG_MIGRATION_LOCK)
    elif dialect in MYSQL:
        name = "CONCAT('recomind-migrate:', SHA1(DATABASE()))"  # within GET_LOCK's 64 characters
        got = conn.execute(
            sa.text(f"SELECT GET_LOCK({name}, :wait)"), {"wait": MIGRATION_WAIT_SECONDS}
        ).scalar()
        if got is None:  # an error, or no database selected
            raise RuntimeError("MariaDB/MySQL refused the store's migration lock (GET_LOCK)")
        if got != 1:
            raise waited_too_long
        unlock = sa.text(f"SELECT RELEASE_LOCK({name})")
    else:
        held.enter_context(_file_lock(conn.engine.url.database, waited_too_long))
    conn.commit()  # ends the lock's transaction (and its lock_timeout); the session keeps the lock
    try:
        yield
    except BaseException:
        conn.invalidate()  # a closed session holds no lock, whatever state it was left in
        raise
    finally:
        held.close()
    if unlock is not None:
        conn.execute(unlock)
        conn.commit()


@contextmanager
def _file_lock(database: str | None, waited_too_long: TimeoutError) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate-lock`, tried every 50 ms for up to
    `MIGRATION_WAIT_SECONDS`, then `waited_too_long` is raised (no lock for an in-memory
    database or one named by a `file:` URI)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as lock:
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise waited_too_long from None
                time.sleep(0.05)
        yield


class SqlTransaction:
    """A StoreTransaction on one open SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        # The weights in engagement_sql's table, and their first and latest instants.
        self._staged: tuple[Sequence[Engagement], engagement_sql.Span] | None = None

    def _stage(self, added: Sequence[Engagement]) -> engagement_sql.Span:
        # Popularity and tag weights get the same list (equal, if not the same object).
        if self._staged is not None and (added is self._staged[0] or added == self._staged[0]):
            return self._staged[1]
        engagement_sql.stage(self.conn, added)
        self._staged = (list(added), engagement_sql.Span.of(added))
        return self._staged[1]

    def _rows_in(
        self, table: sa.Table, columns: Sequence[str], key: str, ids: Iterable[str]
    ) -> list[Any]:
        """The `columns` of the rows whose `key` is one of `ids`: one array parameter on
        PostgreSQL, literal IN lists on MariaDB/MySQL, bound IN lists elsewhere."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        if self.dialect == "postgresql":
            return pg_bulk.select_any(self.conn, table, columns, key, wanted)
        if self.dialect in MYSQL:
            return mysql_bulk.select_in(self.conn, table, columns, key, wanted)
        out: list[Any] = []
        selected = [table.c[c] for c in columns]
        for chunk in _chunks(wanted):
            out += self.conn.execute(sa.select(*selected).where(table.c[key].in_(chunk))).all()
        return out

    def _stored_actions(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (user_id, id) keys among `keys` that `video_actions` holds, by its primary key."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        if self.dialect == "postgresql":
            return pg_bulk.stored_actions(self.conn, wanted)
        if self.dialect in MYSQL:
            key = ["user_id", "id"]
            return cast(
                set[tuple[str, str]],
                mysql_bulk.stored_keys(self.conn, t.video_actions, key, wanted),
            )
        stored: set[tuple[str, str]] = set()
        for chunk in _chunks(wanted, 400):  # two parameters a key
            params = tuple(value for pair in chunk for value in pair)
            found = self.conn.exec_driver_sql(sqlite_stored_actions(len(chunk)), params)
            stored.update((user, id_) for user, id_ in found)
        return stored

    def insert_new_actions(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        unique = list({(a.user_id, a.id): a for a in actions}.values())
        if not unique:
            return []
        if self.dialect == "postgresql":
            # The stored keys by primary key, then the new rows by one COPY (pg_bulk).
            inserted = set(
                pg_bulk.insert_new_actions(
                    self.conn,
                    [
                        (
                            a.id,
                            a.user_id,
                            a.video_id,
                            a.action_type.value,
                            utc(a.timestamp),
                            a.watch_ms,
                        )
                        for a in unique
                    ],
                )
            )
            return [a for a in unique if (a.user_id, a.id) in inserted]
        rows = [_action_row(a) for a in unique]
        if self.dialect in MYSQL:
            # Optimistic multi-row INSERTs, a lookup only when one meets a stored key (mysql_bulk).
            stored = {
                (r["user_id"], r["id"])
                for r in mysql_bulk.insert_new(self.conn, t.video_actions, rows)
            }
            return [a for a in unique if (a.user_id, a.id) in stored]
        existing = self._stored_actions((a.user_id, a.id) for a in unique)
        fresh = [
            (a, r) for a, r in zip(unique, rows, strict=True) if (a.user_id, a.id) not in existing
        ]
        if fresh:
            insert_rows(self.conn, t.video_actions, [r for _, r in fresh])
        return [a for a, _ in fresh]

    def insert_new_action_columns(self, columns: pa.Table | BulkActions) -> pa.Table:
        bulk = columns if isinstance(columns, BulkActions) else bulk_actions(self.dialect, columns)
        columns = bulk.columns
        if not columns.num_rows:
            return columns

        def without_stored(columns: pa.Table) -> pa.Table:
            keys = event_columns.keys_of(columns)
            stored = self._stored_actions(keys)
            if not stored:
                return columns
            return columns.filter(pa.array([key not in stored for key in keys]))

        if self.dialect == "postgresql":
            return pg_bulk.append_new_actions(self.conn, bulk, without_stored)
        if self.dialect in MYSQL:
            loaded = mysql_bulk.append_new_actions(self.conn, bulk, without_stored)
            if loaded is not None:
                return loaded
            # The server refuses LOCAL loads: optimistic multi-row INSERTs (mysql_bulk).
            rows = [_action_row(a) for a in event_columns.actions_of(columns)]
            stored = {
                (r["user_id"], r["id"])
                for r in mysql_bulk.insert_new(self.conn, t.video_actions, rows)
            }
            return columns.filter(
                pa.array([key in stored for key in event_columns.keys_of(columns)], pa.bool_())
            )
        columns = without_stored(columns)
        if columns.num_rows:
            rows = [_action_row(a) for a in event_columns.actions_of(columns)]
            insert_rows(self.conn, t.video_actions, rows)
        return columns

    def count_new_events(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        unique = list({a.id: a for a in actions}.values())
        if not unique:
            return []
        if self.dialect == "postgresql":
            counted = set(
                pg_bulk.unnest_insert(
                    self.conn,
                    t.counted_events,
                    [{"id": a.id} for a in unique],
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                )
            )
        elif self.dialect in MYSQL:
            rows = [{"id": a.id} for a in unique]
            counted = {r["id"] for r in mysql_bulk.insert_new(self.conn, t.counted_events, rows)}
        else:
            ids = [a.id for a in unique]
            known = {r[0] for r in self._rows_in(t.counted_events, ["id"], "id", ids)}
            counted = set(ids) - known
            insert_rows(self.conn, t.counted_events, [{"id": i} for i in ids if i in counted])
        return [a for a in unique if a.id in counted]

    def ensure_users(self, user_ids: Iterable[str], at: datetime) -> None:
        rows = [{"user_id": u, "name": None, "created_at": utc(at)} for u in sorted(set(user_ids))]
        if rows:
            insert_rows(self.conn, t.users, rows, ignore=True)

    def popularity_of(self, video_ids: Iterable[str]) -> dict[str, PopularityScore]:
        columns = ["video_id", "score", "last_updated"]
        return {
            v: PopularityScore(v, score, utc(at))
            for v, score, at in self._rows_in(t.video_popularity, columns, "video_id", video_ids)
        }

    def upsert_popularity(self, rows: Iterable[PopularityScore]) -> None:
        values = [
            {"video_id": p.video_id, "score": p.score, "last_updated": utc(p.last_updated)}
            for p in rows
        ]
        upsert(self.conn, t.video_popularity, values, ["video_id"])

    def tag_weights_of(self, user_ids: Iterable[str]) -> dict[tuple[str, str], TagWeight]:
        columns = ["user_id", "tag", "weight", "updated_at"]
        return {
            (u, tag): TagWeight(u, tag, weight, utc(at))
            for u, tag, weight, at in self._rows_in(
                t.user_tag_weights, columns, "user_id", user_ids
            )
        }

    def upsert_tag_weights(self, rows: Iterable[TagWeight]) -> None:
        values = [
            {
                "user_id": w.user_id,
                "tag": w.tag,
                "weight": w.weight,
                "updated_at": utc(w.updated_at),
            }
            for w in rows
        ]
        upsert(self.conn, t.user_tag_weights, values, ["user_id", "tag"])

    def upsert_profiles(self, rows: Iterable[UserProfile]) -> None:
        values = [
            {"user_id": p.user_id, "top_tags": list(p.top_tags), "updated_at": utc(p.updated_at)}
            for p in rows
        ]
        upsert(self.conn, t.user_profiles, values, ["user_id"])

    # Decayed sums: set-based SQL on the servers, the domain's Python sums on SQLite (in-process,
    # where a round trip costs nothing).

    def add_to_popularity(self, added: Sequence[Engagement], half_life_hours: float) -> None:
        if not added:
            return
        if self.dialect in _SET_BASED:
            engagement_sql.add_to_popularity(self.conn, half_life_hours, self._stage(added))
            return
        current = self.popularity_of(e.video_id for e in added)
        self.upsert_popularity(scoring.add_to_popularity(current, added, half_life_hours).values())

    def add_to_tag_weights(self, added: Sequence[Engagement], half_life_hours: float) -> None:
        if not added:
            return
        if self.dialect in _SET_BASED:
            engagement_sql.add_to_tag_weights(self.conn, half_life_hours, self._stage(added))
            return
        current = self.tag_weights_of(e.user_id for e in added)
        tags = self.video_tags(e.video_id for e in added)
        changed = scoring.add_to_tag_weights(current, added, tags, half_life_hours)
        self.upsert_tag_weights(changed.values())

    def refresh_top_tags(self, user_ids: Iterable[str], at: datetime) -> None:
        users = sorted(set(user_ids))
        if not users:
            return
        # MySQL (not MariaDB) has no JSON_ARRAYAGG(… ORDER BY … LIMIT): top tags in Python there.
        if self.dialect in _SET_BASED and (
            self.dialect == "postgresql" or getattr(self.conn.dialect, "is_mariadb", False)
        ):
            engagement_sql.refresh_top_tags(self.conn, users, utc(at))
            return
        per_user: dict[str, list[TagWeight]] = {u: [] for u in users}
        for w in self.tag_weights_of(users).values():
            per_user[w.user_id].append(w)
        self.upsert_profiles(
            UserProfile(u, scoring.top_tags(weights, engagement_sql.TOP_TAGS), at)
            for u, weights in per_user.items()
        )

    def known_videos(self, video_ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(video_ids))
        # One number comes back when every video is known, as nearly always; the ids are read
        # only when some are not (a row each costs far more than the count on PyMySQL).
        if not wanted or self._count_in(t.videos, "video_id", wanted) == len(wanted):
            return set(wanted)
        return {r[0] for r in self._rows_in(t.videos, ["video_id"], "video_id", wanted)}

    def _count_in(self, table: sa.Table, key: str, ids: list[str]) -> int:
        """How many rows' `key` is one of `ids` (distinct ids of a unique key)."""
        if self.dialect == "postgresql":
            return pg_bulk.count_any(self.conn, table, key, ids)
        if self.dialect in MYSQL:
            return mysql_bulk.count_in(self.conn, table, key, ids)
        column = table.c[key]
        return sum(
            self.conn.execute(sa.select(sa.func.count()).where(column.in_(chunk))).scalar_one()
            for chunk in _chunks(ids)
        )

    def video_tags(self, video_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        rows = self._rows_in(t.videos, ["video_id", "tags"], "video_id", video_ids)
        # Raw MariaDB/MySQL rows carry the JSON column as its text.
        return {
            v: tuple(orjson.loads(tags) if isinstance(tags, str | bytes) else tags or ())
            for v, tags in rows
        }


class SqlStore:
    """The Store port on a SQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        migrate(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with self.engine.begin() as conn:
            yield SqlTransaction(conn)

    def bulk_actions(self, columns: pa.Table) -> BulkActions:
        return bulk_actions(self.engine.dialect.name, columns)

    def add_users(self, users: Sequence[User]) -> int:
        rows = [
            {"user_id": u.user_id, "name": u.name, "created_at": utc(u.created_at)} for u in users
        ]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, 5000):
                upsert(conn, t.users, list(chunk), ["user_id"], update=["name"])
        return len(rows)

    def get_user(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.user_id == user_id)).first()
        return User(row.user_id, row.name, utc(row.created_at)) if row else None

    def add_videos(self, videos: Sequence[Video]) -> int:
        rows = [
            {
                "video_id": v.video_id,
                "title": v.title,
                "url": v.url,
                "tags": list(v.tags),
                "creator_id": v.creator_id,
                "created_at": utc(v.created_at),
                "duration_ms": v.duration_ms,
            }
            for v in videos
        ]
        update = ["title", "url", "tags", "creator_id", "duration_ms"]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, 5000):
                upsert(conn, t.videos, list(chunk), ["video_id"], update=update)
        return len(rows)

    def get_video(self, video_id: str) -> Video | None:
        return self.get_videos([video_id]).get(video_id)

    def get_videos(self, video_ids: Iterable[str]) -> dict[str, Video]:
        out: dict[str, Video] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(video_ids))):
                for row in conn.execute(sa.select(t.videos).where(t.videos.c.video_id.in_(chunk))):
                    out[row.video_id] = _video(row)
        return out

    def existing_video_ids(self, video_ids: Iterable[str]) -> set[str]:
        return self._existing(t.videos.c.video_id, video_ids)

    def existing_user_ids(self, user_ids: Iterable[str]) -> set[str]:
        return self._existing(t.users.c.user_id, user_ids)

    def _existing(self, column: sa.Column[str], ids: Iterable[str]) -> set[str]:
        out: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                out.update(conn.scalars(sa.select(column).where(column.in_(chunk))))
        return out

    def all_video_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(t.videos.c.video_id)))

    def all_videos(self) -> list[Video]:
        with self.engine.connect() as conn:
            return [
                _video(r) for r in conn.execute(sa.select(t.videos).order_by(t.videos.c.video_id))
            ]

    def bulk_insert_actions(self, actions: Sequence[VideoAction]) -> list[VideoAction]:
        inserted: list[VideoAction] = []
        with self.transaction() as tx:
            for chunk in _chunks(actions, 20_000):
                inserted += tx.insert_new_actions(chunk)
            if inserted:
                tx.ensure_users({a.user_id for a in inserted}, min(a.timestamp for a in inserted))
        return inserted

    def user_actions(self, user_id: str) -> list[VideoAction]:
        c = t.video_actions.c
        query = sa.select(t.video_actions).where(c.user_id == user_id).order_by(c.timestamp, c.id)
        with self.engine.connect() as conn:
            return [_action(r) for r in conn.execute(query)]

    def iter_actions(self, batch_size: int = 50_000) -> Iterator[list[VideoAction]]:
        c = t.video_actions.c
        query = sa.select(t.video_actions).order_by(c.timestamp, c.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(query)
            for part in result.partitions(batch_size):
                yield [_action(r) for r in part]

    def count_actions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(t.video_actions)) or 0)

    def top_popularity(self, limit: int) -> list[PopularityScore]:
        c = t.video_popularity.c
        query = sa.select(t.video_popularity).order_by(c.score.desc(), c.video_id).limit(limit)
        with self.engine.connect() as conn:
            return [
                PopularityScore(r.video_id, r.score, utc(r.last_updated))
                for r in conn.execute(query)
            ]

    def tag_weights(self, user_id: str) -> list[TagWeight]:
        with self.transaction() as tx:
            return list(tx.tag_weights_of([user_id]).values())

    def get_profile(self, user_id: str) -> UserProfile | None:
        query = sa.select(t.user_profiles).where(t.user_profiles.c.user_id == user_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return UserProfile(row.user_id, tuple(row.top_tags), utc(row.updated_at)) if row else None

    def save_recommendations(self, rows: Sequence[StoredRecommendations]) -> None:
        values = [
            {
                "user_id": r.user_id,
                "items": [[i.video_id, i.score, i.reason] for i in r.items],
                "model_version": r.model_version,
                "generated_at": utc(r.generated_at),
            }
            for r in rows
        ]
        with self.engine.begin() as conn:
            for chunk in _chunks(values, 2000):
                upsert(conn, t.recommendations, list(chunk), ["user_id"])

    def get_recommendations(self, user_id: str) -> StoredRecommendations | None:
        query = sa.select(t.recommendations).where(t.recommendations.c.user_id == user_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        items = tuple(ScoredVideo(v, float(s), r) for v, s, r in row.items)
        return StoredRecommendations(row.user_id, items, row.model_version, utc(row.generated_at))

    def delete_recommendations(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.recommendations.delete().where(t.recommendations.c.user_id == user_id))

    def counts(self) -> dict[str, int]:
        tables = [
            t.users,
            t.videos,
            t.video_actions,
            t.user_profiles,
            t.video_popularity,
            t.recommendations,
        ]
        with self.engine.connect() as conn:
            return {
                table.name: int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
                for table in tables
            }

    def forget_counted(self, older_than_seconds: float, limit: int) -> int:
        # By the database's own clock, which stamped the rows (migration 0005).
        dialect = self.engine.dialect.name
        params: dict[str, Any] = {"age": float(older_than_seconds), "limit": limit}
        if dialect == "postgresql":
            old = "counted_at < now() - make_interval(secs => :age)"
        elif dialect in MYSQL:
            old = "counted_at < UTC_TIMESTAMP(6) - INTERVAL :age SECOND"
        else:  # SQLite's CURRENT_TIMESTAMP: 'YYYY-MM-DD HH:MM:SS', UTC
            old = "counted_at < datetime('now', :age)"
            params["age"] = f"{-params['age']:+} seconds"
        if dialect in MYSQL:  # which takes no LIMIT in an IN subquery
            sql = f"DELETE FROM counted_events WHERE {old} ORDER BY counted_at LIMIT :limit"
        else:
            sql = (
                "DELETE FROM counted_events WHERE id IN"
                f" (SELECT id FROM counted_events WHERE {old} LIMIT :limit)"
            )
        with self.engine.begin() as conn:
            return int(conn.execute(sa.text(sql), params).rowcount)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def open_connections(self, count: int) -> None:
        # Checked out together, so the pool opens `count` (it keeps up to pool_size idle).
        with ExitStack() as held:
            for _ in range(count):
                held.enter_context(self.engine.connect())

    def close(self) -> None:
        self.engine.dispose()
