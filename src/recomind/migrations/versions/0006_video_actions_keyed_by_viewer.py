"""`video_actions` keyed by (user_id, id), without its index on (user_id, timestamp) (ADR 0011).

The table was keyed by event id and read by viewer through a secondary index. Every replay of
an event carries its viewer, so (user_id, id) still holds each event once, and the read by
viewer is a range of the key. Each stored action then updates one B-tree, not two: MariaDB's
store group drained 10,000 events at a median of 93,200 rows/s, against 71,848 before (6
pairs; docs/benchmarks.md, "Actions keyed by viewer"). On MariaDB, whose rows live in the
key's B-tree, a viewer's actions are also stored together.

PostgreSQL and MariaDB change the key in place (MariaDB rebuilds the table once); SQLite cannot
alter a primary key, so its table is copied into a new one.

Downgrade goes back to the key on id and the index. If an id was stored for two viewers
meanwhile (a client that sent one id for actions of two viewers), the key on id cannot hold
them: it refuses before it changes anything, and says how many such ids there are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from recomind.adapters.store.schema import ID, TIMESTAMP

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX = "ix_video_actions_user_time"


def _rebuild_sqlite(*key: str) -> None:
    """SQLite: `video_actions` copied into a table of the same columns keyed by `key`. SQLite
    makes a table outside the transaction that the copy, the drop and the rename share, so one
    left empty by a copy that was cut short is dropped first."""
    op.execute("DROP TABLE IF EXISTS _video_actions_new")
    op.create_table(
        "_video_actions_new",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("video_id", ID, nullable=False),
        sa.Column("action_type", sa.String(8), nullable=False),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("watch_ms", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint(*key),
    )
    op.execute(
        "INSERT INTO _video_actions_new (id, user_id, video_id, action_type, timestamp, watch_ms)"
        " SELECT id, user_id, video_id, action_type, timestamp, watch_ms FROM video_actions"
    )
    op.drop_table("video_actions")
    op.rename_table("_video_actions_new", "video_actions")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        op.execute(
            "ALTER TABLE video_actions DROP PRIMARY KEY, ADD PRIMARY KEY (user_id, id),"
            f" DROP INDEX {INDEX}"
        )
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE video_actions DROP CONSTRAINT video_actions_pkey,"
            " ADD CONSTRAINT video_actions_pkey PRIMARY KEY (user_id, id)"
        )
        op.drop_index(INDEX, table_name="video_actions")
    else:
        _rebuild_sqlite("user_id", "id")


def downgrade() -> None:
    shared = op.get_bind().scalar(
        sa.text(
            "SELECT COUNT(*) FROM (SELECT id FROM video_actions GROUP BY id HAVING COUNT(*) > 1)"
            " AS shared"
        )
    )
    if shared:
        raise RuntimeError(
            f"cannot downgrade below 0006: {shared} event id(s) are stored for more than one"
            " viewer, which a key on id alone cannot hold. 0006's downgrade changed nothing;"
            " remove those rows first (SELECT id FROM video_actions GROUP BY id HAVING"
            " COUNT(*) > 1)."
        )
    dialect = op.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        op.execute(
            "ALTER TABLE video_actions DROP PRIMARY KEY, ADD PRIMARY KEY (id),"
            f" ADD INDEX {INDEX} (user_id, timestamp)"
        )
        return
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE video_actions DROP CONSTRAINT video_actions_pkey,"
            " ADD CONSTRAINT video_actions_pkey PRIMARY KEY (id)"
        )
    else:
        _rebuild_sqlite("id")
    op.create_index(INDEX, "video_actions", ["user_id", "timestamp"])
