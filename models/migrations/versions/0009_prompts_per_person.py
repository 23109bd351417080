"""prompts per person: a typed answer awaited is the asked person's, in the chat where asked

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:00:00

``chat_prompt`` was keyed by chat: in a group, anyone's next message answered a question put
to one member. It is now keyed by account, with the chat kept as a column. Open questions of
private chats (chat id = the person's Telegram id) are carried over; those asked in groups
(at most 30 minutes old) are dropped: the person simply taps again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _set_aside(old_name: str) -> None:
    """Rename the table out of the way (on PostgreSQL its key's name too, which is global)."""
    op.rename_table("chat_prompt", old_name)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {old_name} RENAME CONSTRAINT pk_chat_prompt TO pk_{old_name}")


def upgrade() -> None:
    _set_aside("chat_prompt_by_chat")
    op.create_table(
        "chat_prompt",
        sa.Column("account_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("until", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_chat_prompt_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_chat_prompt")),
    )
    op.execute(
        "INSERT INTO chat_prompt (account_id, chat_id, kind, value, until) "
        "SELECT account.id, old.chat_id, old.kind, old.value, old.until "
        "FROM chat_prompt_by_chat AS old JOIN account ON account.telegram_id = old.chat_id"
    )
    op.drop_table("chat_prompt_by_chat")


def downgrade() -> None:
    _set_aside("chat_prompt_by_account")
    op.create_table(
        "chat_prompt",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("until", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_prompt")),
    )
    op.execute(
        "INSERT INTO chat_prompt (chat_id, kind, value, until) "
        "SELECT old.chat_id, old.kind, old.value, old.until "
        "FROM chat_prompt_by_account AS old JOIN account ON account.telegram_id = old.chat_id"
    )
    op.drop_table("chat_prompt_by_account")
