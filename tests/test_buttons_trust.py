"""Buttons under real Telegram behaviour: a press is answered once, retried presses still work,
an edit that changes nothing is fine, and a case card survives a photo Telegram forgot.

Telegram refuses a second ``answerCallbackQuery`` for the same press and answers 400 "message
is not modified" to an edit that leaves a message as it was; the fake does the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from models.base import clock
from models.cases import Case, CaseStatus
from models.directory import bed_history, service_by_key, set_beds
from models.exchange import Direction, Exchange, InboxStatus
from models.outbox import OutboxStatus, enqueue
from models.roles import Role
from tests.cases_helpers import (
    ANNA,
    POLICE,
    alerts_in,
    deliver_outbox,
    only_case,
    team,
    texts,
)
from tests.conftest import BotHarness
from tests.delivery_helpers import alert, courier, outbox_row, send_due
from tests.directory_helpers import load_example, set_local_time

__all__ = ["courier"]
PERSON, STAFF, OPERATOR = 601, 602, 603


async def press_rows(bot: BotHarness) -> list[Exchange]:
    """The button presses the bot received, oldest first."""
    async with bot.session() as session:
        rows = await session.scalars(
            select(Exchange)
            .where(Exchange.direction == Direction.IN, Exchange.kind == "callback")
            .order_by(Exchange.update_id)
        )
        return list(rows)


def apologies(bot: BotHarness, chat_id: int) -> list[str]:
    return [t for t in bot.fake.texts(chat_id) if "Codice dell'errore" in t]


async def police_ready_to_send(bot: BotHarness) -> dict[str, Any]:
    """An officer has described an urgent request; the last message has "🚨 Send now"."""
    await bot.says(POLICE, "/urgent")
    await bot.says(POLICE, location=(45.5327, 10.2125))
    out = await bot.says(POLICE, "Uomo molto agitato al binario 2, serve mediazione")
    return out[-1]


@contextmanager
def database_hiccup_while_opening_the_case(bot: BotHarness) -> Iterator[None]:
    """The database drops the first statement that writes the case (in mid-handling)."""
    state = {"left": 1}

    def drop_statement(_conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
        if state["left"] and statement.lstrip().upper().startswith("INSERT INTO HELP_CASE"):
            state["left"] = 0
            raise OperationalError("INSERT", {}, ConnectionResetError("database restarting"))

    engine = bot.engine.sync_engine
    event.listen(engine, "before_cursor_execute", drop_statement)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", drop_statement)


# ---- a press that failed once succeeds when retried ----------------------------------------


async def test_send_now_still_alerts_when_removing_its_button_failed_once(
    bot: BotHarness,
) -> None:
    await team(bot)
    ready = await police_ready_to_send(bot)
    bot.fake.fail_next("editMessageReplyMarkup", status=502, description="Bad Gateway")

    await bot.presses(POLICE, ready, "🚨 Invia subito")
    clock.advance(5)  # a Telegram outage is retried a few seconds later
    await bot.deliver()
    await deliver_outbox(bot)

    case = await only_case(bot)
    assert f"Richiesta {case.reference} inviata" in (bot.fake.last_text(POLICE) or "")
    assert len(alerts_in(bot, ANNA)) == 1
    assert apologies(bot, POLICE) == []
    [press] = await press_rows(bot)
    assert press.status is InboxStatus.DONE and press.attempts == 0


async def test_send_now_pressed_during_a_database_hiccup_is_handled_when_it_is_back(
    bot: BotHarness,
) -> None:
    await team(bot)
    ready = await police_ready_to_send(bot)

    with database_hiccup_while_opening_the_case(bot):
        await bot.presses(POLICE, ready, "🚨 Invia subito")
        async with bot.session() as session:
            assert list(await session.scalars(select(Case))) == []  # nothing yet
        clock.advance(5)
        await bot.deliver()
    await deliver_outbox(bot)

    case = await only_case(bot)
    assert f"Richiesta {case.reference} inviata" in (bot.fake.last_text(POLICE) or "")
    assert len(alerts_in(bot, ANNA)) == 1
    assert apologies(bot, POLICE) == []
    [press] = await press_rows(bot)
    assert press.status is InboxStatus.DONE and press.attempts == 0


# ---- "message is not modified" is success ----------------------------------------------------


async def test_a_double_tap_on_a_language_sets_it_without_an_error(bot: BotHarness) -> None:
    await bot.known(PERSON)
    menu = (await bot.says(PERSON, "/language"))[-1]
    bot.fake.user_presses(PERSON, menu, "Français")  # both taps reach Telegram before
    bot.fake.user_presses(PERSON, menu, "Français")  # the bot edits the menu
    await bot.deliver()

    now = bot.fake.current_message(PERSON, menu["message_id"])
    assert now is not None and "Langue choisie" in now["text"] and "Français" in now["text"]
    assert [p.status for p in await press_rows(bot)] == [InboxStatus.DONE] * 2


async def test_a_double_tap_on_go_on_duty_puts_the_operator_on_duty_without_an_error(
    bot: BotHarness,
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR, first_name="Olga", language_code="it")
    switch = (await bot.says(OPERATOR, "/duty"))[-1]
    bot.fake.user_presses(OPERATOR, switch, "Entra in turno")
    bot.fake.user_presses(OPERATOR, switch, "Entra in turno")
    await bot.deliver()

    assert "🟢 Sei in turno" in (bot.fake.last_text(OPERATOR) or "")
    assert [p.status for p in await press_rows(bot)] == [InboxStatus.DONE] * 2
    assert apologies(bot, OPERATOR) == []


async def test_still_right_pressed_twice_confirms_twice_without_an_error(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 17, 0)
    await _staff_of(bot, STAFF, "asilo-corsica")
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica
        await set_beds(session, corsica, free=5, by=None)
        await session.commit()
    set_local_time(2026, 12, 2, 18, 0)
    card = (await bot.says(STAFF, "/beds"))[-1]

    await bot.presses(STAFF, card, "✅ È ancora giusto")
    await bot.presses(STAFF, card, "✅ È ancora giusto")

    now = bot.fake.current_message(STAFF, card["message_id"])
    assert now is not None and "5 liberi su 60 (aggiornato proprio ora)" in now["text"]
    assert [p.status for p in await press_rows(bot)] == [InboxStatus.DONE] * 2
    assert apologies(bot, STAFF) == []
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica
        confirmations = [h for h in await bed_history(session, corsica) if h.by_id is not None]
    assert [(h.previous_free, h.free) for h in confirmations] == [(5, 5), (5, 5)]


# ---- beds: no invented counts, no silently capped ones ---------------------------------------


async def test_a_shelter_without_a_count_is_asked_for_one_instead_of_shown_full(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 17, 0)
    await _staff_of(bot, STAFF, "asilo-corsica")
    card = (await bot.says(STAFF, "/beds"))[-1]

    for button in ("✅ È ancora giusto", "➖ 1"):
        asked = await bot.presses(STAFF, card, button)
        assert "Non c'è ancora un conteggio per stanotte" in texts(asked)
        assert "Asilo notturno di via Corsica" in texts(asked)

    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica and (corsica.beds is None or corsica.beds.free is None)
    await bot.known(PERSON)
    tonight = texts(await bot.says(PERSON, "/tonight"))
    assert "0 liberi su 60" not in tonight
    saved = await bot.says(STAFF, "7")  # the question is answered by typing the count
    assert "Salvato." in texts(saved) and "7 liberi su 60" in texts(saved)


async def test_a_typed_count_above_the_total_is_refused_with_the_total(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 17, 0)
    await _staff_of(bot, STAFF, "asilo-corsica")
    card = (await bot.says(STAFF, "/beds"))[-1]
    await bot.presses(STAFF, card, "✏️ Scrivi il numero")

    refused = texts(await bot.says(STAFF, "75"))

    assert "Salvato." not in refused
    assert "da 0 a 60" in refused
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica and (corsica.beds is None or corsica.beds.free is None)
    saved = await bot.says(STAFF, "60")  # still waiting for the number
    assert "Salvato." in texts(saved) and "60 liberi su 60" in texts(saved)


# ---- a case card whose photo Telegram no longer knows ----------------------------------------


async def test_a_case_card_whose_photo_is_gone_is_shown_without_it(bot: BotHarness) -> None:
    await team(bot)
    await bot.says(POLICE, "/urgent")
    await bot.says(POLICE, location=(45.5327, 10.2125))
    await bot.says(POLICE, "Uomo molto agitato al binario 2, serve mediazione")
    await bot.says(POLICE, photo=True)
    await deliver_outbox(bot)
    async with bot.session() as session:
        case = (await session.scalars(select(Case))).one()
        case.photo_file_id = "AgACAgQAAxkBAAIBZ2Vanished"  # Telegram forgot the file
        await session.commit()
    [alert] = alerts_in(bot, ANNA)

    out = await bot.presses(ANNA, alert, "✋ Lo prendo io")

    assert f"Richiesta urgente {case.reference}" in texts(out)  # the card
    assert "La foto di questo caso non è più disponibile." in texts(out)
    assert not any("photo" in m for m in out)
    assert (await only_case(bot)).status is CaseStatus.TAKEN
    assert apologies(bot, ANNA) == []
    assert all(p.status is InboxStatus.DONE for p in await press_rows(bot))


# ---- edits sent from the outbox -------------------------------------------------------------


async def test_an_alert_edit_whose_answer_timed_out_is_recorded_as_delivered(
    courier: BotHarness,
) -> None:
    await courier.grant(ANNA, Role.OPERATOR)
    alert_id = await alert(courier, ANNA, "🚨 Richiesta urgente BS-0112-01")
    await send_due(courier)
    message_id = (await outbox_row(courier, alert_id)).message_id
    async with courier.session() as session:
        edit = enqueue(
            session,
            chat_id=ANNA,
            kind="alert_taken",
            method="editMessageText",
            params={"message_id": message_id, "text": "BS-0112-01 è stato preso in carico"},
        )
        await session.flush()
        edit_id = edit.id
        await session.commit()
    courier.fake.delay("editMessageText", 0.6)  # Telegram edits; its answer comes too late

    await send_due(courier)
    courier.fake.clear_faults()
    clock.advance(10)
    await send_due(courier)  # the retry finds the message already edited

    row = await outbox_row(courier, edit_id)
    assert row.status == OutboxStatus.SENT, row.error
    shown = courier.fake.current_message(ANNA, message_id or 0)
    assert shown is not None and shown["text"] == "BS-0112-01 è stato preso in carico"


async def _staff_of(bot: BotHarness, telegram_id: int, key: str) -> None:
    await bot.grant(telegram_id, Role.SHELTER_STAFF)
    await bot.grant(OPERATOR, Role.OPERATOR)
    answer = await bot.says(OPERATOR, f"/staffof {telegram_id} {key}")
    assert "Fatto" in texts(answer)
