"""Drop `ix_video_actions_video`: no query reads `video_actions` by `video_id` alone.

Every read of the table is by viewer and time (`ix_video_actions_user_time`), by id (the primary
key) or of the whole table; yet each stored action paid to keep this index, about a sixth of the
cost of inserting it (docs/benchmarks.md, "Store sink: cheaper insert").
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_video_actions_video", table_name="video_actions")


def downgrade() -> None:
    op.create_index("ix_video_actions_video", "video_actions", ["video_id"])
