"""Services directory (HSDS-shaped) and shelter beds

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.base import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "known_place",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_place")),
        sa.UniqueConstraint("key", name=op.f("uq_known_place_key")),
    )
    op.create_table(
        "location",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("area", sa.String(length=100), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("accessibility", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location")),
        sa.UniqueConstraint("key", name=op.f("uq_location_key")),
    )
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.create_index("ix_location_lat_lon", ["latitude", "longitude"], unique=False)

    op.create_table(
        "organization",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
        sa.UniqueConstraint("key", name=op.f("uq_organization_key")),
    )
    op.create_table(
        "service",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column(
            "location_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column(
            "names",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "descriptions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "eligibility",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "application_process",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "notes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("admits", sa.String(length=16), nullable=False),
        sa.Column("referral_required", sa.Boolean(), nullable=False),
        sa.Column("documents_required", sa.Boolean(), nullable=False),
        sa.Column("pets_allowed", sa.Boolean(), nullable=True),
        sa.Column("fee", sa.String(length=16), nullable=False),
        sa.Column("fee_note", sa.String(length=200), nullable=True),
        sa.Column("languages", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("url", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["location.id"], name=op.f("fk_service_location_id_location")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_service_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service")),
        sa.UniqueConstraint("key", name=op.f("uq_service_key")),
    )
    with op.batch_alter_table("service", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_category"), ["category"], unique=False)
        batch_op.create_index(
            "ix_service_location_category", ["location_id", "category"], unique=False
        )

    op.create_table(
        "bed_count_change",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("free", sa.Integer(), nullable=True),
        sa.Column("previous_free", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["account.id"],
            name=op.f("fk_bed_count_change_by_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_bed_count_change_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bed_count_change")),
    )
    with op.batch_alter_table("bed_count_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bed_count_change_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "schedule_slot",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens", sa.String(length=5), nullable=False),
        sa.Column("closes", sa.String(length=5), nullable=False),
        sa.Column("season_start", sa.String(length=5), nullable=True),
        sa.Column("season_end", sa.String(length=5), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_schedule_slot_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_slot")),
    )
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedule_slot_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "service_closure",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_service_closure_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_closure")),
        sa.UniqueConstraint("service_id", "day", name=op.f("uq_service_closure_service_id")),
    )
    op.create_table(
        "service_edit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["by_id"],
            ["account.id"],
            name=op.f("fk_service_edit_by_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_service_edit_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_edit")),
    )
    with op.batch_alter_table("service_edit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_edit_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "shelter_beds",
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("free", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_by", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_shelter_beds_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["account.id"],
            name=op.f("fk_shelter_beds_updated_by_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_shelter_beds")),
    )
    op.create_table(
        "shelter_staff",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "service_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("assigned_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "assigned_by", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_shelter_staff_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["account.id"],
            name=op.f("fk_shelter_staff_assigned_by_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_shelter_staff_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelter_staff")),
        sa.UniqueConstraint("account_id", "service_id", name=op.f("uq_shelter_staff_account_id")),
    )
    with op.batch_alter_table("shelter_staff", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shelter_staff_service_id"), ["service_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("shelter_staff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shelter_staff_service_id"))

    op.drop_table("shelter_staff")
    op.drop_table("shelter_beds")
    with op.batch_alter_table("service_edit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_edit_service_id"))

    op.drop_table("service_edit")
    op.drop_table("service_closure")
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_slot_service_id"))

    op.drop_table("schedule_slot")
    with op.batch_alter_table("bed_count_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bed_count_change_service_id"))

    op.drop_table("bed_count_change")
    with op.batch_alter_table("service", schema=None) as batch_op:
        batch_op.drop_index("ix_service_location_category")
        batch_op.drop_index(batch_op.f("ix_service_category"))

    op.drop_table("service")
    op.drop_table("organization")
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.drop_index("ix_location_lat_lon")

    op.drop_table("location")
    op.drop_table("known_place")
