"""guides community listing index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 18:45:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Counting a community's published guides otherwise reads every guide row, bodies included.
    with op.batch_alter_table('guides', schema=None) as batch_op:
        batch_op.create_index(
            'ix_guides_community_listing', ['community_id', 'status', 'deleted_at', 'created_at', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('guides', schema=None) as batch_op:
        batch_op.drop_index('ix_guides_community_listing')
