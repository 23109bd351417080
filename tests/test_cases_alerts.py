"""A request must reach someone, or the requester must hear the truth; blocks that end.

Real Telegram: people block and unblock the bot (a ``my_chat_member`` update each time), an
administrator named in the settings may never have written to it, a reply may be refused
with 403 because the person blocked the bot a second ago.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot import metrics
from bot.health import health_report, warn_at_start_up, warn_if_nobody_can_be_alerted
from models.accounts import Account, account_by_telegram_id
from models.base import clock
from models.cases import ALERT_KINDS
from models.exchange import Exchange, InboxStatus
from models.migrate import upgrade
from models.outbox import OutboxMessage, OutboxStatus
from models.roles import Role
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    CARLA,
    POLICE,
    VOLUNTEER,
    alerts_in,
    deliver_outbox,
    only_case,
    sweep,
    team,
    texts,
)
from tests.conftest import ADMIN_ID, BotHarness, make_settings
from tests.directory_helpers import load_example, set_local_time
from tests.test_cases_urgent import police_ask_for_help

HELP_CENTER_PHONE = "+39 030 000 0001"
STRANGER = 777


def answers(out: list[dict], reference: str) -> list[dict]:
    """The bot's answers about the case (not the earlier step whose buttons it removed)."""
    return [m for m in out if reference in (m.get("text") or "")]


async def alert_rows(bot: BotHarness) -> int:
    async with bot.session() as session:
        query = select(func.count()).where(OutboxMessage.kind.in_(ALERT_KINDS))
        return int(await session.scalar(query) or 0)


async def unalerted_on_health(bot: BotHarness) -> int:
    report = await health_report(bot.sessionmaker)
    return int(report["cases"]["unalerted"])


async def reachable(bot: BotHarness, telegram_id: int) -> bool:
    async with bot.session() as session:
        account = await account_by_telegram_id(session, telegram_id)
        assert account is not None
        return account.unreachable_since is None


async def test_with_nobody_to_alert_the_police_hear_the_truth_then_the_admin_gets_it(
    bot: BotHarness,
) -> None:
    """Fresh install: a police officer, nobody on duty, the settings' admin never wrote."""
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(POLICE, Role.POLICE, first_name="Paolo", language_code="it")

    out = await police_ask_for_help(bot)
    case = await only_case(bot)
    [answer] = answers(out, case.reference)  # one answer, not two that contradict each other
    text = answer["text"]
    assert "nessuno dell'Help Center può essere avvisato" in text
    assert "112" in text and HELP_CENTER_PHONE in text
    assert "sono stati avvisati" not in text and "ti dirò chi arriva" not in text
    assert await alert_rows(bot) == 0
    assert case.unalerted_since is not None
    assert await unalerted_on_health(bot) == 1
    assert metrics.CASES_UNALERTED._value.get() == 1

    assert await sweep(bot) == 0
    assert alerts_in(bot, ADMIN_ID) == [], "an admin who never wrote cannot be alerted"

    await bot.says(ADMIN_ID, "/start")  # the administrator writes to the bot for the first time
    await sweep(bot)
    [admin_alert] = alerts_in(bot, ADMIN_ID)
    assert f"🚨 Richiesta urgente {case.reference}" in admin_alert["text"]
    assert f"La tua richiesta {case.reference} ora è arrivata" in bot.fake.last_text(POLICE)
    assert (await only_case(bot)).unalerted_since is None
    assert await unalerted_on_health(bot) == 0
    await sweep(bot)
    assert len(alerts_in(bot, ADMIN_ID)) == 1, "alerted once, not at every sweep"

    out = await bot.presses(ADMIN_ID, admin_alert, "✋ Lo prendo io")
    await deliver_outbox(bot)
    assert "dell'Help Center sta arrivando" in bot.fake.last_text(POLICE)


async def test_a_coordinator_who_writes_after_a_long_wait_gets_one_alert(bot: BotHarness) -> None:
    await bot.grant(POLICE, Role.POLICE, first_name="Paolo", language_code="it")
    await police_ask_for_help(bot)
    clock.advance(20 * 60)  # overdue for escalation several times over; still nobody
    await sweep(bot)
    await bot.grant(CARLA, Role.COORDINATOR, first_name="Carla", language_code="it")
    clock.advance(10 * 60)  # the next escalation is due when Carla becomes reachable
    await sweep(bot)
    assert len(alerts_in(bot, CARLA)) == 1, "one alert, not an escalation and a late one"
    assert (await only_case(bot)).unalerted_since is None
    reached = [t for t in bot.fake.texts(POLICE) if "ora è arrivata" in t]
    assert len(reached) == 1


