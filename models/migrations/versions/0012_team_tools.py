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
    # Plain ALTER TABLE, no batch mode: rebuilding ``account`` on SQLite would cascade into
    # every table that points at it (see 0007).
    op.add_column(
        "service",
        sa.Column(
            "notes_updated",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column("account", sa.Column("username", sa.String(length=32), nullable=True))
    op.create_index("ix_account_username", "account", ["username"])


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (again: no rebuild, no cascade).
    op.drop_index("ix_account_username", table_name="account")
    op.drop_column("account", "username")
    op.drop_column("service", "notes_updated")
