"""Who is told what when a case moves: one decision in the domain, whichever path moved it.

The desk's buttons, the escalation sweep and anything else that moves a case (a command, a
script) describe the move and ask ``models.case_notices``; these stories check that two
paths moving a case the same way tell the same people the same thing, and that the sweeps
get their unit of work from the job runner (``bot.jobs``).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from handlers import case_notify
from handlers.case_notify import announce
from handlers.cases import escalation_job
from models.accounts import account_by_telegram_id
from models.base import clock
from models.cases import Action, Case, CaseEvent, CaseOutcome, CaseStatus, case_by_id, move_case
from models.outbox import OutboxMessage
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    VOLUNTEER,
    VOLUNTEER_FR,
    alerts_in,
    deliver_outbox,
    only_case,
    sweep,
    team,
)
from tests.conftest import BotHarness
from tests.test_cases_lifecycle import quick_report

Told = list[tuple[int, str, str]]


async def last_outbox_id(bot: BotHarness) -> int:
    async with bot.session() as session:
        return int(await session.scalar(select(func.max(OutboxMessage.id))) or 0)


async def told_about(bot: BotHarness, case: Case, after: int) -> Told:
    """Who was told what about ``case`` since outbox row ``after`` (replies to the person
    who pressed aside), with the case's reference written REF so two cases compare."""
    async with bot.session() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.subject_type == "case",
                OutboxMessage.subject_id == case.id,
                OutboxMessage.id > after,
                OutboxMessage.kind != "reply",
            )
        )
        return sorted(
            (row.chat_id, row.kind, str(row.params.get("text", "")).replace(case.reference, "REF"))
            for row in rows
        )


async def cases_by_id(bot: BotHarness) -> list[Case]:
    async with bot.session() as session:
        return list(await session.scalars(select(Case).order_by(Case.id)))


def card_of(messages: list[dict], button: str) -> dict:
    return next(m for m in reversed(messages) if button in str(m))


async def close_without_the_desk(bot: BotHarness, case_id: int, operator: int) -> None:
    """Close a case the way any path other than the desk's buttons would (a command, a
    script): the domain's move, then whoever the domain says is told."""
    catalogs = bot.application.bot_data["runtime"].catalogs
    async with bot.session() as session:
        actor = await account_by_telegram_id(session, operator)
        case = await case_by_id(session, case_id)
        assert actor is not None and case is not None
        moved = await move_case(session, case, Action.CLOSE, actor, outcome=CaseOutcome.HELPED)
        await announce(session, moved, bot.settings, catalogs)
        await session.commit()
    await deliver_outbox(bot)


# ---- two paths, the same people told -------------------------------------------------------


async def test_closing_on_the_desk_or_by_another_path_tells_the_reporter_the_same(
    bot: BotHarness,
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER_FR)
    await quick_report(bot, VOLUNTEER_FR)
    first, second = await cases_by_id(bot)
    cards = {}
    for case in (first, second):
        [alert] = [a for a in alerts_in(bot, ANNA) if case.reference in a["text"]]
        cards[case.id] = card_of(await bot.presses(ANNA, alert, "✋ Lo prendo io"), "Chiudi")
    await deliver_outbox(bot)

    before = await last_outbox_id(bot)
    out = await bot.presses(ANNA, cards[first.id], "Chiudi")
    await bot.presses(ANNA, out[-1], "Persona incontrata e aiutata")
    await deliver_outbox(bot)
    by_button = await told_about(bot, first, before)

    before = await last_outbox_id(bot)
    await close_without_the_desk(bot, second.id, ANNA)
    by_other_path = await told_about(bot, second, before)

    assert by_button == by_other_path
    [(chat, kind, text)] = by_button
    assert (chat, kind) == (VOLUNTEER_FR, "case_feedback")
    assert "REF è chiusa: Persona incontrata e aiutata" in text


