"""claims look only at a chat's unfinished rows: indexes on (chat_id, status, order)

The inbox claim asks, for each candidate update, whether an earlier update of its chat is
still pending or being handled; the dispatcher's claim asks the same of a chat's messages.
With only (chat_id, update_id) that question read the chat's whole history (a claim for a
chat with 20,000 updates took tens of milliseconds: ``benchmarks/bench_claim_history.py``);
with the status in the index it reads the unfinished rows only.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 01:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_exchange_chat_unfinished", "exchange", ["chat_id", "status", "update_id"])
    op.create_index("ix_outbox_chat_unsent", "outbox", ["chat_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_chat_unsent", table_name="outbox")
    op.drop_index("ix_exchange_chat_unfinished", table_name="exchange")
