"""Decayed popularity, tag weights and top tags computed by the database, one statement each.

A batch's weights go once to a temporary table, `recomind_added` (binary COPY on PostgreSQL,
multi-row INSERT on MariaDB/MySQL), and set-based SQL adds them to the stored rows, so nothing
is read back into Python and no row is upserted one by one. Popularity and tag weights use the
same staged rows: the transaction stages a list of weights once.

The sums are those of `recomind.domain.scoring` (`add_decayed`): a score is kept with the
instant it is valid at, and adding weights moves it to the latest instant. Per key, the batch's
weights are summed at their latest instant, T = max(at), as Σ w·2^(-(T - at)/h); the upsert
then moves the stored score and that sum to the later of the two instants and adds them. This
equals adding the weights one by one in any order (`tests/unit/test_scoring.py` checks that
order does not matter; the store contract suite checks these statements against the Python
sums).

A decay factor below 2^-700 counts as 0: PostgreSQL raises an error on a floating-point
underflow where Python's `math.pow` returns 0, and nothing that small changes a ranking.

Each key's latest instant T is not found by a window over the rows (a sort of the joined rows
by key): the sum is taken as 2^(-(T - L)/h) · Σ w·2^(-(L - at)/h), with L the batch's latest
instant, which the client knows, in one grouping. That is the same sum while every factor
stays in range: when the batch spans at most `SPAN_LIMIT` half-lives, each factor lies between
2^-SPAN_LIMIT and 2^SPAN_LIMIT. A batch that spans more (an import of years of history with a
short half-life) is summed by the window. The tag weights' statement took a median of 160 ms
of MariaDB's CPU per 20,000 events against 235 by the window, and 95 ms of PostgreSQL's against
115 (`benchmarks/store_sink_drain.py`, batches of 5,000, 6 runs each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recomind.adapters.store import mysql_bulk, pg_bulk
from recomind.adapters.store import schema as t
from recomind.domain.model import Engagement

STAGE = "recomind_added"
# The most half-lives a batch may span for its sums to be taken from its latest instant.
SPAN_LIMIT = 500
# How many tags a profile keeps (`scoring.top_tags`' default).
TOP_TAGS = 5
# Ids per literal IN (…) list on MariaDB/MySQL.
_IN_CHUNK = 5000

# The staging table's shape, for the MariaDB/MySQL literal renderers (not a migrated table).
_stage = sa.Table(
    STAGE,
    sa.MetaData(),
    sa.Column("user_id", t.ID),
    sa.Column("video_id", t.ID),
    sa.Column("weight", sa.Float),
    sa.Column("added_at", t.TIMESTAMP),
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rows(added: Sequence[Engagement]) -> list[tuple[str, str, float, datetime]]:
    return [(e.user_id, e.video_id, float(e.weight), _utc(e.at)) for e in added]


@dataclass(frozen=True)
class Span:
    """The first and the latest instant of a staged batch."""

    first: datetime
    latest: datetime

    @classmethod
    def of(cls, added: Sequence[Engagement]) -> Span:
        stamps = [_utc(e.at) for e in added]  # as staged: a naive time is UTC
        return cls(min(stamps), max(stamps))

    def anchor(self, half_life_hours: float) -> datetime | None:
        """The instant to take the sums from (the latest), or None when the batch spans too
        many half-lives for that (`SPAN_LIMIT`)."""
        hours = (self.latest - self.first).total_seconds() / 3600.0
        return self.latest if hours <= SPAN_LIMIT * half_life_hours else None


# -- PostgreSQL ------------------------------------------------------------------------


def _pg_decay(later: str, earlier: str) -> str:
    # date_part, not extract: extract returns numeric, whose arithmetic costs far more.
    x = f"(-date_part('epoch', ({later}) - ({earlier})) / 3600.0 / %(h)s)"
    return f"(CASE WHEN {x} < -700 THEN 0::float8 ELSE power(2::float8, {x}) END)"


def _pg_stage(conn: Connection, added: Sequence[Engagement]) -> None:
    cur = pg_bulk.dbapi(conn).cursor()
    # Notices off for this transaction: IF NOT EXISTS would send one per batch.
    cur.execute(
        "SET LOCAL client_min_messages = warning;"
        f" CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (user_id text, video_id text,"
        " weight float8, added_at timestamptz) ON COMMIT DELETE ROWS;"
        f" DELETE FROM {STAGE}"
    )
    with cur.copy(f"COPY {STAGE} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "text", "float8", "timestamptz"])
        for row in _rows(added):
            copy.write_row(row)
    cur.close()


def _pg_sum(keys: str, source: str, anchor: datetime | None) -> str:
    """The `SELECT` of each key's decayed sum at its latest instant, `top`, from `source`
    (rows of `keys`, weight and added_at): one grouping from the anchor when there is one, else
    a window for each key's latest instant."""
    if anchor is not None:
        return f"""
            SELECT {keys}, sum(weight * {_pg_decay("%(anchor)s::timestamptz", "added_at")})
                       * power(2::float8,
                               date_part('epoch', %(anchor)s::timestamptz - max(added_at))
                               / 3600.0 / %(h)s),
                   max(added_at)
            FROM ({source}) a
            GROUP BY {keys}"""
    return f"""
        SELECT {keys}, sum(weight * {_pg_decay("top", "added_at")}), top
        FROM (SELECT *, max(added_at) OVER (PARTITION BY {keys}) AS top FROM ({source}) s) a
        GROUP BY {keys}, top"""


