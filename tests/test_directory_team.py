"""Operators edit hours in their own language and notes one language at a time (#13)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fakebotapi import message_update
from models.directory import Service, ServiceEdit, ShelterStaff, service_by_key
from models.roles import Role
from tests.cases_helpers import set_language
from tests.conftest import BotHarness
from tests.directory_helpers import STATION, load_example, set_local_time, texts

PERSON, FRENCH = 101, 102
OPERATOR, OPERATEUR, ARAB_OPERATOR = 301, 302, 303


async def open_editor(bot: BotHarness, operator: int, service_key: str) -> list[dict[str, Any]]:
    """/editservice, the service's kind, the service: its editor card (in any language)."""
    async with bot.session() as session:
        service = await service_by_key(session, service_key)
        assert service is not None
        service_id = service.id
    kinds = await bot.says(operator, "/editservice")
    category = next(
        row[0]["callback_data"]
        for row in kinds[-1]["reply_markup"]["inline_keyboard"]
        if row[0]["callback_data"].endswith(":" + service.category)
    )
    label = bot.fake.buttons(kinds[-1])
    kind_label = next(
        text[0]
        for text, row in zip(label, kinds[-1]["reply_markup"]["inline_keyboard"], strict=True)
        if row[0]["callback_data"] == category
    )
    services = await bot.presses(operator, kinds[-1], kind_label)
    rows = services[-1]["reply_markup"]["inline_keyboard"]
    name = next(
        row[0]["text"] for row in rows if row[0]["callback_data"].endswith(f":{service_id}")
    )
    return await bot.presses(operator, services[-1], name)


async def edit(bot: BotHarness, operator: int, service_key: str, button: int, text: str) -> str:
    """Open the editor, press its ``button``-th field (0 hours, 2 notes), type ``text``."""
    card = await open_editor(bot, operator, service_key)
    field = bot.fake.buttons(card[-1])[0][button]
    await bot.presses(operator, card[-1], field)
    return texts(await bot.says(operator, text))


