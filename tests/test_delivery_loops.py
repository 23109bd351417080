"""The running loops are woken by what needs them, and by nothing else.

The inbox worker and the dispatcher look for work on their own only every ``idle`` seconds;
everything a person is waiting for must come from a wake-up: an update stored, a handling
that ended with another update of its chat behind it, a commit that queued a message, a send
that ended with another message of its chat behind it. Here the idle look is an hour away,
so an answer that comes at all came from a wake-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import BotHarness, slow_handling_of

PERSON = 5101
NEWCOMER = 5102
NEVER = 3600.0


@asynccontextmanager
async def loops_woken_only(bot: BotHarness) -> AsyncIterator[None]:
    bot.running.worker.idle_poll_seconds = NEVER
    bot.running.dispatcher.idle_seconds = NEVER
    await bot.running.start()
    await asyncio.sleep(0.1)  # both loops had their first look and now wait
    try:
        yield
    finally:
        await bot.running.stop()


async def answered(bot: BotHarness, chat: int, count: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(bot.fake.texts(chat)) >= count:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_two_messages_of_one_chat_fetched_together_are_both_answered(
    bot: BotHarness,
) -> None:
    await bot.known(PERSON)
    async with loops_woken_only(bot):
        bot.fake.user_writes(PERSON, "/help")
        bot.fake.user_writes(PERSON, "hello")
        assert await bot.running.poller.poll_once() == 2
        assert await answered(bot, PERSON, 2)


async def test_a_message_that_arrives_during_the_previous_ones_handling_is_answered(
    bot: BotHarness,
) -> None:
    """On PostgreSQL the second is stored while the first is handled, and waits for it; on
    SQLite its storing waits for the handling's write transaction instead."""
    await bot.known(PERSON)
    slow_handling_of(bot.application, "help", 0.3)
    async with loops_woken_only(bot):
        bot.fake.user_writes(PERSON, "/help")
        await bot.running.poller.poll_once()
        await asyncio.sleep(0.1)  # the first is being handled now
        bot.fake.user_writes(PERSON, "hello")
        await bot.running.poller.poll_once()
        assert await answered(bot, PERSON, 2)


async def test_a_second_message_queued_behind_a_reply_being_sent_follows_it(
    bot: BotHarness,
) -> None:
    """A first contact gets two messages: the first leaves at once, the second waits in the
    outbox behind it and is sent when the first is."""
    bot.fake.add_user(NEWCOMER)
    async with loops_woken_only(bot):
        bot.fake.user_writes(NEWCOMER, "/help")
        await bot.running.poller.poll_once()
        assert await answered(bot, NEWCOMER, 2)


async def test_an_update_stored_while_a_slot_is_free_needs_no_claim_of_its_own(
    bot: BotHarness,
) -> None:
    """The fetch loop claims what it stores in the same commit: the worker's loop is not
    woken and claims nothing, and the person is answered."""
    await bot.known(PERSON)
    async with loops_woken_only(bot):
        worker = bot.running.worker
        claims: list[int] = []
        real_claim = worker._claim

        async def counted(limit: int) -> Any:
            claims.append(limit)
            return await real_claim(limit)

        worker._claim = counted  # type: ignore[method-assign]
        bot.fake.user_writes(PERSON, "/help")
        assert await bot.running.poller.poll_once() == 1
        assert await answered(bot, PERSON, 1)
        assert claims == []


async def test_updates_stored_while_every_slot_is_busy_are_handled_as_slots_free(
    bot: BotHarness,
) -> None:
    """Six people at once with four slots: four are claimed with the store, the other two
    when handlings end; nobody waits for the idle look."""
    people = range(5200, 5206)
    for person in people:
        await bot.known(person)
    slow_handling_of(bot.application, "help", seconds=0.3)
    async with loops_woken_only(bot):
        for person in people:
            bot.fake.user_writes(person, "/help")
        assert await bot.running.poller.poll_once() == len(people)
        for person in people:
            assert await answered(bot, person, 1)


async def test_a_store_that_fails_after_its_claim_starts_nothing(bot: BotHarness) -> None:
    """The claim is part of the store's transaction: if that commit fails, nothing was
    claimed, nothing is handled, Telegram hands the update over again, and it is answered once."""
    await bot.known(PERSON)
    async with loops_woken_only(bot):
        worker = bot.running.worker
        real_claim_in = worker.claim_in

        async def claim_then_fail(session: Any, stored: Any) -> Any:
            await real_claim_in(session, stored)
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))

        bot.running.poller.claim_in = claim_then_fail
        bot.fake.user_writes(PERSON, "/help")
        with pytest.raises(OperationalError):
            await bot.running.poller.poll_once()
        await asyncio.sleep(0.2)
        assert bot.fake.texts(PERSON) == []
        bot.running.poller.claim_in = real_claim_in
        assert await bot.running.poller.poll_once() == 1  # handed over again
        assert await answered(bot, PERSON, 1)
        await asyncio.sleep(0.2)
        assert len(bot.fake.texts(PERSON)) == 1


async def test_chats_whose_messages_another_process_sent_are_forgotten(bot: BotHarness) -> None:
    """A commit in this process noted chats as queued, and another worker sent their rows:
    a round that finds nothing to send and nothing being sent forgets them, so the set does
    not grow with every chat the other workers answered (nor wake the loop for them)."""
    async with loops_woken_only(bot):
        dispatcher = bot.running.dispatcher
        dispatcher.note_queued(set(range(7000, 7100)))
        await asyncio.sleep(0.2)
        assert dispatcher._queued_chats == set()
