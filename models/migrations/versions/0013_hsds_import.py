"""hsds import: schedules with dates of validity, locations without coordinates

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 23:00:00

HSDS schedules carry ``valid_from``/``valid_to`` (and ``until``): a slot may open only on
those days, so an expired schedule is never shown as permanent hours. HSDS locations need no
coordinates (postal or virtual ones): such a location is kept, and never among "near me".
Locations get a structured address (street, city, province, postal code, country) beside
the one-line text, which stays as shown; today's "Via Carducci, Brescia" gives street
"Via Carducci" and city "Brescia" (the last part after a comma), nothing is guessed beyond.
Existing rows keep their values (no dates of validity: as before, always valid).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.alter_column("latitude", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("longitude", existing_type=sa.Float(), nullable=True)
        for name, length in ADDRESS_PARTS:
            batch_op.add_column(sa.Column(name, sa.String(length), nullable=True))
    _split_addresses()


ADDRESS_PARTS = (
    ("street", 200),
    ("city", 100),
    ("province", 100),
    ("postal_code", 20),
    ("country", 2),
)


def _split_addresses() -> None:
    """Street and city from today's one-line addresses ("street, city")."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, address FROM location")).all()
    for location_id, address in rows:
        street, comma, city = (address or "").rpartition(",")
        values = (
            {"street": street.strip()[:200], "city": city.strip()[:100]}
            if comma and street.strip() and city.strip()
            else {"street": (address or "").strip()[:200] or None, "city": None}
        )
        bind.execute(
            sa.text("UPDATE location SET street = :street, city = :city WHERE id = :id"),
            values | {"id": location_id},
        )


def downgrade() -> None:
    missing = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM location WHERE latitude IS NULL OR longitude IS NULL")
    )
    if missing:
        raise RuntimeError(f"{missing} locations have no coordinates: give them some first")
    with op.batch_alter_table("location", schema=None) as batch_op:
        for name, _length in reversed(ADDRESS_PARTS):
            batch_op.drop_column(name)
        batch_op.alter_column("latitude", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("longitude", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
