"""The sender of an update, read at its start with what the first handlers need.

One statement reads the account and every flow the person has open (``models.conversation``):
the conversation lives above the accounts (it names them), so this does too, rather than in
:mod:`models.accounts`, which the other models import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import LAST_SEEN_GRANULARITY, Account, get_or_create_account
from models.base import clock
from models.conversation import Conversation, OpenFlow, load_conversation


@dataclass
class Sender:
    """The sender of an update, with what they are in the middle of, read at once."""

    account: Account
    created: bool
    conversation: Conversation


# Account + every flow they have open: one statement, one row per open flow (at least one).
_SENDER_QUERY = (
    select(Account, OpenFlow)
    .select_from(Account)
    .outerjoin(OpenFlow, OpenFlow.account_id == Account.id)
    .where(Account.telegram_id == bindparam("telegram_id"))
)


async def load_sender(
    session: AsyncSession, telegram_id: int, *, admin_ids: frozenset[int] = frozenset()
) -> Sender:
    """The sender's account (created on first contact) and their open flows, in one round
    trip when the account already exists."""
    found = (await session.execute(_SENDER_QUERY, {"telegram_id": telegram_id})).all()
    if not found:
        account, created = await get_or_create_account(session, telegram_id, admin_ids=admin_ids)
        # Someone new has nothing open; an account created meanwhile by another worker may.
        empty = Conversation(account.id)
        conversation = empty if created else await load_conversation(session, account.id)
        return Sender(account, created, conversation)
    account = found[0][0]
    now = clock.now()
    if now - account.last_seen_at >= LAST_SEEN_GRANULARITY:
        account.last_seen_at = now
    flows = [row for _account, row in found if row is not None]
    return Sender(account, False, Conversation.of(account.id, flows))
