"""Cases: reports, urgent requests, their history, conversation drafts and references

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_counter",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_case_counter")),
    )
    op.create_table(
        "case_draft",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_case_draft_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_draft")),
        sa.UniqueConstraint("account_id", name=op.f("uq_case_draft_account_id")),
    )
    op.create_table(
        "help_case",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("report", "urgent", name="casekind", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "new", "taken", "on_site", "closed", name="casestatus", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column(
            "category",
            sa.Enum(
                "sleeping_rough",
                "health",
                "minor",
                "family",
                "aggressive",
                "other",
                name="category",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "urgency",
            sa.Enum(
                "emergency", "today", "not_urgent", name="urgency", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column(
            "reporter_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("place", sa.Text(), nullable=True),
        sa.Column("seen", sa.Text(), nullable=True),
        sa.Column("person", sa.Text(), nullable=True),
        sa.Column("photo_file_id", sa.String(length=200), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "helped",
                "referred",
                "refused",
                "not_found",
                "emergency_services",
                "duplicate",
                name="outcome",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("taken_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("on_site_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalation_step", sa.Integer(), nullable=False),
        sa.Column("next_escalation_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["account.id"],
            name=op.f("fk_help_case_owner_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["account.id"],
            name=op.f("fk_help_case_reporter_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_case")),
        sa.UniqueConstraint("reference", name=op.f("uq_help_case_reference")),
    )
    with op.batch_alter_table("help_case", schema=None) as batch_op:
        batch_op.create_index("ix_help_case_owner_status", ["owner_id", "status"], unique=False)
        batch_op.create_index(
            "ix_help_case_status_escalation", ["status", "next_escalation_at"], unique=False
        )

    op.create_table(
        "case_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["account.id"],
            name=op.f("fk_case_event_actor_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["help_case.id"],
            name=op.f("fk_case_event_case_id_help_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
    )
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_event_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_event_case_id"))

    op.drop_table("case_event")
    with op.batch_alter_table("help_case", schema=None) as batch_op:
        batch_op.drop_index("ix_help_case_status_escalation")
        batch_op.drop_index("ix_help_case_owner_status")

    op.drop_table("help_case")
    op.drop_table("case_draft")
    op.drop_table("case_counter")
