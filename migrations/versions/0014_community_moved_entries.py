"""community moved entries: the redirect map of a community that moved away

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:50:00.000000

Once a community has moved, each of its old guide and offer pages answers 301 to the same entry on the new
home. The old instance learns each entry's new uri and page from the new home's entries' `formerUri`, and
keeps them here, by the uri the entry had before the move.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "community_moved_entries",
        sa.Column("old_uri", sa.String(length=2048), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("new_uri", sa.String(length=2048), nullable=False),
        sa.Column("new_url", sa.String(length=2048), nullable=False),
        sa.Column("learnt_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_community_moved_entries_community_id_communities"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("old_uri", name=op.f("pk_community_moved_entries")),
    )
    with op.batch_alter_table("community_moved_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_community_moved_entries_community_id"), ["community_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("community_moved_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_community_moved_entries_community_id"))
    op.drop_table("community_moved_entries")