def _pg_popularity(conn: Connection, half_life_hours: float, span: Span) -> None:
    moved_to = "greatest(p.last_updated, EXCLUDED.last_updated)"
    source = f'SELECT video_id COLLATE "C" AS video_id, weight, added_at FROM {STAGE}'
    anchor = span.anchor(half_life_hours)
    sql = f"""
        INSERT INTO video_popularity AS p (video_id, score, last_updated)
        {_pg_sum("video_id", source, anchor)}
        ON CONFLICT (video_id) DO UPDATE SET
            score = p.score * {_pg_decay(moved_to, "p.last_updated")}
                  + EXCLUDED.score * {_pg_decay(moved_to, "EXCLUDED.last_updated")},
            last_updated = {moved_to}"""
    with pg_bulk.dbapi(conn).cursor() as cur:
        cur.execute(sql, {"h": half_life_hours, "anchor": anchor})


def _pg_tag_weights(conn: Connection, half_life_hours: float, span: Span) -> None:
    moved_to = "greatest(w.updated_at, EXCLUDED.updated_at)"
    source = f"""
        SELECT a.user_id COLLATE "C" AS user_id, g.tag COLLATE "C" AS tag, a.weight, a.added_at
        FROM {STAGE} a
        JOIN videos v ON v.video_id = a.video_id
        CROSS JOIN LATERAL unnest(v.tags) AS g(tag)"""
    anchor = span.anchor(half_life_hours)
    sql = f"""
        INSERT INTO user_tag_weights AS w (user_id, tag, weight, updated_at)
        {_pg_sum("user_id, tag", source, anchor)}
        ON CONFLICT (user_id, tag) DO UPDATE SET
            weight = w.weight * {_pg_decay(moved_to, "w.updated_at")}
                   + EXCLUDED.weight * {_pg_decay(moved_to, "EXCLUDED.updated_at")},
            updated_at = {moved_to}"""
    with pg_bulk.dbapi(conn).cursor() as cur:
        cur.execute(sql, {"h": half_life_hours, "anchor": anchor})


