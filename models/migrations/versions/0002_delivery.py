"""Delivery: shared rate-limit slots, inbox claim counter, outbox per-chat order index

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_slot",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_slot")),
    )
    with op.batch_alter_table("exchange", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claims", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_chat_order", ["chat_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_chat_order")

    with op.batch_alter_table("exchange", schema=None) as batch_op:
        batch_op.drop_column("claims")

    op.drop_table("rate_slot")
