"""adaptations: what each was based on upstream

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-07 01:05:00.000000

`guide_upstreams` keeps, for a local guide adapting another, the upstream revision and text it was based on
and the attribution; `guides.derived_from` is indexed so that the origin finds the guides adapting it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guide_upstreams",
        sa.Column("guide_id", sa.Uuid(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=False),
        sa.Column("base_title", sa.String(length=200), nullable=False),
        sa.Column("base_body", sa.Text(), nullable=False),
        sa.Column("dismissed_revision", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("community_name", sa.String(length=100), nullable=False),
        sa.Column("community_url", sa.String(length=2048), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("author_url", sa.String(length=2048), nullable=False),
        sa.Column("license", sa.String(length=64), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guide_id"], ["guides.id"], name=op.f("fk_guide_upstreams_guide_id_guides"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("guide_id", name=op.f("pk_guide_upstreams")),
    )
    # Plain index operations: a batch rebuild of `guides` would drop its counter triggers (0006).
    op.create_index(op.f("ix_guide_upstreams_uri"), "guide_upstreams", ["uri"], unique=False)
    op.create_index(op.f("ix_guides_derived_from"), "guides", ["derived_from"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_guides_derived_from"), table_name="guides")
    op.drop_index(op.f("ix_guide_upstreams_uri"), table_name="guide_upstreams")
    op.drop_table("guide_upstreams")
