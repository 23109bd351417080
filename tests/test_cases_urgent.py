"""Police ask for urgent help: alerts, the first Take wins, escalation, feedback that fails."""

from __future__ import annotations

from sqlalchemy import select

from models.base import clock
from models.cases import CaseOutcome, CaseStatus
from models.outbox import OutboxMessage, OutboxStatus
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    CARLA,
    POLICE,
    alerts_in,
    case_actions,
    deliver_outbox,
    only_case,
    restarted,
    sweep,
    team,
    texts,
)
from tests.conftest import BotHarness


async def police_ask_for_help(bot: BotHarness, *, photo: bool = False) -> list[dict]:
    await bot.says(POLICE, "/urgent")
    await bot.says(POLICE, location=(45.5327, 10.2125))
    out = await bot.says(POLICE, "Uomo molto agitato al binario 2, serve mediazione")
    if photo:
        out = await bot.says(POLICE, photo=True)
    else:
        out = await bot.presses(POLICE, out[-1], "🚨 Invia subito")
    await deliver_outbox(bot)
    return out


async def test_police_ask_anna_takes_it_bruno_sees_it_taken_police_know_who_is_coming(
    bot: BotHarness,
) -> None:
    await team(bot)
    out = await bot.says(POLICE, "/urgent")
    assert "1/3 Dove?" in texts(out)
    out = await bot.says(POLICE, location=(45.5327, 10.2125))
    assert "2/3" in texts(out)
    out = await bot.says(POLICE, "Uomo molto agitato al binario 2, serve mediazione")
    assert "3/3" in texts(out)
    out = await bot.presses(POLICE, out[-1], "🚨 Invia subito")
    case = await only_case(bot)
    assert f"Richiesta {case.reference} inviata" in texts(out)

    await deliver_outbox(bot)
    [anna_alert] = alerts_in(bot, ANNA)
    [bruno_alert] = alerts_in(bot, BRUNO)
    assert f"🚨 Richiesta urgente {case.reference}" in anna_alert["text"]

    out = await bot.presses(ANNA, anna_alert, "✋ Lo prendo io")
    assert "✅ Hai preso in carico questo caso." in texts(out)
    assert any("location" in m for m in out), "the taker gets the location on the map"
    await deliver_outbox(bot)

    bruno_now = bot.fake.current_message(BRUNO, bruno_alert["message_id"])
    assert bruno_now is not None
    assert f"{case.reference} è stato preso in carico da Anna" in bruno_now["text"]
    assert bot.fake.buttons(bruno_now) == []
    assert "🚶 Anna dell'Help Center sta arrivando" in bot.fake.last_text(POLICE)

    case = await only_case(bot)
    assert case.status is CaseStatus.TAKEN
    assert await case_actions(bot, case.id) == ["created", "taken"]


async def test_two_operators_press_take_at_the_same_moment_exactly_one_wins(
    bot: BotHarness,
) -> None:
    await team(bot)
    await police_ask_for_help(bot)
    [anna_alert] = alerts_in(bot, ANNA)
    [bruno_alert] = alerts_in(bot, BRUNO)
    before_anna = len(bot.fake.sent_messages(ANNA))
    before_bruno = len(bot.fake.sent_messages(BRUNO))

    # Both presses reach Telegram before the bot handles either: they are handled together.
    bot.fake.user_presses(ANNA, anna_alert, "✋ Lo prendo io")
    bot.fake.user_presses(BRUNO, bruno_alert, "✋ Lo prendo io")
    await bot.deliver()
    clock.advance(5)  # an update that lost a database lock is retried after a short pause
    await bot.deliver()

    anna_saw = texts(bot.fake.sent_messages(ANNA)[before_anna:])
    bruno_saw = texts(bot.fake.sent_messages(BRUNO)[before_bruno:])
    won = ["✅ Hai preso in carico questo caso." in saw for saw in (anna_saw, bruno_saw)]
    told_too_late = ["Troppo tardi" in saw for saw in (anna_saw, bruno_saw)]
    assert sorted(won) == [False, True], "exactly one wins"
    assert told_too_late == [not w for w in won], "the other is told"
    case = await only_case(bot)
    assert case.status is CaseStatus.TAKEN
    assert await case_actions(bot, case.id) == ["created", "taken"], "exactly one take"


