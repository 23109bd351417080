"""The team's desk (#13): /cases by urgency, a case by reference, /myreports, the card, and a
report in progress that does not swallow another flow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.base import clock
from models.cases import Case
from models.conversation import CASE_FLOWS, OpenFlow
from tests.cases_helpers import (
    ANNA,
    POLICE,
    VOLUNTEER,
    VOLUNTEER_FR,
    alerts_in,
    deliver_outbox,
    set_language,
    team,
    texts,
)
from tests.conftest import BotHarness

EMERGENCY, TODAY, NOT_URGENT = 0, 1, 2  # rows of the urgency buttons


async def report(
    bot: BotHarness, reporter: int, *, urgency: int, place: str = "Via Solferino", pin: bool = False
) -> list[dict[str, Any]]:
    """A whole report: place (typed or a pin), first category, the urgency row given, sent."""
    await bot.says(reporter, "/report")
    out = await (
        bot.says(reporter, location=(45.5325, 10.2131)) if pin else bot.says(reporter, place)
    )
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[urgency][0])
    out = await bot.says(reporter, "Uomo al freddo")
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])  # skip
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])  # send
    await deliver_outbox(bot)
    return out


async def urgent_request(bot: BotHarness) -> None:
    await bot.says(POLICE, "/urgent")
    await bot.says(POLICE, "Binario 2")
    out = await bot.says(POLICE, "Uomo agitato")
    await bot.presses(POLICE, out[-1], "🚨 Invia subito")
    await deliver_outbox(bot)


async def references(bot: BotHarness) -> list[str]:
    async with bot.session() as session:
        return list(await session.scalars(select(Case.reference).order_by(Case.id)))


# ---- /cases, /cases REF, /myreports ----------------------------------------------------------


async def test_cases_lists_the_most_pressing_first_then_the_oldest_with_the_urgency_marked(
    bot: BotHarness,
) -> None:
    await team(bot)
    await report(bot, VOLUNTEER, urgency=NOT_URGENT)  # the oldest, but it can wait
    clock.advance(60)
    await report(bot, VOLUNTEER, urgency=TODAY)
    clock.advance(60)
    await report(bot, VOLUNTEER, urgency=TODAY)
    clock.advance(60)
    await urgent_request(bot)  # the newest, but police are waiting on the spot
    later, today_old, today_new, urgent = await references(bot)

    out = await bot.says(ANNA, "/cases")
    lines = [row[0] for row in bot.fake.buttons(out[-1])[:-1]]
    assert [line.split(" ")[2] for line in lines] == [urgent, today_old, today_new, later]
    assert lines[0].startswith("🔴 🚨") and "· emergenza ·" in lines[0]
    assert lines[1].startswith("🟠 📋") and "· oggi ·" in lines[1]
    assert lines[3].startswith("🟢 📋") and "· non urgente ·" in lines[3]

    await set_language(bot, ANNA, "fr")
    out = await bot.says(ANNA, "/cases")
    lines = [row[0] for row in bot.fake.buttons(out[-1])[:-1]]
    assert "· aujourd'hui ·" in lines[1] and "· pas urgent ·" in lines[3]


async def test_cases_with_a_reference_opens_that_case_even_closed(bot: BotHarness) -> None:
    await team(bot)
    await report(bot, VOLUNTEER, urgency=TODAY)
    [reference] = await references(bot)
    [alert] = alerts_in(bot, ANNA)
    out = await bot.presses(ANNA, alert, "✋ Lo prendo io")
    card = next(m for m in out if "Chiudi" in str(m))
    out = await bot.presses(ANNA, card, "Chiudi")
    await bot.presses(ANNA, out[-1], "Persona incontrata e aiutata")

    out = await bot.says(ANNA, f"/cases {reference.lower()}")
    assert f"Segnalazione {reference}" in texts(out)
    assert "Stato: chiuso" in texts(out)

    out = await bot.says(ANNA, "/cases BS-0101-99")
    assert "Nessun caso ha il riferimento BS-0101-99" in texts(out)
    await set_language(bot, ANNA, "fr")
    out = await bot.says(ANNA, "/cases BS-0101-99")
    assert "Aucun dossier n'a la référence BS-0101-99" in texts(out)


async def test_volunteers_and_police_see_their_own_reports_and_where_each_stands(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER_FR, "fr")
    await report(bot, VOLUNTEER_FR, urgency=TODAY)
    await report(bot, VOLUNTEER, urgency=TODAY)  # someone else's: not listed to Fanny
    await urgent_request(bot)
    mine, theirs, police = await references(bot)
    [alert] = [a for a in alerts_in(bot, ANNA) if mine in a["text"]]
    await bot.presses(ANNA, alert, "✋ Lo prendo io")

    out = await bot.says(VOLUNTEER_FR, "/myreports")
    assert "Vos signalements et demandes" in texts(out)
    assert mine in texts(out) and "pris en charge" in texts(out)
    assert theirs not in texts(out) and police not in texts(out)

    out = await bot.says(POLICE, "/myreports")
    assert police in texts(out) and "in attesa che qualcuno lo prenda" in texts(out)
    assert mine not in texts(out)

    await bot.known(555, language_code="it")
    out = await bot.says(555, "/myreports")
    assert "riservata al personale" in texts(out)


# ---- the case card ---------------------------------------------------------------------------


async def test_the_opened_card_shows_the_pin_as_a_location_and_stays_a_card_after_take(
    bot: BotHarness,
) -> None:
    await team(bot)
    await report(bot, VOLUNTEER, urgency=TODAY, pin=True)
    [alert] = alerts_in(bot, ANNA)
    assert "apri il caso per vederla" in alert["text"], "the alert points to the card"

    out = await bot.presses(ANNA, alert, "Apri il caso")
    card = out[0]
    assert "Dove: la posizione inviata qui sotto" in card["text"]
    assert "apri il caso per vederla" not in card["text"]
    assert out[1]["location"] == {"latitude": 45.5325, "longitude": 10.2131}

    out = await bot.presses(ANNA, card, "✋ Lo prendo io")
    pressed = bot.fake.current_message(ANNA, card["message_id"])
    assert pressed is not None and pressed["text"] == card["text"], "the card stays a card"
    assert "Hai preso in carico" not in pressed["text"]
    assert bot.fake.buttons(pressed) == []
    fresh = next(m for m in out if "Chiudi" in str(m))
    assert "Stato: preso in carico" in fresh["text"]
    assert any("location" in m for m in out)


async def test_the_card_speaks_french_about_the_pin(bot: BotHarness) -> None:
    await team(bot)
    await set_language(bot, ANNA, "fr")
    await report(bot, VOLUNTEER, urgency=TODAY, pin=True)
    out = await bot.says(ANNA, "/cases")
    out = await bot.presses(ANNA, out[-1], bot.fake.buttons(out[-1])[0][0])
    assert "la position envoyée ci-dessous" in out[0]["text"]


# ---- a report in progress does not swallow another flow -------------------------------------


async def draft_of(bot: BotHarness) -> OpenFlow | None:
    async with bot.session() as session:
        return await session.scalar(select(OpenFlow).where(OpenFlow.flow.in_(CASE_FLOWS)))


async def test_a_command_during_a_report_asks_continue_or_discard(bot: BotHarness) -> None:
    await team(bot)
    await bot.says(VOLUNTEER, "/report")
    await bot.says(VOLUNTEER, "Via Solferino")

    out = await bot.says(VOLUNTEER, "/help")
    assert texts(out) == "Hai una segnalazione in corso: vuoi continuarla o scartarla?"
    assert bot.fake.buttons(out[-1]) == [["Continua", "Scarta"]]
    draft = await draft_of(bot)
    assert draft is not None and draft.step == "category", "nothing was taken as an answer"

    out = await bot.presses(VOLUNTEER, out[-1], "Continua")
    assert "Che tipo di situazione è?" in texts(out)
    out = await bot.says(VOLUNTEER, "/services")
    out = await bot.presses(VOLUNTEER, out[-1], "Scarta")
    assert "Scartata: non è stato inviato niente" in texts(out)
    assert await draft_of(bot) is None
    out = await bot.says(VOLUNTEER, "/cancel")
    assert "Non c'è niente da annullare." in texts(out)


async def test_another_flows_button_during_an_urgent_request_is_not_taken_in_french(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, POLICE, "fr")
    menu = await bot.says(POLICE, "/services")
    await bot.says(POLICE, "/urgent")
    await bot.says(POLICE, "Quai 2")

    out = await bot.presses(POLICE, menu[-1], "🛏 Un lit ce soir")
    assert texts(out) == "Vous avez une demande urgente en cours : la continuer ou l'abandonner ?"
    out = await bot.says(POLICE, "/tonight")
    assert texts(out) == "Vous avez une demande urgente en cours : la continuer ou l'abandonner ?"
    out = await bot.presses(POLICE, out[-1], "Continuer")
    assert "2/3" in texts(out)
    draft = await draft_of(bot)
    assert draft is not None and draft.data.get("place") == "Quai 2"


async def test_an_operator_writing_a_report_can_still_take_an_alert(bot: BotHarness) -> None:
    await team(bot)
    await bot.says(ANNA, "/report")
    await urgent_request(bot)
    [alert] = alerts_in(bot, ANNA)
    out = await bot.presses(ANNA, alert, "✋ Lo prendo io")
    assert "Hai preso in carico" in texts(out)
    draft = await draft_of(bot)
    assert draft is not None and draft.step == "location"
