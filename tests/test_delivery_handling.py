"""One handling, one transaction: its changes, its messages (outbox rows) and its done mark.

See ``bot.inbox``: what a handling sends is queued in the outbox with its changes and sent after
the commit, so a handling that does not commit sends nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from telegram import Update
from telegram.ext import ApplicationHandlerStop, CommandHandler

from bot import inbox
from bot.app import HelpCenterBot, build_application
from bot.dispatcher import dispatch_all
from bot.runtime import HCContext
from fakebotapi import FakeRequest, FakeTelegram
from models.accounts import Account, get_or_create_account
from models.base import clock
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange, InboxStatus
from models.outbox import enqueue
from models.roles import Role
from models.team import set_role
from tests.conftest import TOKEN, BotHarness, make_settings, slow_handling_of

PEOPLE = range(5100, 5112)
OPERATOR = 5200


async def exchanges(bot: BotHarness, direction: Direction) -> list[Exchange]:
    async with bot.session() as session:
        query = select(Exchange).where(Exchange.direction == direction)
        return list(await session.scalars(query.order_by(Exchange.id)))


async def everyone_asks_for_help(bot: BotHarness, people: range) -> None:
    """People who wrote before (privacy accepted) each send /help: nothing for them to write."""
    for person in people:
        await bot.known(person)
        bot.fake.user_writes(person, "/help")


async def test_everyone_is_answered_and_every_exchange_logged_with_its_sender(
    bot: BotHarness,
) -> None:
    await everyone_asks_for_help(bot, PEOPLE)
    await bot.deliver()

    inbound = await exchanges(bot, Direction.IN)
    outbound = await exchanges(bot, Direction.OUT)
    async with bot.session() as session:
        accounts = {a.telegram_id: a.id for a in await session.scalars(select(Account))}
    assert len(inbound) == len(PEOPLE)
    for row in inbound:
        assert row.status is InboxStatus.DONE
        assert row.account_id == accounts[row.user_id or 0] and row.role == "public"
        replies = [r for r in outbound if r.in_reply_to == row.update_id]
        assert len(replies) == 1 and replies[0].chat_id == row.chat_id
        assert replies[0].account_id == row.account_id and replies[0].flow == row.flow
    for person in PEOPLE:
        assert len(bot.fake.texts(person)) == 1


async def test_a_commit_that_fails_loses_no_update_and_sends_nothing_twice(
    bot: BotHarness, monkeypatch: Any
) -> None:
    """The database blinks at the commit of the first handlings: they are retried without
    counting, and each person is answered exactly once (nothing left before the commit)."""
    real = inbox.finish_update
    failures = [
        OperationalError("UPDATE exchange", {}, ConnectionRefusedError("restarting"))
        for _ in range(2)
    ]

    async def fails_twice(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(inbox, "finish_update", fails_twice)
    await everyone_asks_for_help(bot, PEOPLE[:4])
    await bot.deliver()
    assert sum(len(bot.fake.texts(person)) for person in PEOPLE[:4]) == 2, "failed: nothing sent"
    clock.advance(5)  # the transient retry delay
    await bot.deliver()

    inbound = await exchanges(bot, Direction.IN)
    outbound = await exchanges(bot, Direction.OUT)
    assert [r.status for r in inbound] == [InboxStatus.DONE] * 4
    assert all(r.attempts == 0 for r in inbound)  # an outage is not the update's fault
    for row in inbound:  # answered once; the committed handling's reply logged once
        assert len(bot.fake.texts(row.chat_id or 0)) == 1
        assert len([r for r in outbound if r.in_reply_to == row.update_id]) == 1


async def test_a_handling_that_writes_commits_its_change_with_its_done_mark(
    bot: BotHarness,
) -> None:
    await bot.known(PEOPLE[0])
    replies = await bot.says(PEOPLE[0], "/language")
    await bot.presses(PEOPLE[0], replies[-1], "Français")

    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == PEOPLE[0]))
    assert account is not None and account.language == "fr"
    assert all(r.status is InboxStatus.DONE for r in await exchanges(bot, Direction.IN))


async def test_a_crowd_of_new_and_known_people_with_a_wide_worker_does_not_stall(
    database_url: str,
) -> None:
    """Each new person is a write (an account, the privacy notice): 32 handlings at once,
    half of them writing, all answered."""
    async with BotHarness(make_settings(database_url, inbox_concurrency=32)) as bot:
        people = range(6000, 6064)
        for person in people:
            if person % 2:
                await bot.known(person)
            else:
                bot.fake.add_user(person)
            bot.fake.user_writes(person, "ciao")
        await asyncio.wait_for(bot.deliver(), timeout=25)

        assert all(r.status is InboxStatus.DONE for r in await exchanges(bot, Direction.IN))
        assert all(bot.fake.texts(person) for person in people)


async def test_a_handling_that_outlives_its_lease_is_not_taken_by_another_worker(
    database_url: str,
) -> None:
    """PostgreSQL, two workers: A's handling is slow, its lease runs out; B must not handle
    the same update at the same time (A's row stays locked through its handling)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers: PostgreSQL only")
    fake = FakeTelegram(token=TOKEN)
    engines = [make_engine(database_url) for _ in range(2)]
    bots = []
    for worker_id, engine in zip(("A", "B"), engines, strict=True):
        application = build_application(
            make_settings(database_url),
            sessionmaker=make_sessionmaker(engine),
            request=FakeRequest(fake),
            worker_id=worker_id,
        )
        await application.initialize()
        bots.append(HelpCenterBot(application, skip_locked=True))
    first, second = bots
    fake.add_user(PEOPLE[0])
    async with make_sessionmaker(engines[0])() as session:
        account, _ = await get_or_create_account(session, PEOPLE[0])
        account.privacy_accepted_at = clock.now()
        await session.commit()
    fake.user_writes(PEOPLE[0], "/help")
    await first.poller.poll_once()

    slow_handling_of(first.application, "help", seconds=1.0)
    handling = asyncio.create_task(first.worker.drain())
    await asyncio.sleep(0.3)  # A is still handling
    clock.advance(61)  # A's lease (60 s) runs out meanwhile
    await asyncio.gather(handling, second.worker.drain())
    await asyncio.gather(*(dispatch_all(one.application) for one in bots))  # both send

    async with make_sessionmaker(engines[0])() as session:
        logged = list(
            await session.scalars(select(Exchange).where(Exchange.direction == Direction.OUT))
        )
    for one in bots:
        await one.application.shutdown()
    for engine in engines:
        await engine.dispose()
    assert len([c for c in fake.calls if c.method == "sendMessage"]) == 1
    assert len(logged) == 1


async def test_a_role_taken_away_after_the_claim_no_longer_counts(bot: BotHarness) -> None:
    """The senders are read with the claim; staff are read again when handling starts."""
    await bot.grant(OPERATOR, Role.OPERATOR)
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == OPERATOR))
        assert account is not None
        account.privacy_accepted_at = clock.now()
        await session.commit()
    bot.fake.user_writes(OPERATOR, "/cases")
    await bot.running.poller.poll_once()
    worker = bot.running.worker
    (row,) = await worker._claim(4)

    async with bot.session() as session:  # `helpcenter users grant … public` meanwhile
        account = await session.scalar(select(Account).where(Account.telegram_id == OPERATOR))
        assert account is not None
        await set_role(session, account, Role.PUBLIC, by=None)
        await session.commit()
    await worker._handle(row)
    await dispatch_all(bot.application)

    assert bot.fake.texts(OPERATOR)
    assert not any("Casi aperti" in text for text in bot.fake.texts(OPERATOR))


