"""Table definitions of the seed schema plus what the pipeline needs.

Migrations (recomind/migrations) create these tables; this module is what the
adapter queries against. Tags are TEXT[] on PostgreSQL and JSON elsewhere.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.mysql import DATETIME as MYSQL_DATETIME
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

ID = String(64)
# MySQL/MariaDB DATETIME drops fractions of a second unless asked to keep microseconds.
TIMESTAMP = DateTime(timezone=True).with_variant(MYSQL_DATETIME(fsp=6), "mysql", "mariadb")
metadata = MetaData()


def tags_type() -> TypeEngine[list[str]]:
    return JSON().with_variant(ARRAY(Text()), "postgresql")


users = Table(
    "users",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("name", String(256), nullable=True),
    Column("created_at", TIMESTAMP, nullable=False),
)

videos = Table(
    "videos",
    metadata,
    Column("video_id", ID, primary_key=True),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("tags", tags_type(), nullable=False),
    Column("creator_id", ID, nullable=True),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("duration_ms", Integer, nullable=True),
)

video_actions = Table(
    "video_actions",
    metadata,
    Column("id", String(36), nullable=False),
    Column("user_id", ID, nullable=False),
    Column("video_id", ID, nullable=False),
    Column("action_type", String(8), nullable=False),
    Column("timestamp", TIMESTAMP, nullable=False),
    Column("watch_ms", Integer, nullable=True),
    # Keyed by viewer, then event id (migration 0006, ADR 0011): every replay of an event
    # carries its viewer, so the key still stores each event once, and it serves the one read
    # by viewer (a viewer's history, the feed's seen videos) without a secondary index. The
    # table has none: 0002 dropped the one on video_id and 0006 the one on (user_id, timestamp).
    PrimaryKeyConstraint("user_id", "id"),
)

# The ids of the events whose popularity and profile effects are applied (the
# `recomind-profile` group's exactly-once ledger, ADR 0008), each with the time it was counted,
# in UTC by the database's clock: the inserts give the id only, and the column's default, which
# migration 0005 sets per database, stamps it. Ids older than the ledger's retention are
# forgotten (`forget_counted`).
counted_events = Table(
    "counted_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("counted_at", TIMESTAMP, nullable=False),
    Index("ix_counted_events_counted_at", "counted_at"),
)

user_profiles = Table(
    "user_profiles",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("top_tags", tags_type(), nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
)

video_popularity = Table(
    "video_popularity",
    metadata,
    Column("video_id", ID, primary_key=True),
    Column("score", Float, nullable=False),
    Column("last_updated", TIMESTAMP, nullable=False),
    Index("ix_video_popularity_score", "score"),
)

user_tag_weights = Table(
    "user_tag_weights",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("weight", Float, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
)

recommendations = Table(
    "recommendations",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("items", JSON, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("generated_at", TIMESTAMP, nullable=False),
)