async def test_hours_are_read_in_the_operators_language_and_shown_in_the_readers(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    for operator, language in ((OPERATOR, "it"), (OPERATEUR, "fr"), (ARAB_OPERATOR, "ar")):
        await bot.grant(operator, Role.OPERATOR)
        await set_language(bot, operator, language)

    saved = await edit(bot, OPERATOR, "guardaroba", 0, "lun-ven 09:00-13:00")
    assert "Orari: lun-ven 09:00-13:00" in saved
    saved = await edit(bot, OPERATOR, "guardaroba", 0, "lu-gi 09:00-12:00; Venerdì 15:00-18:00")
    assert "Orari: lun-gio 09:00-12:00; ven 15:00-18:00" in saved
    card = texts(await open_editor(bot, OPERATEUR, "guardaroba"))
    assert "lun.-jeu. 09:00-12:00; ven. 15:00-18:00" in card

    saved = await edit(bot, OPERATEUR, "guardaroba", 0, "lu-ve 10:00-12:00; sam. 10:00-11:00")
    assert "lun.-ven. 10:00-12:00; sam. 10:00-11:00" in saved
    saved = await edit(bot, ARAB_OPERATOR, "guardaroba", 0, "الاثنين-الخميس 09:00-13:00")
    assert "الاثنين-الخميس 09:00-13:00" in saved
    saved = await edit(bot, OPERATOR, "guardaroba", 0, "chiuso")
    assert "Orari: chiuso tutta la settimana" in saved

    async with bot.session() as session:
        edits = list(await session.scalars(select(ServiceEdit).order_by(ServiceEdit.id)))
    assert [e.after for e in edits] == [
        "mon-fri 09:00-13:00",
        "mon-thu 09:00-12:00; fri 15:00-18:00",
        "mon-fri 10:00-12:00; sat 10:00-11:00",
        "mon-thu 09:00-13:00",
        "closed",
    ], "the edit log keeps one language-neutral form"


async def test_a_note_is_edited_per_language_and_the_others_are_marked_older(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.grant(OPERATEUR, Role.OPERATOR)
    await set_language(bot, OPERATEUR, "fr")
    await bot.known(FRENCH, language_code="fr")

    await edit(bot, OPERATOR, "guardaroba", 2, "Questa settimana solo scarpe")
    set_local_time(2026, 12, 2, 11, 0)
    saved = await edit(bot, OPERATEUR, "guardaroba", 2, "Cette semaine : manteaux aussi")
    assert "📝 fr: Cette semaine : manteaux aussi" in saved
    assert "📝 it: (note plus ancienne) Questa settimana solo scarpe" in saved

    menu = await bot.says(PERSON, "/services")
    await bot.presses(PERSON, menu[-1], "👕 Vestiti")
    italian = texts(await bot.says(PERSON, location=STATION))
    assert "(nota meno recente) Questa settimana solo scarpe" in italian
    assert "manteaux" not in italian

    menu = await bot.says(FRENCH, "/services")
    clothes = next(
        button["text"]
        for row in menu[-1]["reply_markup"]["inline_keyboard"]
        for button in row
        if button["callback_data"] == "dir:cat:clothing"
    )
    await bot.presses(FRENCH, menu[-1], clothes)
    french = texts(await bot.says(FRENCH, location=STATION))
    assert "Vestiaire" in french
    assert "Cette semaine : manteaux aussi" in french and "plus ancienne" not in french


# ---- /staffof ------------------------------------------------------------------------------

STAFF = 201
CORSICA = "Asilo notturno di via Corsica"


async def forwards(bot: BotHarness, operator: int, origin: dict[str, Any]) -> list[dict[str, Any]]:
    """``operator`` forwards a message whose origin Telegram gives as ``origin``."""
    before = len(bot.fake.sent_messages(operator))
    update = message_update(bot.fake.user(operator), "Ciao, sono Lucia del dormitorio")
    update["message"]["forward_origin"] = {"date": 1_796_000_000, **origin}
    bot.fake.push_update(update)
    await bot.deliver()
    return bot.fake.sent_messages(operator)[before:]


async def assigned(bot: BotHarness) -> list[str]:
    async with bot.session() as session:
        rows = await session.execute(
            select(Service.key)
            .join(ShelterStaff, ShelterStaff.service_id == Service.id)
            .order_by(Service.key)
        )
        return [key for (key,) in rows]


async def test_staffof_finds_the_person_by_a_forwarded_message_and_offers_shelters_as_buttons(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.grant(STAFF, Role.SHELTER_STAFF, first_name="Lucia", username="Lucia_C")

    asked = await bot.says(OPERATOR, "/staffof")
    assert "Inoltrami un messaggio scritto da questa persona" in texts(asked)
    out = await forwards(bot, OPERATOR, {"type": "user", "sender_user": bot.fake.user(STAFF)})
    assert "Quali dormitori può aggiornare?" in texts(out)
    shelters = [row[0] for row in bot.fake.buttons(out[-1])]
    assert CORSICA in shelters and not any(s.startswith("✅") for s in shelters)

    await bot.presses(OPERATOR, out[-1], CORSICA)
    assert await assigned(bot) == ["asilo-corsica"]
    now = bot.fake.current_message(OPERATOR, out[-1]["message_id"])
    assert now is not None and f"✅ {CORSICA}" in [row[0] for row in bot.fake.buttons(now)]
    await bot.presses(OPERATOR, now, f"✅ {CORSICA}")
    assert await assigned(bot) == []

    await bot.says(OPERATOR, "/staffof")
    hidden = await forwards(bot, OPERATOR, {"type": "hidden_user", "sender_user_name": "Lucia"})
    assert "Le sue impostazioni di privacy nascondono chi ha scritto" in texts(hidden)


async def test_staffof_finds_by_username_only_people_who_wrote_in_french(bot: BotHarness) -> None:
    await load_example(bot)
    await bot.grant(OPERATEUR, Role.OPERATOR)
    await set_language(bot, OPERATEUR, "fr")
    await bot.grant(STAFF, Role.SHELTER_STAFF, first_name="Lucia", username="Lucia_C")

    unknown = await bot.says(OPERATEUR, "/staffof @lucia_c")
    assert "Cette personne n'est pas enregistrée comme personnel" in texts(unknown)
    await bot.says(STAFF, "/start")  # now she has written to the bot: her @username is known
    out = await bot.says(OPERATEUR, "/staffof @Lucia_C")
    assert "Quels centres d'hébergement peut-elle mettre à jour ?" in texts(out)
    await bot.presses(OPERATEUR, out[-1], bot.fake.buttons(out[-1])[0][0])
    assert len(await assigned(bot)) == 1

    await bot.says(OPERATEUR, "/staffof")
    out = await bot.says(OPERATEUR, "@lucia_c")
    assert "Quels centres d'hébergement peut-elle mettre à jour ?" in texts(out)