def _pg_top_tags(conn: Connection, user_ids: list[str], at: datetime) -> None:
    # COLLATE "C": ties go by code point, as Python compares strings.
    sql = f"""
        INSERT INTO user_profiles AS p (user_id, top_tags, updated_at)
        SELECT u.user_id,
               ARRAY(SELECT w.tag FROM user_tag_weights w
                     WHERE w.user_id = u.user_id AND w.weight > 0
                     ORDER BY w.weight DESC, w.tag COLLATE "C" LIMIT {TOP_TAGS}),
               %b::timestamptz
        FROM unnest(%b::text[]) AS u(user_id)
        ON CONFLICT (user_id) DO UPDATE SET
            top_tags = EXCLUDED.top_tags, updated_at = EXCLUDED.updated_at"""
    with pg_bulk.dbapi(conn).cursor() as cur:
        cur.execute(sql, [at, user_ids], binary=True)


# -- MariaDB / MySQL -------------------------------------------------------------------


def _my_decay(later: str, earlier: str, half_life_hours: float) -> str:
    # 1e0 makes the arithmetic DOUBLE: a DECIMAL division would keep only a few digits.
    h = repr(float(half_life_hours))
    x = f"(-(TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) * 1e0) / 3.6e9 / {h})"
    return f"(CASE WHEN {x} < -700 THEN 0e0 ELSE POW(2e0, {x}) END)"


def _my_stage(conn: Connection, added: Sequence[Engagement]) -> None:
    with mysql_bulk.dbapi(conn).cursor() as cur:
        # A temporary table is private to the session, and creating one does not commit. In
        # memory: it is emptied before each use, so it need not follow the transaction.
        cur.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (user_id VARCHAR(64),"
            " video_id VARCHAR(64), weight DOUBLE, added_at DATETIME(6)) ENGINE=MEMORY"
        )
        cur.execute(f"DELETE FROM {STAGE}")

        def write(fh: IO[bytes]) -> None:
            # Ids are `[A-Za-z0-9._:-]`: no quoting needed; a float's repr reads back exactly.
            fh.write(
                "".join(
                    f"{u}\t{v}\t{w!r}\t{at.replace(tzinfo=None).isoformat(' ')}\n"
                    for u, v, w, at in _rows(added)
                ).encode()
            )

        # A LOCAL load, as the store group's: rendering each row as SQL literals cost more.
        if mysql_bulk.load_local(cur, write, f"{STAGE} CHARACTER SET utf8mb4") is not None:
            return
    rows = [dict(zip(_stage.c.keys(), r, strict=True)) for r in _rows(added)]
    mysql_bulk.insert_values(conn, _stage, rows)


def _my_sum(keys: str, source: str, half_life_hours: float, anchor: datetime | None) -> str:
    """As `_pg_sum`, on MariaDB/MySQL."""

    def decay(later: str, earlier: str) -> str:
        return _my_decay(later, earlier, half_life_hours)

    if anchor is not None:
        at = f"'{anchor.replace(tzinfo=None).isoformat(' ', 'microseconds')}'"
        h = repr(float(half_life_hours))
        return f"""
            SELECT {keys}, SUM(weight * {decay(at, "added_at")})
                       * POW(2e0, TIMESTAMPDIFF(MICROSECOND, MAX(added_at), {at}) * 1e0
                                  / 3.6e9 / {h}),
                   MAX(added_at)
            FROM ({source}) a
            GROUP BY {keys}"""
    return f"""
        SELECT {keys}, SUM(weight * {decay("top", "added_at")}), top
        FROM (SELECT s.*, MAX(added_at) OVER (PARTITION BY {keys}) AS top FROM ({source}) s) a
        GROUP BY {keys}, top"""


def _my_popularity(conn: Connection, half_life_hours: float, span: Span) -> None:
    p = "video_popularity"
    moved_to = f"GREATEST({p}.last_updated, VALUES(last_updated))"

    def decay(later: str, earlier: str) -> str:
        return _my_decay(later, earlier, half_life_hours)

    source = f"SELECT video_id, weight, added_at FROM {STAGE}"
    sums = _my_sum("video_id", source, half_life_hours, span.anchor(half_life_hours))
    # Assignments run left to right: `score` still sees the old `last_updated`.
    sql = f"""
        INSERT INTO {p} (video_id, score, last_updated)
        {sums}
        ON DUPLICATE KEY UPDATE
            score = {p}.score * {decay(moved_to, f"{p}.last_updated")}
                  + VALUES(score) * {decay(moved_to, "VALUES(last_updated)")},
            last_updated = {moved_to}"""
    with mysql_bulk.dbapi(conn).cursor() as cur:
        cur.execute(sql)


