"""conversation: what a person is in the middle of, one row per open flow

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 10:00:00

``case_draft`` (a report or urgent request being written), ``contact_draft`` (a contact being
recorded) and ``chat_prompt`` (a typed answer awaited) become rows of ``open_flow``, keyed by
person and flow, each with its step, the chat where it is answered and its data. Everything
in progress is carried over, both ways: a case draft's ``state`` is its step, a contact's
step leaves its data for the column (``channel`` when it had none yet), a prompt's kind is
the question's step and its value the question's data.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = models.base.UTCDateTime(timezone=True)
CONTACT_FIRST_STEP = "channel"  # handlers.contacts.WHO: who was met, then how
CASE_FLOWS = ("report", "urgent")

account = sa.table("account", sa.column("id", BIG_ID), sa.column("telegram_id", sa.BigInteger))
open_flow = sa.table(
    "open_flow",
    sa.column("account_id", BIG_ID),
    sa.column("flow", sa.String),
    sa.column("step", sa.String),
    sa.column("chat_id", sa.BigInteger),
    sa.column("data", JSON_DOC),
    sa.column("until", WHEN),
    sa.column("updated_at", WHEN),
)
case_draft = sa.table(
    "case_draft",
    sa.column("account_id", BIG_ID),
    sa.column("flow", sa.String),
    sa.column("state", sa.String),
    sa.column("data", JSON_DOC),
    sa.column("updated_at", WHEN),
)
contact_draft = sa.table(
    "contact_draft",
    sa.column("account_id", BIG_ID),
    sa.column("data", JSON_DOC),
    sa.column("updated_at", WHEN),
)
chat_prompt = sa.table(
    "chat_prompt",
    sa.column("account_id", BIG_ID),
    sa.column("chat_id", sa.BigInteger),
    sa.column("kind", sa.String),
    sa.column("value", sa.String),
    sa.column("until", WHEN),
)


def _rows(query: Any) -> list[Any]:
    return list(op.get_bind().execute(query).mappings())


def _insert(table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        op.get_bind().execute(table.insert(), rows)


def upgrade() -> None:
    op.create_table(
        "open_flow",
        sa.Column("account_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.Column("until", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_open_flow_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "flow", name=op.f("pk_open_flow")),
    )
    _insert(open_flow, [*_case_drafts(), *_contact_drafts(), *_questions()])
    op.drop_table("case_draft")
    op.drop_table("contact_draft")
    op.drop_table("chat_prompt")


def _case_drafts() -> list[dict[str, Any]]:
    """A draft is answered in its writer's private chat (its id is theirs)."""
    found = _rows(
        sa.select(case_draft, account.c.telegram_id).join(
            account, account.c.id == case_draft.c.account_id
        )
    )
    return [
        {
            "account_id": row["account_id"],
            "flow": row["flow"],
            "step": row["state"],
            "chat_id": row["telegram_id"],
            "data": row["data"],
            "until": None,
            "updated_at": row["updated_at"],
        }
        for row in found
    ]


def _contact_drafts() -> list[dict[str, Any]]:
    found = _rows(
        sa.select(contact_draft, account.c.telegram_id).join(
            account, account.c.id == contact_draft.c.account_id
        )
    )
    flows = []
    for row in found:
        data = dict(row["data"])
        step = data.pop("step", None) or CONTACT_FIRST_STEP
        flows.append(
            {
                "account_id": row["account_id"],
                "flow": "contact",
                "step": step,
                "chat_id": row["telegram_id"],
                "data": data,
                "until": None,
                "updated_at": row["updated_at"],
            }
        )
    return flows


def _questions() -> list[dict[str, Any]]:
    now = datetime.now(UTC)  # when it was asked is not known: when it was carried over
    return [
        {
            "account_id": row["account_id"],
            "flow": "question",
            "step": row["kind"],
            "chat_id": row["chat_id"],
            "data": {"value": row["value"]},
            "until": row["until"],
            "updated_at": now,
        }
        for row in _rows(sa.select(chat_prompt))
    ]


def downgrade() -> None:
    op.create_table(
        "case_draft",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
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
        "contact_draft",
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("data", JSON_DOC, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_contact_draft_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_contact_draft")),
    )
    op.create_table(
        "chat_prompt",
        sa.Column("account_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("until", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_chat_prompt_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_chat_prompt")),
    )
    flows = _rows(sa.select(open_flow))
    _insert(case_draft, [_as_case_draft(row) for row in flows if row["flow"] in CASE_FLOWS])
    _insert(contact_draft, [_as_contact_draft(row) for row in flows if row["flow"] == "contact"])
    _insert(chat_prompt, [_as_prompt(row) for row in flows if row["flow"] == "question"])
    op.drop_table("open_flow")


def _as_case_draft(row: Any) -> dict[str, Any]:
    return {
        "account_id": row["account_id"],
        "flow": row["flow"],
        "state": row["step"],
        "data": row["data"],
        "updated_at": row["updated_at"],
    }


def _as_contact_draft(row: Any) -> dict[str, Any]:
    data = dict(row["data"])
    if row["step"] != CONTACT_FIRST_STEP:
        data["step"] = row["step"]
    return {"account_id": row["account_id"], "data": data, "updated_at": row["updated_at"]}


def _as_prompt(row: Any) -> dict[str, Any]:
    return {
        "account_id": row["account_id"],
        "chat_id": row["chat_id"],
        "kind": row["step"],
        "value": str(row["data"].get("value", ""))[:200],
        "until": row["until"] or row["updated_at"],
    }
