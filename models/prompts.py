"""A typed answer the bot is waiting for, per chat, kept in the database.

When a flow asks "type the number of free beds" or "type a station name", the next plain
message of that chat is the answer. The question is a row here, written in the update's
transaction, so a restart or another worker still knows what the answer is for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, clock


class ChatPrompt(Base):
    __tablename__ = "chat_prompt"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime]


async def expect_answer(
    session: AsyncSession, chat_id: int, kind: str, value: str, until: datetime
) -> None:
    prompt = await session.get(ChatPrompt, chat_id)
    if prompt is None:
        session.add(ChatPrompt(chat_id=chat_id, kind=kind, value=value, until=until))
        return
    prompt.kind, prompt.value, prompt.until = kind, value, until


async def open_prompt(session: AsyncSession, chat_id: int) -> ChatPrompt | None:
    """The question this chat is expected to answer, if one is open and not expired."""
    prompt = await session.get(ChatPrompt, chat_id)
    if prompt is None or prompt.until < clock.now():
        return None
    return prompt


async def close_prompt(session: AsyncSession, chat_id: int) -> None:
    await session.execute(delete(ChatPrompt).where(ChatPrompt.chat_id == chat_id))
