"""unalerted cases: a case nobody could be alerted about says so, until someone is

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00

A nullable column: on SQLite ``ADD COLUMN`` needs no rebuild of ``help_case``. The sweep
that looks for such cases asks for ``status = 'new'`` too, which the existing
``ix_help_case_status_escalation`` index serves (open, unassigned cases are few).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "help_case",
        sa.Column("unalerted_since", models.base.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("help_case") as batch:
        batch.drop_column("unalerted_since")
