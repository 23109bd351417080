"""The two baselines of ``bench_steady``, each run as its own process against the fake Bot API.

- ``echo``: a bare python-telegram-bot application (stock long polling) whose one handler
  echoes the text. No database.
- ``naive``: the same, plus what a first durable bot would do: one SQLAlchemy commit per
  exchange (the message in and the reply out) on SQLite or PostgreSQL, then the reply. It
  loses an update on a crash (PTB confirms a batch before it is handled); it is the cost to
  compare with. Given an answer file (JSON: ``text`` and ``reply_markup``, what the full bot
  sent for ``/help``), it gives that answer instead of the echo, so the comparison holds the
  answer's own cost (its text and buttons, sent and read back) equal.

Usage: ``python -m benchmarks.steady_bots echo|naive BASE_URL TOKEN [DATABASE_URL [ANSWER]]``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


class _Base(DeclarativeBase):
    pass


class LoggedExchange(_Base):
    __tablename__ = "logged_exchange"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def echo_application(base_url: str, token: str) -> Application:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "")

    application = Application.builder().token(token).base_url(base_url).build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    return application


def naive_application(
    base_url: str, token: str, database_url: str, fixed_answer: dict[str, Any] | None = None
) -> Application:
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create_tables(_: Application) -> None:
        async with engine.begin() as connection:
            await connection.run_sync(_Base.metadata.create_all)

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        reply = fixed_answer["text"] if fixed_answer else message.text or ""
        session: AsyncSession
        async with sessions() as session:
            now, chat = datetime.now(UTC), message.chat_id
            heard = message.text or ""
            session.add(LoggedExchange(chat_id=chat, direction="in", text=heard, at=now))
            session.add(LoggedExchange(chat_id=chat, direction="out", text=reply, at=now))
            await session.commit()
        await message.reply_text(reply, reply_markup=markup)

    markup = (
        InlineKeyboardMarkup.de_json(fixed_answer["reply_markup"], None) if fixed_answer else None
    )
    application = (
        Application.builder().token(token).base_url(base_url).post_init(create_tables).build()
    )
    application.add_handler(MessageHandler(filters.TEXT, answer))
    return application


def main() -> None:
    kind, base_url, token = sys.argv[1:4]
    if kind == "echo":
        application = echo_application(base_url, token)
    else:
        fixed = json.loads(Path(sys.argv[5]).read_text()) if len(sys.argv) > 5 else None
        application = naive_application(base_url, token, sys.argv[4], fixed)
    application.run_polling(timeout=25, allowed_updates=["message"])


if __name__ == "__main__":
    main()
