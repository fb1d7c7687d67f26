"""`counted_events.counted_at`: when the `recomind-profile` group counted each event, so the
ledger can forget ids older than its retention (`RECOMIND_LEDGER_RETENTION_DAYS`) instead of
growing for ever.

Each database's own clock stamps the rows (its column default, in UTC), and the pruning
compares with the same clock. The ids counted before this migration are stamped with the time
it ran, so they are kept a whole retention from then.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The database's own current time in UTC, as each dialect takes it for a column default (a
# DATETIME on MariaDB/MySQL holds UTC, as the store writes every other time there).
NOW = {
    "postgresql": "now()",
    "mysql": "(UTC_TIMESTAMP(6))",
    "mariadb": "(UTC_TIMESTAMP(6))",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    column = sa.Column(
        "counted_at",
        # schema.TIMESTAMP, as it stood at this revision
        sa.DateTime(timezone=True).with_variant(DATETIME(fsp=6), "mysql", "mariadb"),
        nullable=False,
        server_default=sa.text(NOW.get(dialect, "CURRENT_TIMESTAMP")),
    )
    # SQLite adds a column with a non-constant default only by copying the table.
    recreate: Literal["always", "auto"] = "always" if dialect == "sqlite" else "auto"
    with op.batch_alter_table("counted_events", recreate=recreate) as batch:
        batch.add_column(column)
        batch.create_index("ix_counted_events_counted_at", ["counted_at"])


def downgrade() -> None:
    with op.batch_alter_table("counted_events") as batch:
        batch.drop_index("ix_counted_events_counted_at")
        batch.drop_column("counted_at")
