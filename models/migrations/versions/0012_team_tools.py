"""team tools: notes dated per language; staff usernames, to find staff by @username

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-01 22:20:00

``service.notes_updated`` holds, per language, when that language's note was last written
from the bot, so a note in one language is edited alone and the others are shown as older.
``account.username`` is the Telegram @username of staff accounts (kept for staff only, like
their first name), so ``/staffof @name`` finds a person who has written to the bot.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service") as batch:
        batch.add_column(
            sa.Column(
                "notes_updated",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("username", sa.String(length=32), nullable=True))
        batch.create_index("ix_account_username", ["username"])


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_index("ix_account_username")
        batch.drop_column("username")
    with op.batch_alter_table("service") as batch:
        batch.drop_column("notes_updated")
