"""What a person is in the middle of: their open flows, read once per update.

A person may be writing a report or an urgent request, recording a contact with buttons, and
waiting to type an answer the bot asked for (a place, a number of free beds, new hours, a
request to the desk). Each is an :class:`OpenFlow` row (one per person and flow) with its
step, the chat where it is answered and its data, written in the update's own transaction:
a restart, or another worker, continues exactly where the person was.

The rows are read with the account, in the same statement
(:func:`models.accounts.load_sender`), into a :class:`Conversation` kept on the update's
scope; every filter, the draft gate and the steps read that, never the database again.

Starting a flow while others are open follows one rule (each pair is a story in
``tests/test_conversation.py``):

- a report or an urgent request *holds* its chat (:data:`HOLDS_CHAT`): every message there is
  its next answer, and anything that would leave it (a command, another flow's button) first
  asks "continue or discard?" (``handlers.cases.draft_gate``), so nothing starts beside it
  there;
- a flow replaces the open flow of its own kind (:data:`REPLACES`): a person writes one report
  or urgent request at a time, a new ``/contact`` starts afresh, a new question replaces the
  last;
- any other open flow stays, beside it: a contact being recorded survives a report written
  meanwhile, and a question asked before a report waits under it (the report holds the chat)
  and is answered once the report is done, if it has not lapsed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, clock
from models.db import dialect_insert, rows_affected
from models.roles import Permission, Role, can


class Flow(enum.StrEnum):
    REPORT = "report"  # a sighting being reported (handlers.report)
    URGENT = "urgent"  # an urgent request being written (handlers.urgent)
    CONTACT = "contact"  # a contact being recorded with buttons (handlers.contacts)
    QUESTION = "question"  # the bot asked something and waits for the typed answer


CASE_FLOWS = frozenset({Flow.REPORT, Flow.URGENT})
# Every message in the chat is the flow's next answer; leaving it asks first.
HOLDS_CHAT = CASE_FLOWS
# What starting each flow closes; every other open flow stays open beside it.
REPLACES: dict[Flow, frozenset[Flow]] = {
    Flow.REPORT: CASE_FLOWS,
    Flow.URGENT: CASE_FLOWS,
    Flow.CONTACT: frozenset({Flow.CONTACT}),
    Flow.QUESTION: frozenset({Flow.QUESTION}),
}
# What finishing each flow takes: every step asks it, and a role change drops the flows the
# new role may not finish. A question is dropped by any role change (asked under the old one).
FLOW_PERMISSIONS: dict[Flow, Permission] = {
    Flow.REPORT: Permission.REPORT_SIGHTING,
    Flow.URGENT: Permission.REQUEST_URGENT,
    Flow.CONTACT: Permission.RECORD_CONTACTS,
}


def may_finish(role: Role, flow: Flow, settings: Any = None) -> bool:
    """Whether ``role`` may go on with an open ``flow`` (a question: whoever was asked)."""
    permission = FLOW_PERMISSIONS.get(flow)
    return permission is None or can(role, permission, settings)


class OpenFlow(Base):
    """One flow a person is in the middle of: its step, where it is answered, its data."""

    __tablename__ = "open_flow"

    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("account.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    flow: Mapped[str] = mapped_column(String(16), primary_key=True)
    step: Mapped[str] = mapped_column(String(40))
    # Where it is answered: the private chat of a draft, the chat where a question was asked
    # (in a group, only the person asked answers it).
    chat_id: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]]
    until: Mapped[datetime | None]  # a question lapses then; drafts wait for the person
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    @property
    def value(self) -> str:
        """What a question is about, as it was asked (a category, a service id)."""
        return str(self.data.get("value", ""))


@dataclass
class Conversation:
    """The flows a person has open, as read at the start of the update and changed since."""

    account_id: int | None = None
    flows: dict[Flow, OpenFlow] = field(default_factory=dict)
    # Begun during this update: a question asked now is answered by the next message.
    begun: set[Flow] = field(default_factory=set)

    @classmethod
    def of(cls, account_id: int, rows: list[OpenFlow]) -> Conversation:
        return cls(account_id, {Flow(row.flow): row for row in rows})

    def get(self, flow: Flow) -> OpenFlow | None:
        return self.flows.get(flow)

    @property
    def draft(self) -> OpenFlow | None:
        """The report or urgent request being written, if any."""
        return self.flows.get(Flow.REPORT) or self.flows.get(Flow.URGENT)

    def holding(self, chat_id: int | None) -> OpenFlow | None:
        """The flow that holds this chat (a report or urgent request written there)."""
        draft = self.draft
        return draft if draft is not None and draft.chat_id == chat_id else None

    def awaited(self, chat_id: int | None) -> OpenFlow | None:
        """What the next message in this chat answers: the flow holding the chat, or else the
        question asked there (not lapsed, not asked during this very update)."""
        held = self.holding(chat_id)
        if held is not None:
            return held
        question = self.flows.get(Flow.QUESTION)
        if question is None or question.chat_id != chat_id or Flow.QUESTION in self.begun:
            return None
        if question.until is not None and question.until < clock.now():
            return None
        return question

    def question(self, chat_id: int | None) -> OpenFlow | None:
        """The question a message in this chat answers now, if that is what it answers."""
        awaited = self.awaited(chat_id)
        return awaited if awaited is not None and awaited.flow == Flow.QUESTION else None


async def load_conversation(session: AsyncSession, account_id: int) -> Conversation:
    """The open flows of an account, read on their own (a sender's come with the account)."""
    rows = await session.scalars(select(OpenFlow).where(OpenFlow.account_id == account_id))
    return Conversation.of(account_id, list(rows))


async def begin(
    session: AsyncSession,
    conversation: Conversation,
    flow: Flow,
    *,
    chat_id: int,
    step: str,
    data: dict[str, Any] | None = None,
    until: datetime | None = None,
) -> OpenFlow:
    """Open ``flow`` at ``step``, closing the open flows it replaces (:data:`REPLACES`).

    One upsert: the same person may be handled in two chats at once (a question asked in a
    group while they write in their private chat), and one handling closing a flow while
    another opens it again must not fail.
    """
    account_id = conversation.account_id
    assert account_id is not None, "a flow belongs to a person"
    others = [other for other in REPLACES[flow] if other != flow]
    if others:
        await session.execute(
            delete(OpenFlow).where(OpenFlow.account_id == account_id, OpenFlow.flow.in_(others))
        )
    values = {
        "step": step,
        "chat_id": chat_id,
        "data": dict(data or {}),
        "until": until,
        "updated_at": clock.now(),
    }
    statement = dialect_insert(session, OpenFlow).values(account_id=account_id, flow=flow, **values)
    statement = statement.on_conflict_do_update(index_elements=["account_id", "flow"], set_=values)
    row = await session.scalar(
        statement.returning(OpenFlow), execution_options={"populate_existing": True}
    )
    assert row is not None
    for other in others:
        conversation.flows.pop(other, None)
    conversation.flows[flow] = row
    conversation.begun.add(flow)
    return row


def advance(row: OpenFlow, step: str, **changes: Any) -> None:
    """Move the flow to ``step`` and merge ``changes`` into its data (None removes a key)."""
    data = dict(row.data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    row.data = data  # a new dict, so the JSON column is seen as changed
    row.step = step
    row.updated_at = clock.now()


async def end(session: AsyncSession, conversation: Conversation, flow: Flow) -> None:
    """Close ``flow`` (finished, cancelled or discarded); closing a closed one is fine."""
    conversation.flows.pop(flow, None)
    if conversation.account_id is None:
        return
    await session.execute(
        delete(OpenFlow).where(
            OpenFlow.account_id == conversation.account_id, OpenFlow.flow == flow
        )
    )


async def end_all(session: AsyncSession, account_id: int) -> None:
    """``/forget``: nothing the person was in the middle of is kept."""
    await session.execute(delete(OpenFlow).where(OpenFlow.account_id == account_id))


async def end_not_allowed(session: AsyncSession, account_id: int, role: Role) -> None:
    """After a role change: the flows the new role may not finish go, and the question,
    asked under the old role (each step checks the role too; this keeps nothing dead)."""
    kept = [flow for flow in FLOW_PERMISSIONS if may_finish(role, flow)]
    await session.execute(
        delete(OpenFlow).where(OpenFlow.account_id == account_id, OpenFlow.flow.not_in(kept))
    )


async def end_abandoned(session: AsyncSession, cutoff: datetime) -> dict[str, int]:
    """Retention: drafts untouched since ``cutoff`` go (a contact's notes, a report's
    description and photo), counted as the audit line names them."""
    counts = {}
    for name, flows in (("case_drafts", CASE_FLOWS), ("contact_drafts", {Flow.CONTACT})):
        result = await session.execute(
            delete(OpenFlow)
            .where(OpenFlow.flow.in_(flows), OpenFlow.updated_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        counts[name] = rows_affected(result)
    return counts