async def test_with_nobody_on_duty_coordinators_are_alerted_and_the_police_told_so(
    bot: BotHarness,
) -> None:
    await team(bot, on_duty=())
    out = await police_ask_for_help(bot)
    assert "nessun operatore è in turno" in texts(out)
    assert len(alerts_in(bot, CARLA)) == 1
    assert alerts_in(bot, ANNA) == []


async def test_the_team_chat_gets_every_alert(bot: BotHarness) -> None:
    from fakebotapi import group_chat_dict

    team_chat = -100123
    bot.fake.register_chat(group_chat_dict(team_chat, "Operatori"))
    bot.settings.team_chat_id = team_chat
    await team(bot)
    await police_ask_for_help(bot)
    assert len(alerts_in(bot, team_chat)) == 1


async def test_escalation_runs_on_time_never_twice_and_stops_once_taken(bot: BotHarness) -> None:
    await team(bot, on_duty=(ANNA,))
    await police_ask_for_help(bot)
    assert len(alerts_in(bot, ANNA)) == 1

    clock.advance(4 * 60)
    assert await sweep(bot) == 0, "not yet: escalation is after 5 minutes"
    clock.advance(61)
    assert await sweep(bot) == 1
    assert await sweep(bot) == 0, "the same step never twice"
    anna_alerts = alerts_in(bot, ANNA)
    assert len(anna_alerts) == 2 and "sollecito 1" in anna_alerts[-1]["text"]
    assert alerts_in(bot, CARLA) == [], "step 1 is the on-duty operators again"

    clock.advance(5 * 60)
    assert await sweep(bot) == 1
    [carla_alert] = alerts_in(bot, CARLA)
    assert "sollecito 2" in carla_alert["text"]

    clock.advance(9 * 60)
    assert await sweep(bot) == 0, "then every 10 minutes"
    clock.advance(60)
    assert await sweep(bot) == 1
    assert len(alerts_in(bot, CARLA)) == 2

    await bot.presses(CARLA, carla_alert, "✋ Lo prendo io")
    clock.advance(60 * 60)
    assert await sweep(bot) == 0, "a taken case does not escalate"
    case = await only_case(bot)
    assert await case_actions(bot, case.id) == [
        "created",
        "escalated",
        "escalated",
        "escalated",
        "taken",
    ]


async def test_after_a_restart_an_overdue_case_escalates_at_once_and_only_once(
    bot: BotHarness,
) -> None:
    await team(bot, on_duty=(ANNA,))
    await police_ask_for_help(bot)
    clock.advance(30 * 60)  # the bot was down for half an hour

    async with restarted(bot) as new_process:
        assert await sweep(new_process) == 1
        assert await sweep(new_process) == 0
        assert await sweep(bot) == 0, "an old worker still running does not escalate it again"
    assert len(alerts_in(bot, ANNA)) == 2
    async with bot.session() as session:
        keys = list(
            await session.scalars(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.is_not(None))
            )
        )
    assert len(keys) == len(set(keys))


async def test_a_requester_who_blocked_the_bot_does_not_stop_the_case(bot: BotHarness) -> None:
    await team(bot)
    await police_ask_for_help(bot)
    bot.fake.block(POLICE)

    [anna_alert] = alerts_in(bot, ANNA)
    out = await bot.presses(ANNA, anna_alert, "✋ Lo prendo io")
    await deliver_outbox(bot)
    card = out[-2] if "location" in out[-1] else out[-1]
    del card
    case = await only_case(bot)
    assert case.status is CaseStatus.TAKEN
    async with bot.session() as session:
        feedback = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.kind == "case_feedback")
        )
    assert feedback is not None and feedback.status is OutboxStatus.FAILED
    assert feedback.error and "blocked" in feedback.error.lower()

    card = next(m for m in reversed(bot.fake.sent_messages(ANNA)) if "Sono sul posto" in str(m))
    out = await bot.presses(ANNA, card, "📍 Sono sul posto")
    card = next(m for m in reversed(out) if "Chiudi" in str(m))
    out = await bot.presses(ANNA, card, "Chiudi")
    out = await bot.presses(ANNA, out[-1], "Affidata ai servizi di emergenza")
    await deliver_outbox(bot)
    case = await only_case(bot)
    assert case.status is CaseStatus.CLOSED and case.outcome is CaseOutcome.EMERGENCY_SERVICES
    assert await case_actions(bot, case.id) == ["created", "taken", "arrive", "closed"]
