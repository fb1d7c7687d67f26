"""Add `counted_events`, the ledger of the `recomind-profile` group (ADR 0008).

Popularity and profiles moved from the `recomind-store` group's transaction to a group of their
own, which counts an event only if its id is not in this table yet. Every stored action was
counted by the old group in the same transaction that stored it, so the ledger starts with
every stored id: an event the new group reads again is not counted twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("counted_events", sa.Column("id", sa.String(36), primary_key=True))
    op.execute("INSERT INTO counted_events (id) SELECT id FROM video_actions")


def downgrade() -> None:
    op.drop_table("counted_events")
