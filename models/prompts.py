"""A typed answer the bot is waiting for, per person, kept in the database.

When a flow asks "type the number of free beds" or "type a station name", the next plain
message of that person, in the chat where it was asked, is the answer. It is kept per person,
not per chat: in a group, someone else's next message is not an answer to a question put to
another member. One question at a time per person: a new one replaces the last. The question
is a row here, written in the update's transaction, so a restart or another worker still
knows what the answer is for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.util import identity_key

from models.base import Base, BigId, clock
from models.db import dialect_insert


class ChatPrompt(Base):
    __tablename__ = "chat_prompt"

    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("account.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)  # where it was asked, and is answered
    kind: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime]


async def expect_answer(
    session: AsyncSession, account_id: int, chat_id: int, kind: str, value: str, until: datetime
) -> None:
    """Ask the person to type ``kind`` in this chat (one open question per person).

    One upsert: the same person may be handled in two chats at once (a group and their private
    chat), and one handling closing the question while another rewrites it must not fail."""
    values = {"chat_id": chat_id, "kind": kind, "value": value, "until": until}
    statement = dialect_insert(session, ChatPrompt.__table__).values(
        account_id=account_id, **values
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["account_id"], set_=values)
    )
    cached = session.identity_map.get(identity_key(ChatPrompt, account_id))
    if cached is not None:  # read earlier in this handling: read it again when used
        session.expire(cached)


def answerable(prompt: ChatPrompt | None, chat_id: int | None) -> ChatPrompt | None:
    """The prompt, if a message in ``chat_id`` answers it now (same chat, not expired)."""
    if prompt is None or prompt.chat_id != chat_id or prompt.until < clock.now():
        return None
    return prompt


async def open_prompt(session: AsyncSession, account_id: int, chat_id: int) -> ChatPrompt | None:
    """The question this person is expected to answer in this chat, if open and not expired."""
    return answerable(await session.get(ChatPrompt, account_id), chat_id)


async def close_prompt(session: AsyncSession, account_id: int) -> None:
    await session.execute(delete(ChatPrompt).where(ChatPrompt.account_id == account_id))
