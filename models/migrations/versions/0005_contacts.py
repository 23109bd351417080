"""Contact database: people, contacts with their needs and actions, drafts

Revision ID: 0005
Revises: 0004

``contact.case_id`` and ``contact.service_id`` are plain integers for now: foreign keys to the
case and service tables can be added by a later revision once those tables exist.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_draft",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_contact_draft_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_contact_draft")),
    )
    op.create_table(
        "person",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column(
            "gender",
            sa.Enum("female", "male", "other", name="gender", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("nationality", sa.String(length=2), nullable=True),
        sa.Column("languages", sa.String(length=64), nullable=True),
        sa.Column("resident_in_city", sa.Boolean(), nullable=True),
        sa.Column(
            "housing",
            sa.Enum(
                "roofless",
                "houseless",
                "insecure",
                "inadequate",
                name="housing",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column("needs", sa.String(length=200), nullable=True),
        sa.Column("consent_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "consent_by", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("name_token", sa.Text(), nullable=True),
        sa.Column("phone_token", sa.Text(), nullable=True),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column(
            "merged_into_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("anonymised_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_person_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["consent_by"],
            ["account.id"],
            name=op.f("fk_person_consent_by_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["account.id"],
            name=op.f("fk_person_created_by_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["person.id"],
            name=op.f("fk_person_merged_into_id_person"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("account_id", name=op.f("uq_person_account_id")),
        sa.UniqueConstraint("code", name=op.f("uq_person_code")),
    )
    op.create_table(
        "contact",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("place", sa.String(length=80), nullable=True),
        sa.Column(
            "operator_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("street", "desk", "phone", "bot", name="channel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "resolved",
                "referred",
                "follow_up",
                "declined",
                "none",
                name="outcome",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("service_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "source",
            sa.Enum("bot", "case", "import", name="contactsource", native_enum=False, length=12),
            nullable=False,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["account.id"],
            name=op.f("fk_contact_operator_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_contact_person_id_person"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_occurred_at"), ["occurred_at"], unique=False)
        batch_op.create_index("ix_contact_person_time", ["person_id", "occurred_at"], unique=False)

    op.create_table(
        "contact_action",
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "action",
            sa.Enum(
                "listening",
                "information",
                "orientation",
                "referral",
                "meal_ticket",
                "shower",
                "clothes",
                "shelter_placement",
                "medical_referral",
                name="action",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_contact_action_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "action", name=op.f("pk_contact_action")),
    )
    op.create_table(
        "contact_need",
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "need",
            sa.Enum(
                "food",
                "shelter",
                "hygiene",
                "clothing",
                "health",
                "documents",
                "work",
                "legal",
                "listening",
                "other",
                name="need",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_contact_need_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "need", name=op.f("pk_contact_need")),
    )


def downgrade() -> None:
    op.drop_table("contact_need")
    op.drop_table("contact_action")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_person_time")
        batch_op.drop_index(batch_op.f("ix_contact_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_contact_case_id"))

    op.drop_table("contact")
    op.drop_table("person")
    op.drop_table("contact_draft")
