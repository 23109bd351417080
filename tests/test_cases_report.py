"""A volunteer reports a sighting: the conversation, its corrections, cancel, and a restart."""

from __future__ import annotations

from sqlalchemy import select

from models.cases import CaseKind, CaseStatus, Category, Urgency
from models.conversation import CASE_FLOWS, OpenFlow
from models.outbox import OutboxMessage
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    CARLA,
    PUBLIC,
    VOLUNTEER,
    VOLUNTEER_FR,
    alerts_in,
    deliver_outbox,
    only_case,
    restarted,
    set_language,
    team,
    texts,
)
from tests.conftest import BotHarness

CASE_DRAFT = select(OpenFlow).where(OpenFlow.flow.in_(CASE_FLOWS))


async def test_a_volunteer_reports_in_italian_corrects_the_category_and_operators_are_alerted(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER, "it")

    out = await bot.says(VOLUNTEER, "/report")
    assert "Dove si trova la persona?" in texts(out)
    assert bot.fake.reply_keyboard(VOLUNTEER) == [["📍 Condividi la mia posizione"]]

    out = await bot.says(VOLUNTEER, location=(45.5325, 10.2131))
    assert "Luogo registrato." in texts(out)
    assert "Che tipo di situazione è?" in texts(out)

    out = await bot.presses(VOLUNTEER, out[-1], "Dorme in strada")
    out = await bot.presses(VOLUNTEER, out[-1], "Urgente, oggi")
    assert "Cosa hai visto?" in texts(out)
    out = await bot.says(VOLUNTEER, "Uomo sdraiato sulla panchina, tossisce molto")
    assert "Descrivi la persona" in texts(out)
    out = await bot.says(VOLUNTEER, "Circa 50 anni, giaccone verde")
    assert "Controlla la tua segnalazione:" in texts(out)
    assert "Tipo: Dorme in strada" in texts(out)

    # A correction: it is a health concern, not just sleeping rough.
    out = await bot.presses(VOLUNTEER, out[-1], "Cambia tipo")
    out = await bot.presses(VOLUNTEER, out[-1], "Problema di salute")
    assert "Tipo: Problema di salute" in texts(out), "a correction goes back to the summary"
    assert "Persona: Circa 50 anni, giaccone verde" in texts(out), "nothing else was lost"

    out = await bot.presses(VOLUNTEER, out[-1], "✅ Invia la segnalazione")
    case = await only_case(bot)
    assert f"registrata come {case.reference}" in texts(out)
    assert case.reference.startswith("BS-") and case.reference.endswith("-01")
    assert (case.kind, case.status, case.category, case.urgency) == (
        CaseKind.REPORT,
        CaseStatus.NEW,
        Category.HEALTH,
        Urgency.TODAY,
    )
    assert (case.latitude, case.longitude) == (45.5325, 10.2131)

    await deliver_outbox(bot)
    for operator in (ANNA, BRUNO):
        [alert] = alerts_in(bot, operator)
        assert f"📋 Nuova segnalazione {case.reference}" in alert["text"]
        assert "Problema di salute" in alert["text"]
        assert bot.fake.buttons(alert)[0] == ["✋ Lo prendo io", "Non posso"]
    assert alerts_in(bot, CARLA) == [], "coordinators only hear when nobody is on duty"
    async with bot.session() as session:
        assert await session.scalar(CASE_DRAFT) is None


async def test_a_french_volunteer_describes_the_place_adds_a_photo_and_skips_the_description(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER_FR, "fr")

    out = await bot.says(VOLUNTEER_FR, "/report")
    assert "Où se trouve la personne ?" in texts(out)
    out = await bot.says(VOLUNTEER_FR, "Binario 1, vicino al bar")
    out = await bot.presses(VOLUNTEER_FR, out[-1], "Famille avec enfants")
    out = await bot.presses(VOLUNTEER_FR, out[-1], "Urgence vitale (appelez d'abord le 112)")
    assert "appelez le 112 MAINTENANT" in texts(out), "the emergency number comes first"
    out = await bot.says(VOLUNTEER_FR, photo=True)
    assert "Photo enregistrée" in texts(out)
    out = await bot.says(VOLUNTEER_FR, "Une mère et deux enfants, il fait très froid")
    out = await bot.presses(VOLUNTEER_FR, out[-1], "Passer")
    assert "Personne : aucune description" in texts(out)
    assert "Photo : oui" in texts(out)
    out = await bot.presses(VOLUNTEER_FR, out[-1], "✅ Envoyer le signalement")

    case = await only_case(bot)
    assert f"référence {case.reference}" in texts(out)
    assert case.place == "Binario 1, vicino al bar" and case.latitude is None
    assert case.photo_file_id is not None and case.photo_file_id.startswith("fake-photo")
    assert case.urgency is Urgency.EMERGENCY and case.person is None

    await deliver_outbox(bot)
    [alert] = alerts_in(bot, ANNA)
    assert "Binario 1, vicino al bar" in alert["text"]
    assert "📷" in alert["text"]