async def test_a_report_nobody_can_receive_says_so_once(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(VOLUNTEER, Role.VOLUNTEER, first_name="Vera", language_code="it")
    await bot.says(VOLUNTEER, "/report")
    await bot.says(VOLUNTEER, "Binario 3")
    asked = await bot.presses(VOLUNTEER, bot.last(VOLUNTEER), "Dorme in strada")
    asked = await bot.presses(VOLUNTEER, asked[-1], "Urgente, oggi")
    asked = await bot.says(VOLUNTEER, "Un uomo dorme sulla panchina")
    asked = await bot.presses(VOLUNTEER, asked[-1], "Salta")
    out = await bot.presses(VOLUNTEER, asked[-1], "✅ Invia la segnalazione")
    text = texts(out)
    assert "nessuno dell'Help Center può essere avvisato" in text
    assert HELP_CENTER_PHONE in text
    assert "coordinatori sono stati avvisati" not in text
    assert await alert_rows(bot) == 0
    assert (await only_case(bot)).unalerted_since is not None


async def test_with_nobody_on_duty_the_police_are_told_only_about_the_coordinators(
    bot: BotHarness,
) -> None:
    await team(bot, on_duty=())
    out = await police_ask_for_help(bot)
    [answer] = answers(out, (await only_case(bot)).reference)
    assert "nessun operatore è in turno" in answer["text"]
    assert "Gli operatori sono stati avvisati" not in answer["text"]
    assert len(alerts_in(bot, CARLA)) == 1
    assert (await only_case(bot)).unalerted_since is None


async def test_an_operator_who_unblocks_the_bot_receives_alerts_again(bot: BotHarness) -> None:
    await team(bot, on_duty=(ANNA,))
    bot.fake.block(ANNA)  # Anna blocked the bot; nobody knows yet
    await police_ask_for_help(bot)
    assert not await reachable(bot, ANNA), "her alert was refused with 403"
    assert (await only_case(bot)).unalerted_since is not None, "nobody has the alert"
    await sweep(bot)
    assert len(alerts_in(bot, CARLA)) == 1, "Carla, the coordinator, is alerted instead"
    assert (await only_case(bot)).unalerted_since is None

    before = len(bot.fake.sent_messages(ANNA))
    bot.fake.user_unblocks(ANNA)
    await bot.deliver()
    assert await reachable(bot, ANNA)
    assert len(bot.fake.sent_messages(ANNA)) == before, "an unblock event is not answered"

    await police_ask_for_help(bot)
    assert len(alerts_in(bot, ANNA)) == 1, "on duty and reachable again: she is alerted"


async def test_any_message_clears_the_flag_and_duty_says_alerts_had_failed(
    bot: BotHarness,
) -> None:
    await team(bot, on_duty=(ANNA, BRUNO))
    bot.fake.block(ANNA)
    await police_ask_for_help(bot)
    assert not await reachable(bot, ANNA)

    bot.fake.unblock(ANNA)  # Telegram's unblock event got lost: Anna simply writes
    out = await bot.says(ANNA, "/duty")
    assert await reachable(bot, ANNA)
    text = texts(out)
    assert "Sei in turno" in text
    assert "non sono riuscito a consegnarti gli avvisi" in text

    out = await bot.says(ANNA, "/duty")
    assert "non sono riuscito" not in texts(out), "said once, when it was true"

    bot.fake.block(BRUNO)
    await police_ask_for_help(bot)  # Bruno's alert fails
    assert not await reachable(bot, BRUNO)
    bot.fake.unblock(BRUNO)
    await bot.says(BRUNO, "ciao")
    assert await reachable(bot, BRUNO), "any message from the person clears it"


async def test_an_alert_refused_by_the_only_recipient_leaves_the_case_unalerted(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(POLICE, Role.POLICE, first_name="Paolo", language_code="it")
    await bot.grant(ANNA, Role.OPERATOR, first_name="Anna", language_code="it")
    await bot.says(ANNA, "/duty on")
    bot.fake.block(ANNA)
    out = await police_ask_for_help(bot)
    assert "Gli operatori sono stati avvisati" in texts(out), "what the bot believed"
    case = await only_case(bot)
    assert case.unalerted_since is not None, "the only alert was refused: nobody has it"
    assert await unalerted_on_health(bot) == 1
    correction = bot.fake.last_text(POLICE)
    assert f"Sulla tua richiesta {case.reference}" in correction
    assert "non è stato possibile consegnare i miei avvisi a nessuno" in correction
    assert "112" in correction and HELP_CENTER_PHONE in correction

    bot.fake.user_unblocks(ANNA)
    await bot.deliver()
    await sweep(bot)
    assert len(alerts_in(bot, ANNA)) == 1
    assert (await only_case(bot)).unalerted_since is None


async def test_when_every_alert_is_refused_at_once_the_coordinator_gets_the_case(
    bot: BotHarness,
) -> None:
    """Anna and Bruno both blocked the bot: their alerts fail in the same dispatch round."""
    await team(bot, on_duty=(ANNA, BRUNO))
    bot.fake.block(ANNA)
    bot.fake.block(BRUNO)
    await police_ask_for_help(bot)
    await sweep(bot)
    assert len(alerts_in(bot, CARLA)) == 1
    assert (await only_case(bot)).unalerted_since is None
    assert "ora è arrivata" in bot.fake.last_text(POLICE)


async def test_alerts_lost_without_anyone_noticing_are_caught_by_the_sweep(
    bot: BotHarness,
) -> None:
    """Two alerts failing at the same moment in two transactions each see the other one still
    on its way: the outbox is left with every alert failed and the case not marked."""
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(POLICE, Role.POLICE, first_name="Paolo", language_code="it")
    await bot.grant(ANNA, Role.OPERATOR, first_name="Anna", language_code="it")
    await bot.says(ANNA, "/duty on")
    await police_ask_for_help(bot)
    async with bot.session() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind.in_(ALERT_KINDS))
            .values(status=OutboxStatus.FAILED)
        )
        await session.execute(
            update(Account)
            .where(Account.telegram_id == ANNA)
            .values(unreachable_since=clock.now(), unreachable_reason="blocked")
        )
        await session.commit()

    await sweep(bot)
    case = await only_case(bot)
    assert case.unalerted_since is not None
    assert "non è stato possibile consegnare i miei avvisi" in bot.fake.last_text(POLICE)
    await sweep(bot)
    corrections = [t for t in bot.fake.texts(POLICE) if "non è stato possibile" in t]
    assert len(corrections) == 1, "told once"


