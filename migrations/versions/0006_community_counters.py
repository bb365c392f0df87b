"""community counters kept by triggers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:30:00.000000

`communities.guides_count` (published guides not deleted) and `communities.open_offers_count` (open offers not
deleted) are kept by triggers on `guides` and `mentorship_offers`, so every writer keeps them right: the services,
the federation handlers' bulk statements, soft and hard deletes, status changes, a move to another community.
Pages and the API read the columns instead of counting per request.

On SQLite a table rebuilt by a later batch migration loses its triggers: such a migration must create them
again (`create_triggers` below, as of this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, counter column on communities, the condition that a row of the table counts, with {row} for NEW/OLD)
COUNTERS = (
    ("guides", "guides_count", "{row}.status = 'published' AND {row}.deleted_at IS NULL"),
    ("mentorship_offers", "open_offers_count", "{row}.status = 'open' AND {row}.deleted_at IS NULL"),
)


def upgrade() -> None:
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guides_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("open_offers_count", sa.Integer(), server_default="0", nullable=False))
    create_triggers()
    for table, column, counts in COUNTERS:
        op.execute(
            f"UPDATE communities SET {column} = (SELECT count(*) FROM {table} "
            f"WHERE {table}.community_id = communities.id AND {counts.format(row=table)})"
        )


def downgrade() -> None:
    drop_triggers()
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.drop_column("open_offers_count")
        batch_op.drop_column("guides_count")


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, counts in COUNTERS:
            _create_postgresql(table, column, counts)
    else:
        for table, column, counts in COUNTERS:
            _create_sqlite(table, column, counts)


def drop_triggers() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column, _ in COUNTERS:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {column}_trigger ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {column}_maintain()")
        else:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {column}_after_{event}")


def _create_sqlite(table: str, column: str, counts: str) -> None:
    new, old = counts.format(row="NEW"), counts.format(row="OLD")
    increment = f"UPDATE communities SET {column} = {column} + 1 WHERE id = NEW.community_id"
    decrement = f"UPDATE communities SET {column} = {column} - 1 WHERE id = OLD.community_id"
    op.execute(f"CREATE TRIGGER {column}_after_insert AFTER INSERT ON {table} WHEN {new} BEGIN {increment}; END")
    op.execute(f"CREATE TRIGGER {column}_after_delete AFTER DELETE ON {table} WHEN {old} BEGIN {decrement}; END")
    # Only when the row starts or stops counting, or counts for another community.
    moved = "NEW.community_id IS NOT OLD.community_id"
    op.execute(
        f"CREATE TRIGGER {column}_after_update AFTER UPDATE OF status, deleted_at, community_id ON {table} "
        f"WHEN ({old}) IS NOT ({new}) OR {moved} BEGIN "
        f"{decrement} AND ({old}); "
        f"{increment} AND ({new}); "
        "END"
    )


def _create_postgresql(table: str, column: str, counts: str) -> None:
    new, old = counts.format(row="NEW"), counts.format(row="OLD")
    op.execute(
        f"""
        CREATE FUNCTION {column}_maintain() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF {new} THEN
                    UPDATE communities SET {column} = {column} + 1 WHERE id = NEW.community_id;
                END IF;
            ELSIF TG_OP = 'DELETE' THEN
                IF {old} THEN
                    UPDATE communities SET {column} = {column} - 1 WHERE id = OLD.community_id;
                END IF;
            ELSIF ({old}) IS DISTINCT FROM ({new}) OR NEW.community_id IS DISTINCT FROM OLD.community_id THEN
                -- Only when the row starts or stops counting, or counts for another community.
                IF {old} THEN
                    UPDATE communities SET {column} = {column} - 1 WHERE id = OLD.community_id;
                END IF;
                IF {new} THEN
                    UPDATE communities SET {column} = {column} + 1 WHERE id = NEW.community_id;
                END IF;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {column}_trigger AFTER INSERT OR UPDATE OF status, deleted_at, community_id OR DELETE "
        f"ON {table} FOR EACH ROW EXECUTE FUNCTION {column}_maintain()"
    )