async def test_cancel_at_any_step_sends_nothing(bot: BotHarness) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER, "it")
    await bot.says(VOLUNTEER, "/report")
    out = await bot.says(VOLUNTEER, location=(45.53, 10.21))
    out = await bot.says(VOLUNTEER, "/cancel")
    assert "Annullato. Non è stato inviato nulla." in texts(out)

    out = await bot.says(VOLUNTEER, "/report")
    out = await bot.says(VOLUNTEER, "Piazzale stazione")
    out = await bot.presses(VOLUNTEER, out[-1], "Altro")
    out = await bot.presses(VOLUNTEER, out[-1], "Non urgente")
    out = await bot.says(VOLUNTEER, "Persona confusa")
    out = await bot.presses(VOLUNTEER, out[-1], "Salta")
    out = await bot.presses(VOLUNTEER, out[-1], "✖ Annulla")
    assert "Segnalazione annullata." in texts(out)

    async with bot.session() as session:
        queued = select(OutboxMessage).where(OutboxMessage.kind != "reply")
        assert list(await session.scalars(queued)) == []  # no alert, no feedback
        assert await session.scalar(CASE_DRAFT) is None
    assert alerts_in(bot, ANNA) == []


async def test_a_restart_in_the_middle_of_a_report_loses_nothing(bot: BotHarness) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER, "it")
    await bot.says(VOLUNTEER, "/report")
    out = await bot.says(VOLUNTEER, location=(45.5325, 10.2131))
    out = await bot.presses(VOLUNTEER, out[-1], "Possibile minore")

    # The bot stops; a new process (new application, same database) takes over.
    async with restarted(bot) as new_process:
        out = await new_process.says(VOLUNTEER, "Ragazzo giovanissimo da solo sul binario 3")
        assert "Urgente, oggi" not in texts(out)
        assert "Per favore usa i pulsanti" in texts(out), "the step is still 'how urgent'"
        out = await new_process.presses(VOLUNTEER, out[-1], "Urgente, oggi")
        out = await new_process.says(VOLUNTEER, "Ragazzo giovanissimo da solo sul binario 3")
        out = await new_process.says(VOLUNTEER, "15 anni circa, zaino rosso")
        out = await new_process.presses(VOLUNTEER, out[-1], "✅ Invia la segnalazione")
        case = await only_case(new_process)
        assert case.reference in texts(out)
        assert case.category is Category.MINOR and case.latitude == 45.5325


async def test_bad_input_gets_a_clear_answer_and_loses_nothing(bot: BotHarness) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER, "it")
    await bot.says(VOLUNTEER, "/report")
    out = await bot.says(VOLUNTEER, sticker=True)
    assert "Mi serve il luogo" in texts(out)
    out = await bot.says(VOLUNTEER, location=(123.0, 10.0))
    assert "non sembra corretta" in texts(out)
    out = await bot.says(VOLUNTEER, "x" * 400)
    assert "resta sotto i 300 caratteri" in texts(out)
    out = await bot.says(VOLUNTEER, "Sottopassaggio")
    out = await bot.says(VOLUNTEER, "Ho scritto invece di premere")
    assert "Per favore usa i pulsanti qui sopra." in texts(out)
    out = await bot.presses(VOLUNTEER, out[-1], "Altro")
    out = await bot.presses(VOLUNTEER, out[-1], "Non urgente")
    out = await bot.says(VOLUNTEER, document=True)
    assert "scrivi a parole cosa hai visto" in texts(out)
    out = await bot.says(VOLUNTEER, "Persona che chiede aiuto")
    assert "Descrivi la persona" in texts(out)
    async with bot.session() as session:
        draft = await session.scalar(CASE_DRAFT)
        assert draft is not None and draft.step == "person"
        assert draft.data["place"] == "Sottopassaggio"


async def test_the_public_cannot_report_unless_enabled_nor_use_operator_commands(
    bot: BotHarness,
) -> None:
    await team(bot)
    bot.fake.add_user(PUBLIC, first_name="Mario")
    for command in ("/report", "/cases", "/duty", "/urgent"):
        out = await bot.says(PUBLIC, command)
        assert "riservata al personale" in texts(out), command

    bot.settings.public_reports_enabled = True
    out = await bot.says(PUBLIC, "/report")
    assert "Dove si trova la persona?" in texts(out)