async def _notice_then_reply(update: Update, context: HCContext) -> None:
    """A handling that queues a message for the person's own chat, then replies to them."""
    assert update.effective_chat is not None and update.effective_message is not None
    enqueue(context.session, chat_id=update.effective_chat.id, kind="notice", params={"text": "1"})
    await update.effective_message.reply_text("2")
    raise ApplicationHandlerStop


async def test_a_reply_follows_what_its_handling_queued_before_it_for_the_same_chat(
    bot: BotHarness,
) -> None:
    """A chat's messages leave in the order they were queued, even within one handling: a
    reply does not overtake a notice queued for the same person just before it (the order
    must not depend on whether the session happened to write the notice to the database
    before the reply)."""
    bot.application.add_handler(CommandHandler("both", _notice_then_reply), group=-3)
    await bot.known(PEOPLE[0])
    bot.fake.user_writes(PEOPLE[0], "/both")
    await bot.deliver()
    assert bot.fake.texts(PEOPLE[0]) == ["1", "2"]


async def _reply_then_write(update: Update, context: HCContext) -> None:
    """A handling that replies, then writes: the session flushes the reply before it ends."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("answer")
    await context.session.flush()
    raise ApplicationHandlerStop


async def test_a_reply_written_early_in_its_handling_still_leaves_with_it(bot: BotHarness) -> None:
    """A reply leaves right after its handling's commit, before any round of the dispatcher,
    even when the session wrote it to the database earlier in the handling: it is not a
    message waiting ahead of itself."""
    bot.application.add_handler(CommandHandler("early", _reply_then_write), group=-3)
    await bot.known(PEOPLE[1])
    bot.fake.user_writes(PEOPLE[1], "/early")
    while await bot.running.poller.poll_once():
        await bot.running.worker.drain()
    assert bot.fake.texts(PEOPLE[1]) == ["answer"]
    assert await dispatch_all(bot.application) == 0
