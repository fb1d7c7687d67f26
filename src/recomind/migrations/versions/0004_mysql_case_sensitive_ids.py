"""MariaDB/MySQL: ids compare byte for byte, as on PostgreSQL and SQLite.

The tables took the server's collation (`utf8mb4_unicode_ci` in the project's MariaDB), which
ignores case: users `ABC` and `abc` were one row, and every lookup by id matched either. The
domain's ids are case-sensitive (`[A-Za-z0-9._:-]`). Every id column, and the tag of a
viewer's tag weights, becomes `utf8mb4_bin`. No stored rows can collide: the primary keys
already held them apart under the looser collation. InnoDB rebuilds each table.

Downgrade goes back to the database's default collation (utf8mb4's own default, if the
database's character set is another). If keys that differ only by case (or, for tags, by
accents) were stored meanwhile, two rows would then hold one key: it refuses before it alters
anything, and says in which tables. MariaDB's `ALTER TABLE` commits on its own, so a rebuild
that failed half way would leave some tables changed and others not; and since `sql.migrate`
hands Alembic a connection outside any transaction, each step is committed with its revision,
so a downgrade from a later revision stops at 0004 with the revision recorded as 0004.
"""

from __future__ import annotations

import sqlalchemy as sa
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


# The keys of the tables above: under a collation that ignores case, ids that differ only by
# case collide in them.
KEYS = {
    "users": ("user_id",),
    "videos": ("video_id",),
    "video_actions": ("id",),
    "counted_events": ("id",),
    "user_profiles": ("user_id",),
    "video_popularity": ("video_id",),
    "user_tag_weights": ("user_id", "tag"),
    "recommendations": ("user_id",),
}


def _mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def _collate(collation: str) -> None:
    tables: dict[str, list[str]] = {}
    for table, column, length, nullable in COLUMNS:
        null = "NULL" if nullable else "NOT NULL"
        tables.setdefault(table, []).append(
            f"MODIFY `{column}` VARCHAR({length}) CHARACTER SET utf8mb4 COLLATE {collation} {null}"
        )
    for table, changes in tables.items():  # one rebuild per table
        op.execute(f"ALTER TABLE `{table}` {', '.join(changes)}")


def collisions(collation: str) -> dict[str, int]:
    """Per table, how many of its keys more than one row would hold under `collation`."""
    found = {}
    for table, key in KEYS.items():
        columns = ", ".join(f"`{c}` COLLATE {collation}" for c in key)
        count = op.get_bind().scalar(
            sa.text(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM `{table}` GROUP BY {columns}"
                " HAVING COUNT(*) > 1) AS shared"
            )
        )
        if count:
            found[table] = int(count)
    return found


def upgrade() -> None:
    if _mysql():
        _collate("utf8mb4_bin")


def downgrade() -> None:
    if not _mysql():
        return
    default = str(
        op.get_bind().scalar(
            sa.text(
                "SELECT IF(@@character_set_database = 'utf8mb4', @@collation_database,"
                " (SELECT default_collate_name FROM information_schema.character_sets"
                " WHERE character_set_name = 'utf8mb4'))"
            )
        )
    )
    found = collisions(default)
    if found:
        where = ", ".join(f"{table} ({count})" for table, count in found.items())
        raise RuntimeError(
            f"cannot downgrade below 0004: under {default} some stored keys differ only by case"
            f" (or accents) and would be one, in {where}. 0004's downgrade changed nothing; the"
            " database stays at 0004. Remove or rename those rows first."
        )
    _collate(default)
