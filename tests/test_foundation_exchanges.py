"""The exchange log and the inbox: first contact, both directions logged, nothing twice."""

from __future__ import annotations

from sqlalchemy import func, select
from telegram.error import BadRequest

from fakebotapi import message_update, user_dict
from models.accounts import Account
from models.base import clock
from models.exchange import Direction, Exchange, InboxStatus
from models.roles import Role
from tests.conftest import BotHarness, fail_handling_of

VOLUNTEER = 1001


async def _exchanges(bot: BotHarness) -> list[Exchange]:
    async with bot.session() as session:
        return list(await session.scalars(select(Exchange).order_by(Exchange.id)))


async def test_first_contact_creates_a_public_account_and_greets_in_italian(
    bot: BotHarness,
) -> None:
    replies = await bot.says(VOLUNTEER, "/start")

    assert "Help Center" in replies[0]["text"] or "Ciao" in replies[0]["text"]
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == VOLUNTEER))
    assert account is not None
    assert account.role is Role.PUBLIC


async def test_both_directions_are_logged_with_ids_role_and_flow(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    replies = await bot.says(VOLUNTEER, "/help")

    inbound, outbound = await _exchanges(bot)
    assert inbound.direction is Direction.IN
    assert inbound.kind == "command" and inbound.text == "/help"
    assert inbound.status is InboxStatus.DONE
    assert inbound.role == "public" and inbound.flow == "help"
    assert inbound.account_id is not None and inbound.chat_id == VOLUNTEER
    assert outbound.direction is Direction.OUT and outbound.kind == "sendMessage"
    assert outbound.message_id == replies[0]["message_id"]
    assert outbound.in_reply_to == inbound.update_id
    assert outbound.text == replies[0]["text"]
    assert outbound.flow == "help" and outbound.account_id == inbound.account_id


async def test_an_update_redelivered_after_a_restart_is_logged_and_handled_once(
    bot: BotHarness,
) -> None:
    await bot.known(VOLUNTEER)
    bot.fake.push_update(message_update(user_dict(VOLUNTEER), "/help"))
    await bot.running.poller.poll_once()  # stored, not yet confirmed to Telegram
    await bot.running.worker.drain()
    bot.running.poller.offset = None  # the process restarts: the offset was only in memory

    await bot.deliver()  # Telegram hands the unconfirmed update over again

    async with bot.session() as session:
        inbound = await session.scalar(
            select(func.count()).where(Exchange.direction == Direction.IN)
        )
    assert inbound == 1
    assert len(bot.fake.sent_messages(VOLUNTEER)) == 1
    assert not bot.fake.pending_updates()


async def test_button_presses_locations_photos_and_edits_are_logged(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    menu = (await bot.says(VOLUNTEER, "/language"))[-1]
    await bot.presses(VOLUNTEER, menu, "English")
    await bot.says(VOLUNTEER, location=(45.5324, 10.2127))
    await bot.says(VOLUNTEER, photo=True)

    kinds = [e.kind for e in await _exchanges(bot) if e.direction is Direction.IN]
    assert kinds == ["command", "callback", "location", "photo"]
    edits = [e for e in await _exchanges(bot) if e.kind == "editMessageText"]
    assert edits and edits[0].message_id == menu["message_id"]


async def test_a_failed_send_is_logged_with_telegrams_error(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    bot.fake.fail_next("sendMessage", status=502, description="Bad Gateway")

    await bot.says(VOLUNTEER, "/help")

    failed = [e for e in await _exchanges(bot) if e.direction is Direction.OUT and e.error]
    assert failed and "502" in (failed[0].error or "")


async def test_a_handler_failure_is_retried_then_parked_with_an_apology(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    attempts = bot.settings.inbox_max_attempts
    fail_handling_of(bot, "help", BadRequest("boom"))
    bot.fake.user_writes(VOLUNTEER, "/help")

    for _ in range(attempts):
        await bot.deliver()
        clock.advance(60)  # past the retry back-off

    async with bot.session() as session:
        row = await session.scalar(select(Exchange).where(Exchange.direction == Direction.IN))
    assert row is not None
    assert row.status is InboxStatus.FAILED
    assert row.attempts == bot.settings.inbox_max_attempts
    assert "BadRequest" in (row.error or "")
    apology = bot.fake.sent_messages(VOLUNTEER)[-1]["text"]
    assert "codice" in apology.lower() or "code" in apology.lower()


async def test_updates_of_one_chat_are_handled_in_order(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    for text in ["/help", "/start", "/language", "/help"]:
        bot.fake.user_writes(VOLUNTEER, text)
    bot.fake.user_writes(2002, "/help")

    await bot.deliver()

    async with bot.session() as session:
        rows = list(
            await session.scalars(
                select(Exchange)
                .where(Exchange.direction == Direction.IN, Exchange.chat_id == VOLUNTEER)
                .order_by(Exchange.handled_at, Exchange.id)
            )
        )
    handled = [r.update_id for r in rows]
    assert handled == sorted(handled)
    assert len(bot.fake.sent_messages(VOLUNTEER)) == 4


async def test_the_apology_for_a_parked_update_is_in_the_chosen_language(bot: BotHarness) -> None:
    await bot.known(VOLUNTEER)
    menu = (await bot.says(VOLUNTEER, "/language"))[-1]
    await bot.presses(VOLUNTEER, menu, "English")
    attempts = bot.settings.inbox_max_attempts
    fail_handling_of(bot, "help", BadRequest("boom"))
    bot.fake.user_writes(VOLUNTEER, "/help")

    for _ in range(attempts):
        await bot.deliver()
        clock.advance(60)

    assert "Incident code" in bot.fake.sent_messages(VOLUNTEER)[-1]["text"]


async def test_on_first_contact_the_privacy_notice_comes_before_the_answer(
    bot: BotHarness,
) -> None:
    first = await bot.says(VOLUNTEER, "/help")
    again = await bot.says(VOLUNTEER, "/help")

    assert len(first) == 2 and "privacy" in first[0]["text"].lower()
    assert first[1]["text"] == again[0]["text"]
    assert len(again) == 1
