"""hsds import: schedules with dates of validity, locations without coordinates

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-01 23:00:00

HSDS schedules carry ``valid_from``/``valid_to`` (and ``until``): a slot may open only on
those days, so an expired schedule is never shown as permanent hours. HSDS locations need no
coordinates (postal or virtual ones): such a location is kept, and never among "near me".
Existing rows keep their values (no dates of validity: as before, always valid).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True))
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.alter_column("latitude", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("longitude", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    missing = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM location WHERE latitude IS NULL OR longitude IS NULL")
    )
    if missing:
        raise RuntimeError(f"{missing} locations have no coordinates: give them some first")
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.alter_column("latitude", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("longitude", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("schedule_slot", schema=None) as batch_op:
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
