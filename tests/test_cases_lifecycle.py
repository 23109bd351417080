"""The case lifecycle: the rules table, the first Take as a database fact, the desk."""

from __future__ import annotations

import asyncio

import pytest

from models.accounts import account_by_telegram_id
from models.cases import (
    TRANSITIONS,
    Action,
    CaseOutcome,
    CaseStatus,
    TransitionRefused,
    case_by_id,
    closed_case_facts,
    next_status,
    take_case,
)
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    CARLA,
    VOLUNTEER_FR,
    alerts_in,
    case_actions,
    deliver_outbox,
    only_case,
    set_language,
    sweep,
    team,
    texts,
)
from tests.conftest import BotHarness


def test_the_lifecycle_table_allows_only_meaningful_moves() -> None:
    assert next_status(CaseStatus.NEW, Action.TAKE) is CaseStatus.TAKEN
    assert next_status(CaseStatus.TAKEN, Action.ARRIVE) is CaseStatus.ON_SITE
    assert next_status(CaseStatus.ON_SITE, Action.CLOSE) is CaseStatus.CLOSED
    assert next_status(CaseStatus.CLOSED, Action.REOPEN) is CaseStatus.TAKEN
    for status in CaseStatus:
        for action in Action:
            if (status, action) not in TRANSITIONS:
                with pytest.raises(TransitionRefused):
                    next_status(status, action)
    assert (CaseStatus.CLOSED, Action.CLOSE) not in TRANSITIONS
    assert (CaseStatus.ON_SITE, Action.TAKE) not in TRANSITIONS


async def quick_report(bot: BotHarness, reporter: int, place: str = "Via Solferino") -> None:
    await bot.says(reporter, "/report")
    out = await bot.says(reporter, place)
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[1][0])
    out = await bot.says(reporter, "Signora anziana al freddo")
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    await deliver_outbox(bot)


async def test_two_sessions_taking_at_once_one_row_count_wins(bot: BotHarness) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER_FR)
    case = await only_case(bot)

    async def take_as(telegram_id: int) -> bool:
        async with bot.session() as session:
            operator = await account_by_telegram_id(session, telegram_id)
            assert operator is not None
            result = await take_case(session, case.id, operator)
            await session.commit()
            return result.won

    results = await asyncio.gather(take_as(ANNA), take_as(BRUNO), return_exceptions=True)
    wins = [r for r in results if r is True]
    assert len(wins) == 1, results
    assert await case_actions(bot, case.id) == ["created", "taken"]


async def test_a_french_reporter_hears_taken_and_closed_and_the_case_can_be_reopened(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER_FR, "fr")
    await quick_report(bot, VOLUNTEER_FR)
    case = await only_case(bot)

    out = await bot.says(ANNA, "/cases")
    assert "Casi aperti (Tutti): 1" in texts(out)
    out = await bot.presses(ANNA, out[-1], bot.fake.buttons(out[-1])[0][0])
    assert f"Segnalazione {case.reference}" in texts(out)
    assert "in attesa che qualcuno lo prenda" in texts(out)
    card = out[0]
    out = await bot.presses(ANNA, card, "✋ Lo prendo io")
    await deliver_outbox(bot)
    assert f"Votre signalement {case.reference} a été pris en charge par Anna" in (
        bot.fake.last_text(VOLUNTEER_FR) or ""
    )

    card = next(m for m in reversed(out) if "Chiudi" in str(m))
    out = await bot.presses(ANNA, card, "Chiudi")
    out = await bot.presses(ANNA, out[-1], "Persona incontrata e aiutata")
    await deliver_outbox(bot)
    assert "est clôturé : Personne rencontrée et aidée" in (bot.fake.last_text(VOLUNTEER_FR) or "")

    async with bot.session() as session:
        facts = await closed_case_facts(session, case.id)
    assert facts is not None and facts.outcome is CaseOutcome.HELPED
    assert facts.place == "Via Solferino" and facts.closed_at >= facts.created_at

    # Bruno may not close Anna's case, but anyone on the team may reopen a closed one.
    card = next(m for m in reversed(out) if "Riapri" in str(m))
    bot.fake.user_presses(BRUNO, card, "Riapri")
    await bot.deliver()
    async with bot.session() as session:
        reopened = await case_by_id(session, case.id)
        bruno = await account_by_telegram_id(session, BRUNO)
        assert reopened is not None and bruno is not None
        assert reopened.status is CaseStatus.TAKEN and reopened.owner_id == bruno.id
    assert await case_actions(bot, case.id) == ["created", "taken", "closed", "reopen"]
    last_card = bot.fake.texts(ANNA)[-1]
    assert "Cronologia:" in last_card and "riaperto Bruno" in last_card


async def test_someone_else_cannot_move_a_taken_case(bot: BotHarness) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER_FR)
    [anna_alert] = alerts_in(bot, ANNA)
    out = await bot.presses(ANNA, anna_alert, "✋ Lo prendo io")
    card = next(m for m in reversed(out) if "Chiudi" in str(m))
    bot.fake.user_presses(BRUNO, card, "Chiudi")  # a press on a message Bruno cannot see
    await bot.deliver()
    assert "Ora non puoi farlo" in (bot.fake.last_text(ANNA) or "")
    case = await only_case(bot)
    assert case.status is CaseStatus.TAKEN


async def test_duty_switch_and_everyone_saying_cant_brings_the_coordinators_in(
    bot: BotHarness,
) -> None:
    await team(bot, on_duty=())
    out = await bot.says(ANNA, "/duty")
    assert "Non sei in turno" in texts(out)
    out = await bot.presses(ANNA, out[-1], "Entra in turno")
    assert "Sei in turno" in texts(out)

    await quick_report(bot, VOLUNTEER_FR)
    [alert] = alerts_in(bot, ANNA)
    out = await bot.presses(ANNA, alert, "Non posso")
    assert "stiamo avvisando i coordinatori" in texts(out)
    assert await sweep(bot) == 1
    assert len(alerts_in(bot, CARLA)) == 1

    out = await bot.says(ANNA, "/duty off")
    assert "Non sei in turno" in texts(out)
