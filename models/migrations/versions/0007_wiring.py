"""wiring: contacts link to cases and services by foreign key; duplicates name their case

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:45:00

Links that point at nothing (written before the keys existed) are cleared first: the contact
is kept, only the dangling number goes.

On SQLite a constraint can only be added by rebuilding the table (Alembic's batch mode:
copy, drop, rename). Foreign keys are on in every connection and a migration cannot switch
them off inside its transaction, so dropping the old table cascades into the tables that
point at it with ``ON DELETE CASCADE`` (``case_event``; ``contact_need``, ``contact_action``):
their rows are copied aside first and put back after.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
CASE_FK = "fk_contact_case_id_help_case"
SERVICE_FK = "fk_contact_service_id_service"
DUPLICATE_FK = "fk_help_case_duplicate_of_id_help_case"


def _clear_dangling_links() -> None:
    op.execute(
        "UPDATE contact SET case_id = NULL WHERE case_id IS NOT NULL "
        "AND case_id NOT IN (SELECT id FROM help_case)"
    )
    op.execute(
        "UPDATE contact SET service_id = NULL WHERE service_id IS NOT NULL "
        "AND service_id NOT IN (SELECT id FROM service)"
    )


def _alter(table: str, children: Sequence[str], change: Callable[[Any], None]) -> None:
    """Apply ``change`` to ``table``; on SQLite rebuild it without losing its children's rows."""
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table(table) as batch:
            change(batch)
        return
    for child in children:
        op.execute(f"CREATE TEMPORARY TABLE _keep_{child} AS SELECT * FROM {child}")
    with op.batch_alter_table(table, recreate="always") as batch:
        change(batch)
    for child in children:
        op.execute(f"DELETE FROM {child}")
        op.execute(f"INSERT INTO {child} SELECT * FROM _keep_{child}")
        op.execute(f"DROP TABLE _keep_{child}")


def _add_duplicate_of(batch: Any) -> None:
    batch.add_column(sa.Column("duplicate_of_id", BIG_ID, nullable=True))
    batch.create_foreign_key(
        op.f(DUPLICATE_FK), "help_case", ["duplicate_of_id"], ["id"], ondelete="SET NULL"
    )


def _drop_duplicate_of(batch: Any) -> None:
    if op.get_bind().dialect.name != "sqlite":  # SQLite's rebuild drops it with the column
        batch.drop_constraint(op.f(DUPLICATE_FK), type_="foreignkey")
    batch.drop_column("duplicate_of_id")


def _add_contact_links(batch: Any) -> None:
    batch.create_foreign_key(op.f(CASE_FK), "help_case", ["case_id"], ["id"], ondelete="SET NULL")
    batch.create_foreign_key(
        op.f(SERVICE_FK), "service", ["service_id"], ["id"], ondelete="SET NULL"
    )


def _drop_contact_links(batch: Any) -> None:
    batch.drop_constraint(op.f(SERVICE_FK), type_="foreignkey")
    batch.drop_constraint(op.f(CASE_FK), type_="foreignkey")


def upgrade() -> None:
    _clear_dangling_links()
    # help_case first: contact does not point at it yet, so its rebuild touches no contact.
    _alter("help_case", ["case_event"], _add_duplicate_of)
    _alter("contact", ["contact_need", "contact_action"], _add_contact_links)


def downgrade() -> None:
    # contact first: once it no longer points at help_case, rebuilding help_case spares it.
    _alter("contact", ["contact_need", "contact_action"], _drop_contact_links)
    _alter("help_case", ["case_event"], _drop_duplicate_of)
