"""one way out: replies leave through the outbox (their update, flow and role; uploaded files)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("in_reply_to", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("flow", sa.String(64), nullable=True))
        batch.add_column(sa.Column("role", sa.String(20), nullable=True))
    op.create_table(
        "outbox_file",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("mimetype", sa.String(100), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_file_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_file")),
    )
    op.create_index("ix_outbox_file_outbox_id", "outbox_file", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_file_outbox_id", table_name="outbox_file")
    op.drop_table("outbox_file")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("role")
        batch.drop_column("flow")
        batch.drop_column("in_reply_to")
