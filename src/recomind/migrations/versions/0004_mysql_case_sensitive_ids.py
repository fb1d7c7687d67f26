"""MariaDB/MySQL: ids compare byte for byte, as on PostgreSQL and SQLite.

The tables took the server's collation (`utf8mb4_unicode_ci` in the project's MariaDB), which
ignores case: users `ABC` and `abc` were one row, and every lookup by id matched either. The
domain's ids are case-sensitive (`[A-Za-z0-9._:-]`). Every id column, and the tag of a
viewer's tag weights, becomes `utf8mb4_bin`. No stored rows can collide: the primary keys
already held them apart under the looser collation. InnoDB rebuilds each table.

Downgrade goes back to the database's default collation, and fails if ids that differ only by
case were stored meanwhile.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, column, length, nullable)
COLUMNS = (
    ("users", "user_id", 64, False),
    ("videos", "video_id", 64, False),
    ("videos", "creator_id", 64, True),
    ("video_actions", "id", 36, False),
    ("video_actions", "user_id", 64, False),
    ("video_actions", "video_id", 64, False),
    ("counted_events", "id", 36, False),
    ("user_profiles", "user_id", 64, False),
    ("video_popularity", "video_id", 64, False),
    ("user_tag_weights", "user_id", 64, False),
    ("user_tag_weights", "tag", 64, False),
    ("recommendations", "user_id", 64, False),
)


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    tables: dict[str, list[str]] = {}
    for table, column, length, nullable in COLUMNS:
        collate = f" COLLATE {collation}" if collation else ""
        null = "NULL" if nullable else "NOT NULL"
        tables.setdefault(table, []).append(
            f"MODIFY `{column}` VARCHAR({length}) CHARACTER SET utf8mb4{collate} {null}"
        )
    for table, changes in tables.items():  # one rebuild per table
        op.execute(f"ALTER TABLE `{table}` {', '.join(changes)}")


def upgrade() -> None:
    _collate("utf8mb4_bin")


def downgrade() -> None:
    _collate(None)  # the database's default
