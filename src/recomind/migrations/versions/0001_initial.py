"""The seed's five tables plus recommendations and per-viewer tag weights."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from recomind.adapters.store.schema import ID, TIMESTAMP, tags_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = TIMESTAMP


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "videos",
        sa.Column("video_id", ID, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("tags", tags_type(), nullable=False),
        sa.Column("creator_id", ID, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=True),
    )
    op.create_table(
        "video_actions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("video_id", ID, nullable=False),
        sa.Column("action_type", sa.String(8), nullable=False),
        sa.Column("timestamp", TS, nullable=False),
        sa.Column("watch_ms", sa.Integer, nullable=True),
    )
    op.create_index("ix_video_actions_user_time", "video_actions", ["user_id", "timestamp"])
    op.create_index("ix_video_actions_video", "video_actions", ["video_id"])
    op.create_table(
        "user_profiles",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("top_tags", tags_type(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "video_popularity",
        sa.Column("video_id", ID, primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("last_updated", TS, nullable=False),
    )
    op.create_index("ix_video_popularity_score", "video_popularity", ["score"])
    op.create_table(
        "user_tag_weights",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "recommendations",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("generated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "recommendations",
        "user_tag_weights",
        "video_popularity",
        "user_profiles",
        "video_actions",
        "videos",
        "users",
    ):
        op.drop_table(table)
