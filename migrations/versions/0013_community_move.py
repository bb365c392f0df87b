"""community move: a community's other names, where it moved, the URIs its entries had, who has followed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:45:00.000000

A community moves from an old instance to a new home (issue 13). On the new home the imported community
names the old Group in `also_known_as`; on the old instance `moved_to` and `moved_at` mark it moved, and it
stays as a redirect map. A peer that follows the move records the old Group in `moved_from`. Each moved guide
and offer keeps the URI it had before the move in `former_uri`, so links and adaptations that name the old
URI still find it. `community_move_peers` lists, per moved community and peer instance, when the Move was
delivered to it and when it was seen to follow the new home.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("also_known_as", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("moved_to", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("moved_at", server.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("moved_from", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", server.db.UTCDateTime(timezone=True), nullable=True))
    for table in ("guides", "mentorship_offers"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("former_uri", sa.String(length=2048), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_former_uri"), ["former_uri"], unique=False)
    op.create_table(
        "community_move_peers",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("notified_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_community_move_peers_community_id_communities"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("community_id", "instance", name=op.f("pk_community_move_peers")),
    )


def downgrade() -> None:
    op.drop_table("community_move_peers")
    for table in ("guides", "mentorship_offers"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_former_uri"))
            batch_op.drop_column("former_uri")
    with op.batch_alter_table("communities", schema=None) as batch_op:
        for column in ("arrived_at", "moved_from", "moved_at", "moved_to", "also_known_as"):
            batch_op.drop_column(column)
