"""The sender of an update, read at its start with what the first handlers need.

One statement reads the account, the person's open question in this chat and the flow of the
report or request they are writing: that touches the prompts and the cases' drafts, so it
lives above them rather than in :mod:`models.accounts`, which they import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import LAST_SEEN_GRANULARITY, Account, get_or_create_account
from models.base import clock
from models.cases import CaseDraft
from models.prompts import ChatPrompt


@dataclass
class Sender:
    """The sender of an update with what the first handlers need about them, read at once."""

    account: Account
    created: bool
    prompt: ChatPrompt | None = None  # the sender's open question in the update's chat, if any
    draft_flow: str | None = None  # the report or urgent request being written, if any
    complete: bool = False  # prompt and draft were read with the account


# Account + their prompt in this chat + the draft's flow: one statement. The prompt is the
# person's, answered only in the chat where it was asked, hence the join on a parameter too;
# a missing chat (a button press) is passed as NULL, matching nothing.
_SENDER_QUERY = (
    select(Account, ChatPrompt, CaseDraft.flow)
    .select_from(Account)
    .outerjoin(
        ChatPrompt,
        and_(ChatPrompt.account_id == Account.id, ChatPrompt.chat_id == bindparam("chat_id")),
    )
    .outerjoin(CaseDraft, CaseDraft.account_id == Account.id)
    .where(Account.telegram_id == bindparam("telegram_id"))
)


async def load_sender(
    session: AsyncSession,
    telegram_id: int,
    chat_id: int | None,
    *,
    admin_ids: frozenset[int] = frozenset(),
) -> Sender:
    """The sender's account (created on first contact), with the chat's open prompt and the
    sender's draft flow in the same round trip when the account already exists."""
    found = (
        await session.execute(_SENDER_QUERY, {"chat_id": chat_id, "telegram_id": telegram_id})
    ).first()
    if found is None:
        account, created = await get_or_create_account(session, telegram_id, admin_ids=admin_ids)
        return Sender(account, created)
    account, prompt, flow = found
    return _known_sender(account, prompt, flow)


def _known_sender(account: Account, prompt: ChatPrompt | None, flow: str | None) -> Sender:
    now = clock.now()
    if now - account.last_seen_at >= LAST_SEEN_GRANULARITY:
        account.last_seen_at = now
    if prompt is not None and prompt.until < now:
        prompt = None
    return Sender(account, False, prompt=prompt, draft_flow=flow, complete=True)