async def test_taking_from_the_alert_or_from_the_card_tells_the_others_the_same(
    bot: BotHarness,
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER)
    await quick_report(bot, VOLUNTEER)
    first, second = await cases_by_id(bot)
    [first_alert] = [a for a in alerts_in(bot, ANNA) if first.reference in a["text"]]
    [second_alert] = [a for a in alerts_in(bot, ANNA) if second.reference in a["text"]]

    before = await last_outbox_id(bot)
    await bot.presses(ANNA, first_alert, "✋ Lo prendo io")
    await deliver_outbox(bot)
    from_alert = await told_about(bot, first, before)

    before = await last_outbox_id(bot)
    out = await bot.presses(ANNA, second_alert, "Apri il caso")
    await bot.presses(ANNA, out[0], "✋ Lo prendo io")
    await deliver_outbox(bot)
    from_card = await told_about(bot, second, before)

    def others(told: Told) -> Told:  # the taker's own alert is answered where she pressed
        return [entry for entry in told if entry[0] != ANNA]

    assert others(from_alert) == others(from_card)
    assert [(chat, kind) for chat, kind, _text in others(from_card)] == [
        (VOLUNTEER, "case_feedback"),
        (BRUNO, "alert_taken"),
    ]
    [bruno_alert] = [a for a in alerts_in(bot, BRUNO) if second.reference in a["text"]]
    bruno_now = bot.fake.current_message(BRUNO, bruno_alert["message_id"])
    assert bruno_now is not None and "preso in carico da Anna" in bruno_now["text"]
    assert bot.fake.buttons(bruno_now) == []


async def test_an_operator_who_closes_their_own_report_is_not_told_about_it(
    bot: BotHarness,
) -> None:
    await team(bot)
    await quick_report(bot, ANNA)
    case = await only_case(bot)
    before = await last_outbox_id(bot)
    out = await bot.says(ANNA, f"/cases {case.reference}")
    out = await bot.presses(ANNA, out[0], "✋ Lo prendo io")
    out = await bot.presses(ANNA, card_of(out, "Chiudi"), "Chiudi")
    await bot.presses(ANNA, out[-1], "Persona incontrata e aiutata")
    await deliver_outbox(bot)
    told = await told_about(bot, case, before)
    # The alerts show who took it (hers too: she was on duty); no feedback about her own move.
    assert [(chat, kind) for chat, kind, _text in told] == [
        (ANNA, "alert_taken"),
        (BRUNO, "alert_taken"),
    ]


# ---- handing back -----------------------------------------------------------------------------


async def test_a_case_handed_back_after_a_reminder_is_alerted_again(bot: BotHarness) -> None:
    """The reminders of a case handed back count from 1 again: they need keys of their own,
    or the sweep fails on the outbox's unique key, for every case, at every tick."""
    await team(bot)
    await quick_report(bot, VOLUNTEER_FR)
    clock.advance(bot.settings.escalation_minutes * 60 + 1)
    assert await sweep(bot) == 1  # nobody took it: reminder 1
    out = await bot.presses(ANNA, alerts_in(bot, ANNA)[-1], "✋ Lo prendo io")
    await bot.presses(ANNA, card_of(out, "Rilascia"), "Rilascia")
    assert (await only_case(bot)).status is CaseStatus.NEW
    before = len(alerts_in(bot, BRUNO))

    assert await sweep(bot) == 1
    await deliver_outbox(bot)
    assert len(alerts_in(bot, BRUNO)) == before + 1, "the team hears the case is free again"
    [again] = alerts_in(bot, BRUNO)[before:]
    out = await bot.presses(BRUNO, again, "✋ Lo prendo io")
    assert "Hai preso in carico" in "\n".join(m.get("text") or "" for m in out)


# ---- the sweep's unit of work -------------------------------------------------------------------


async def test_a_failed_sweep_is_rolled_back_logged_without_the_case_and_run_again(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER_FR, place="Via Solferino 12, sotto il portico")
    case = await only_case(bot)
    clock.advance(bot.settings.escalation_minutes * 60 + 1)
    tick = SimpleNamespace(application=bot.application)
    real_enqueue = case_notify.enqueue

    def enqueue_then_fail(*args: object, **kwargs: object) -> None:
        real_enqueue(*args, **kwargs)  # type: ignore[arg-type]
        error = f"cannot queue {case.reference} at {case.place}"  # a message quoting data
        raise RuntimeError(error)

    monkeypatch.setattr(case_notify, "enqueue", enqueue_then_fail)
    with caplog.at_level(logging.INFO):
        await escalation_job(tick)  # the job's own failure does not escape its tick
    async with bot.session() as session:
        steps = await session.scalar(
            select(func.count()).where(
                CaseEvent.case_id == case.id, CaseEvent.action == "escalated"
            )
        )
    assert steps == 0, "the step, its history line and its alerts are rolled back together"
    assert (await only_case(bot)).escalation_step == 0
    assert "case-escalation" in caplog.text and "RuntimeError" in caplog.text
    assert "Solferino" not in caplog.text and case.reference not in caplog.text

    monkeypatch.undo()
    before = len(alerts_in(bot, BRUNO))
    await escalation_job(tick)  # the next tick
    await deliver_outbox(bot)
    assert len(alerts_in(bot, BRUNO)) == before + 1
    assert (await only_case(bot)).escalation_step == 1
