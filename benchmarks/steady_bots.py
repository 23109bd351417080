"""The two baselines of ``bench_steady``, each run as its own process against the fake Bot API.

- ``echo``: a bare python-telegram-bot application (stock long polling) whose one handler
  echoes the text. No database.
- ``naive``: the same, plus what a first durable bot would do: one SQLAlchemy commit per
  exchange (the message in and the reply out) on SQLite or PostgreSQL, then the reply. It
  loses an update on a crash (PTB confirms a batch before it is handled); it is the cost to
  compare with. Given an answer file (JSON: ``text`` and ``reply_markup``, what the full bot
  sent for ``/help``), it gives that answer instead of the echo, so the comparison holds the
  answer's own cost (its text and buttons, sent and read back) equal.
- ``guarded``: the naive bot giving that answer, written plainly to keep the full bot's
  delivery guarantees and nothing more (no concurrency, no limiter, no leases, no wake-ups):
  its own ``getUpdates`` loop stores each batch and commits before the next call confirms
  it; the handler marks the update done and writes its reply as a pending row in one commit;
  the reply is sent, then its row deleted and the sent message logged in a second commit; at
  start it sends the pending replies and handles the unfinished updates a crash left. Three
  commits per update, as the full bot: the floor those guarantees put under any bot, so the
  full bot's own machinery is what it costs above this one.

Usage: ``python -m benchmarks.steady_bots echo|naive|guarded BASE_URL TOKEN [DATABASE_URL
[ANSWER]]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Text, bindparam, delete, func, select, update
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


class StoredUpdate(_Base):
    """The guarded bot's inbox: an update as Telegram sent it, until it is handled."""

    __tablename__ = "stored_update"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(default=False)


class PendingReply(_Base):
    """The guarded bot's outbox: a reply committed with its update's done mark, not yet sent."""

    __tablename__ = "pending_reply"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)


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


# The done mark is written, never read first: the guarantees need the write only.
_MARK_DONE = (
    update(StoredUpdate).where(StoredUpdate.update_id == bindparam("stored_id")).values(done=True)
)


async def run_guarded(
    base_url: str, token: str, database_url: str, fixed_answer: dict[str, Any]
) -> None:
    """The ``guarded`` bot (see the module's docstring) until it is killed."""
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    markup = InlineKeyboardMarkup.de_json(fixed_answer["reply_markup"], None)

    async def send_and_record(pending: PendingReply) -> None:
        await application.bot.send_message(pending.chat_id, pending.text, reply_markup=markup)
        async with sessions() as session:
            await session.execute(delete(PendingReply).where(PendingReply.id == pending.id))
            session.add(_logged(pending.chat_id, "out", pending.text))
            await session.commit()

    async def answer(incoming: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = incoming.effective_message
        assert message is not None
        async with sessions() as session:
            await session.execute(_MARK_DONE, {"stored_id": incoming.update_id})
            pending = PendingReply(chat_id=message.chat_id, text=fixed_answer["text"])
            session.add(pending)
            await session.commit()
        await send_and_record(pending)

    application = Application.builder().token(token).base_url(base_url).updater(None).build()
    application.add_handler(MessageHandler(filters.TEXT, answer))
    await application.initialize()
    async with sessions() as session:  # what a crash left: replies first, then updates
        left = list(await session.scalars(select(PendingReply).order_by(PendingReply.id)))
        unfinished = list(
            await session.scalars(
                select(StoredUpdate).where(~StoredUpdate.done).order_by(StoredUpdate.update_id)
            )
        )
        last_stored = await session.scalar(select(func.max(StoredUpdate.update_id)))
    for pending in left:
        await send_and_record(pending)
    for stored in unfinished:
        payload = json.loads(stored.payload)
        await application.process_update(Update.de_json(payload, application.bot))
    # Confirm what is stored already: a crash after a batch's commit and before the next
    # call would otherwise have it handed over again, and stored twice.
    offset = None if last_stored is None else last_stored + 1
    await _fetch_store_handle(application, sessions, offset)


async def _fetch_store_handle(
    application: Application, sessions: async_sessionmaker[AsyncSession], offset: int | None
) -> None:
    """Long polling where a batch is confirmed (by the next call's offset) only once stored."""
    while True:
        updates = await application.bot.get_updates(
            offset=offset, timeout=25, allowed_updates=["message"]
        )
        if not updates:
            continue
        async with sessions() as session:
            session.add_all(
                StoredUpdate(update_id=u.update_id, payload=json.dumps(u.to_dict()))
                for u in updates
            )
            await session.commit()
        offset = updates[-1].update_id + 1
        for fetched in updates:
            await application.process_update(fetched)


def _logged(chat_id: int, direction: str, text: str) -> LoggedExchange:
    return LoggedExchange(chat_id=chat_id, direction=direction, text=text, at=datetime.now(UTC))


def main() -> None:
    kind, base_url, token = sys.argv[1:4]
    if kind == "guarded":
        fixed = json.loads(Path(sys.argv[5]).read_text())
        asyncio.run(run_guarded(base_url, token, sys.argv[4], fixed))
        return
    if kind == "echo":
        application = echo_application(base_url, token)
    else:
        fixed = json.loads(Path(sys.argv[5]).read_text()) if len(sys.argv) > 5 else None
        application = naive_application(base_url, token, sys.argv[4], fixed)
    application.run_polling(timeout=25, allowed_updates=["message"])


if __name__ == "__main__":
    main()