async def test_blocking_the_bot_marks_a_person_unreachable_and_creates_no_account(
    bot: BotHarness,
) -> None:
    await bot.grant(CARLA, Role.COORDINATOR, first_name="Carla", language_code="it")
    bot.fake.user_blocks(CARLA)
    bot.fake.user_blocks(STRANGER)
    await bot.deliver()
    assert not await reachable(bot, CARLA)
    async with bot.session() as session:
        assert await account_by_telegram_id(session, STRANGER) is None
        parked = await session.scalar(
            select(func.count()).where(Exchange.status == InboxStatus.FAILED)
        )
    assert parked == 0
    assert bot.fake.sent_messages(STRANGER) == []


async def test_a_reply_refused_because_the_person_just_blocked_is_not_a_failure(
    bot: BotHarness,
) -> None:
    from tests.contacts_helpers import IT

    await bot.says(STRANGER, "/start")
    question = (await bot.says(STRANGER, "/forget"))[-1]
    bot.fake.user_presses(STRANGER, question, IT("Yes, erase my data"))
    bot.fake.user_blocks(STRANGER)  # blocks the bot right after pressing, before the answer
    await bot.deliver()
    async with bot.session() as session:
        accounts = await session.scalar(
            select(func.count()).select_from(Account).where(Account.telegram_id == STRANGER)
        )
        statuses = list(
            await session.scalars(select(Exchange.status).where(Exchange.update_id > 0))
        )
        outbox = list(await session.scalars(select(OutboxMessage.kind)))
    assert accounts == 0, "erased, and the block event made no new account"
    assert set(statuses) == {InboxStatus.DONE}, "all handled: none retried, parked or stuck"
    assert "apology" not in outbox, "no apology to a chat that cannot receive it"


@pytest.mark.parametrize("with_coordinator", [False, True])
async def test_start_up_warns_when_nobody_on_the_team_can_receive_alerts(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, with_coordinator: bool
) -> None:
    if with_coordinator:
        await bot.grant(CARLA, Role.COORDINATOR, first_name="Carla", language_code="it")
    with caplog.at_level(logging.WARNING):
        warned = await warn_if_nobody_can_be_alerted(bot.sessionmaker)
    assert warned is not with_coordinator
    assert ("nobody on the team can receive alerts" in caplog.text) is not with_coordinator


def test_helpcenter_run_checks_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``helpcenter run`` calls before starting: a fresh database, the admin of the
    settings has never written, so nobody can receive alerts."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    with caplog.at_level(logging.WARNING):
        warn_at_start_up(make_settings(url))
    assert "nobody on the team can receive alerts" in caplog.text
