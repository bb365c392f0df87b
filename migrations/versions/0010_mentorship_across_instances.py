"""mentorship across instances: request identity and state, private messages, notifications

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:45:00.000000

A request gets the URI both instances know it by, the reason of a refusal, whether it was made here, and the
Offer activity that carried it. Requests made before this had never left their instance: they are named by a
URN of their id. Messages and notifications are new tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mentorship_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uri", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=500), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("local", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("activity_uri", sa.String(length=2048), nullable=True))
    requests = sa.table("mentorship_requests", sa.column("id", sa.Uuid()), sa.column("uri", sa.String()))
    connection = op.get_bind()
    for (request_id,) in connection.execute(sa.select(requests.c.id)).all():
        connection.execute(
            requests.update().where(requests.c.id == request_id).values(uri=f"urn:uuid:{request_id}")
        )
    with op.batch_alter_table("mentorship_requests", schema=None) as batch_op:
        batch_op.alter_column("uri", existing_type=sa.String(length=2048), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_mentorship_requests_uri"), ["uri"])
        batch_op.create_index(batch_op.f("ix_mentorship_requests_activity_uri"), ["activity_uri"], unique=False)
        batch_op.create_index("ix_mentorship_requests_requester_state", ["requester_id", "state"], unique=False)

    op.create_table(
        "mentorship_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("body_markdown", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentorship_requests.id"],
            name=op.f("fk_mentorship_messages_request_id_mentorship_requests"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_mentorship_messages_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentorship_messages")),
        sa.UniqueConstraint("uri", name=op.f("uq_mentorship_messages_uri")),
    )
    op.create_index("ix_mentorship_messages_thread", "mentorship_messages", ["request_id", "created_at", "id"])

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentorship_requests.id"],
            name=op.f("fk_notifications_request_id_mentorship_requests"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["message_id"], ["mentorship_messages.id"],
            name=op.f("fk_notifications_message_id_mentorship_messages"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_notifications_actor_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index("ix_notifications_inbox", "notifications", ["user_id", "read_at", "created_at", "id"])
    op.create_index(op.f("ix_notifications_request_id"), "notifications", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_request_id"), table_name="notifications")
    op.drop_index("ix_notifications_inbox", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_mentorship_messages_thread", table_name="mentorship_messages")
    op.drop_table("mentorship_messages")
    with op.batch_alter_table("mentorship_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_mentorship_requests_requester_state")
        batch_op.drop_index(batch_op.f("ix_mentorship_requests_activity_uri"))
        batch_op.drop_constraint(batch_op.f("uq_mentorship_requests_uri"), type_="unique")
        batch_op.drop_column("activity_uri")
        batch_op.drop_column("local")
        batch_op.drop_column("reason")
        batch_op.drop_column("uri")