def _my_tag_weights(conn: Connection, half_life_hours: float, span: Span) -> None:
    w = "user_tag_weights"
    moved_to = f"GREATEST({w}.updated_at, VALUES(updated_at))"

    def decay(later: str, earlier: str) -> str:
        return _my_decay(later, earlier, half_life_hours)

    source = f"""
        SELECT a.user_id, g.tag, a.weight, a.added_at
        FROM {STAGE} a
        JOIN videos v ON v.video_id = a.video_id,
        JSON_TABLE(v.tags, '$[*]' COLUMNS (tag VARCHAR(255) PATH '$')) AS g"""
    sums = _my_sum("user_id, tag", source, half_life_hours, span.anchor(half_life_hours))
    sql = f"""
        INSERT INTO {w} (user_id, tag, weight, updated_at)
        {sums}
        ON DUPLICATE KEY UPDATE
            weight = {w}.weight * {decay(moved_to, f"{w}.updated_at")}
                   + VALUES(weight) * {decay(moved_to, "VALUES(updated_at)")},
            updated_at = {moved_to}"""
    with mysql_bulk.dbapi(conn).cursor() as cur:
        cur.execute(sql)


def _my_top_tags(conn: Connection, user_ids: list[str], at: datetime) -> None:
    escape = mysql_bulk.escaper(conn)
    stamp = mysql_bulk.renderers(conn, t.user_profiles, ["updated_at"])[0](at)
    with mysql_bulk.dbapi(conn).cursor() as cur:
        for start in range(0, len(user_ids), _IN_CHUNK):
            ids = escape(orjson.dumps(user_ids[start : start + _IN_CHUNK]).decode())
            # CAST(… AS BINARY): ties go by code point, as Python compares strings.
            cur.execute(f"""
                INSERT INTO user_profiles (user_id, top_tags, updated_at)
                SELECT u.user_id,
                       COALESCE((SELECT JSON_ARRAYAGG(w.tag ORDER BY w.weight DESC,
                                                      CAST(w.tag AS BINARY) LIMIT {TOP_TAGS})
                                 FROM user_tag_weights w
                                 WHERE w.user_id = u.user_id AND w.weight > 0), JSON_ARRAY()),
                       {stamp}
                FROM JSON_TABLE('{ids}', '$[*]' COLUMNS (user_id VARCHAR(64) PATH '$')) AS u
                ON DUPLICATE KEY UPDATE
                    top_tags = VALUES(top_tags), updated_at = VALUES(updated_at)""")


# -- by dialect ------------------------------------------------------------------------


def stage(conn: Connection, added: Sequence[Engagement]) -> None:
    """Put the weights in `recomind_added`, for the statements below (this transaction)."""
    if conn.dialect.name == "postgresql":
        _pg_stage(conn, added)
    else:
        _my_stage(conn, added)


def add_to_popularity(conn: Connection, half_life_hours: float, span: Span) -> None:
    """Add the staged weights (of `span`) to popularity."""
    if conn.dialect.name == "postgresql":
        _pg_popularity(conn, half_life_hours, span)
    else:
        _my_popularity(conn, half_life_hours, span)


def add_to_tag_weights(conn: Connection, half_life_hours: float, span: Span) -> None:
    """Add the staged weights (of `span`) to tag weights."""
    if conn.dialect.name == "postgresql":
        _pg_tag_weights(conn, half_life_hours, span)
    else:
        _my_tag_weights(conn, half_life_hours, span)


def refresh_top_tags(conn: Connection, user_ids: list[str], at: datetime) -> None:
    if conn.dialect.name == "postgresql":
        _pg_top_tags(conn, user_ids, at)
    else:
        _my_top_tags(conn, user_ids, at)
