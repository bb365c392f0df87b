"""community imports: which archives were imported, so none is imported twice

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 04:00:00.000000

`community_imports` keeps the id of each community archive imported here (from its manifest), the community it
made and the Group it came from.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db


revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "community_imports",
        sa.Column("archive_id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("source_uri", sa.String(length=2048), nullable=False),
        sa.Column("imported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_community_imports_community_id_communities"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("archive_id", name=op.f("pk_community_imports")),
    )
    op.create_index(op.f("ix_community_imports_community_id"), "community_imports", ["community_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_community_imports_community_id"), table_name="community_imports")
    op.drop_table("community_imports")
