"""The inbox: an update is handled once, in order per chat, and never lost or retried forever."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from telegram import Update
from telegram.ext import CommandHandler

from bot.dispatcher import dispatch_all
from bot.runtime import HCContext
from models.base import clock
from models.exchange import (
    Direction,
    Exchange,
    InboxStatus,
    claim_stored,
    claim_updates,
    inbox_health,
    store_updates,
)
from models.jobs import claim_job_run
from tests.conftest import BotHarness

PERSON = 3001


async def _database_blinks(update: Update, context: HCContext) -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database restarting"))


async def _bug(update: Update, context: HCContext) -> None:
    raise ValueError("a bug in a handler")


async def inbound(bot: BotHarness) -> list[Exchange]:
    async with bot.session() as session:
        query = select(Exchange).where(Exchange.direction == Direction.IN)
        return list(await session.scalars(query.order_by(Exchange.update_id)))


async def test_a_database_outage_is_not_held_against_the_update(bot: BotHarness) -> None:
    bot.application.add_handler(CommandHandler("blink", _database_blinks), group=-3)
    bot.fake.add_user(PERSON, language_code="fr")
    for _ in range(5):
        bot.fake.user_writes(PERSON, "/blink")
        await bot.deliver()
        clock.advance(5)
    rows = await inbound(bot)
    assert all(r.attempts == 0 and r.status is InboxStatus.PENDING for r in rows)
    # The first is tried again and again; the chat's later messages wait behind it, in order.
    assert [r.claims for r in rows] == [5, 0, 0, 0, 0]


async def test_a_parked_update_is_counted_and_the_person_gets_an_apology(
    bot: BotHarness,
) -> None:
    bot.application.add_handler(CommandHandler("bug", _bug), group=-3)
    bot.fake.add_user(PERSON, language_code="fr")
    bot.fake.user_writes(PERSON, "/bug")
    for _ in range(bot.settings.inbox_max_attempts):
        await bot.deliver()
        clock.advance(60)

    (row,) = await inbound(bot)
    assert row.status is InboxStatus.FAILED and "ValueError" in (row.error or "")
    async with bot.session() as session:
        assert (await inbox_health(session)).failed == 1
    apologies = [t for t in bot.fake.texts(PERSON) if "ncident" in t]
    assert len(apologies) == 1 and "Désolé" in apologies[0]


async def test_an_interrupted_update_is_handled_again_after_its_lease(bot: BotHarness) -> None:
    await bot.known(PERSON)
    bot.fake.user_writes(PERSON, "/help")
    await bot.running.poller.poll_once()
    async with bot.session() as session:  # a worker that took it and then died
        taken = await claim_updates(
            session, "dead-worker", limit=10, lease=timedelta(seconds=60), skip_locked=False
        )
        await session.commit()
    assert len(taken) == 1

    await bot.deliver()
    assert bot.fake.texts(PERSON) == []
    clock.advance(61)
    await bot.deliver()

    (row,) = await inbound(bot)
    assert row.status is InboxStatus.DONE and row.claims == 2
    assert len(bot.fake.texts(PERSON)) == 1


async def test_a_row_taken_over_by_another_worker_is_not_handled_twice(bot: BotHarness) -> None:
    await bot.known(PERSON)
    bot.fake.user_writes(PERSON, "/help")
    await bot.running.poller.poll_once()
    async with bot.session() as session:
        (row,) = await claim_updates(
            session, "me", limit=1, lease=timedelta(seconds=1), skip_locked=False
        )
        await session.commit()
    clock.advance(5)
    await bot.running.worker.drain()  # our lease expired: another worker handled it
    await bot.running.worker._handle(row)  # we wake up late
    await dispatch_all(bot.application)

    assert len(bot.fake.texts(PERSON)) == 1


async def test_many_chats_in_parallel_each_in_order(bot: BotHarness) -> None:
    for chat in range(4000, 4008):
        await bot.known(chat)
    for n in range(40):
        bot.fake.user_writes(4000 + n % 8, "/help" if n % 2 else "hello")
    await bot.deliver()

    rows = await inbound(bot)
    assert all(r.status is InboxStatus.DONE for r in rows)
    for chat in range(4000, 4008):
        mine = [r for r in rows if r.chat_id == chat]
        by_time = sorted(mine, key=lambda r: (r.handled_at, r.id))
        assert [r.update_id for r in by_time] == [r.update_id for r in mine]
        assert len(bot.fake.texts(chat)) == len(mine)


async def test_a_scheduled_job_runs_once_per_due_slot_across_workers(bot: BotHarness) -> None:
    outcomes = []
    for _worker in range(3):
        async with bot.session() as session:
            outcomes.append(await claim_job_run(session, "escalation", "2026-01-01T10:05"))
            await session.commit()
    assert outcomes == [True, False, False]


def _message(update_id: int, chat_id: int, text: str) -> dict[str, object]:
    user = {"id": chat_id, "is_bot": False, "first_name": "Ada"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": user,
            "chat": {"id": chat_id, "type": "private"},
            "date": 1_700_000_000,
            "text": text,
        },
    }


async def test_a_store_claims_what_can_start_and_hands_it_over_as_stored(
    bot: BotHarness,
) -> None:
    """The fetch loop's claim in its store: the first update of each chat, up to the free
    slots, unless an update of its chat is still being handled; a chat's second update
    waits; the payload handed to the handlers is the one the database holds (U+0000
    cleaned)."""
    lease = timedelta(seconds=60)
    async with bot.session() as session:
        await store_updates(session, [_message(1, 41, "/help")])
        await claim_updates(session, "w", limit=1, lease=lease, skip_locked=False)
        await session.commit()
    batch = [
        _message(2, 41, "behind the one being handled"),
        _message(3, 42, "/help\x00"),
        _message(4, 42, "second of its chat"),
        _message(5, 43, "/start"),
        _message(6, 44, "no slot left"),
    ]
    async with bot.session() as session:
        stored = await store_updates(session, batch)
        claimed = await claim_stored(session, "w", stored, limit=3, lease=lease)
        await session.commit()

    assert [row.update_id for row in claimed] == [3, 5]
    rows = {row.update_id: row for row in await inbound(bot)}
    assert claimed[0].payload == rows[3].payload
    assert claimed[0].payload["message"]["text"] == "/help\ufffd"  # type: ignore[index]
    assert [rows[n].status for n in (2, 3, 4, 5, 6)] == [
        InboxStatus.PENDING,
        InboxStatus.PROCESSING,
        InboxStatus.PENDING,
        InboxStatus.PROCESSING,
        InboxStatus.PENDING,
    ]
    assert [row.claims for row in claimed] == [1, 1]


async def test_a_redelivered_update_is_not_claimed_again_by_its_store(bot: BotHarness) -> None:
    lease = timedelta(seconds=60)
    first = [_message(7, 45, "/help")]
    async with bot.session() as session:
        stored = await store_updates(session, first)
        assert len(await claim_stored(session, "w", stored, limit=4, lease=lease)) == 1
        await session.commit()
    async with bot.session() as session:  # Telegram hands the same update over again
        stored = await store_updates(session, first)
        assert await claim_stored(session, "w", stored, limit=4, lease=lease) == []
        await session.commit()
