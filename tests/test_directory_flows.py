"""People in need, volunteers and police find services; shelters keep beds fresh; operators edit.

Every story runs on the example city (config/services.example.yaml) through the fake Telegram,
in Italian (the default) and in French or Arabic where the person's phone says so.
"""

from __future__ import annotations

from sqlalchemy import func, select

from fakebotapi import callback_update
from models.accounts import AuditEntry
from models.base import clock
from models.directory import (
    BedCountChange,
    ServiceEdit,
    ShelterStaff,
    bed_history,
    service_by_key,
    set_beds,
)
from models.outbox import OutboxMessage
from models.roles import Role
from tests.directory_helpers import STATION, load_example, set_local_time, texts, venues

PERSON, FRENCH, ARABIC = 101, 102, 103
STAFF, OTHER_STAFF, OPERATOR = 201, 202, 301


async def test_a_person_finds_the_nearest_meal_open_now_and_can_navigate_there(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 21, 0)  # a Wednesday evening
    menu = await bot.says(PERSON, "/services")
    assert "Di cosa hai bisogno?" in menu[-1]["text"]
    asked = await bot.presses(PERSON, menu[-1], "🍲 Pasti e cibo")
    assert "invia la tua posizione" in asked[0]["text"]
    assert bot.fake.reply_keyboard(PERSON) == [["📍 Invia la mia posizione"]]
    found = await bot.says(PERSON, location=STATION)
    listing = texts(found)
    assert "🍲 Pasti e cibo più vicini a te:" in listing
    assert "1. Camper della sera" in listing and "— 80 m" in listing
    assert "🟢 Aperto ora, fino alle 23:30" in listing
    assert "🔴 Chiuso, apre domani alle 11:45" in listing  # the canteen
    places = venues(found)
    assert places[0]["title"].startswith("Camper della sera")
    assert places[0]["address"].endswith("80 m")


def _metres(shown: str) -> float:
    """ "80 m" or, from one kilometre, "1,4 km" (#13)."""
    number, unit = shown.strip().rsplit(" ", 1)
    return float(number.replace(",", ".")) * (1000 if unit == "km" else 1)


async def test_results_are_ordered_by_distance(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 21, 0)
    menu = await bot.says(PERSON, "/services")
    # the winter plan's beds: "Dormitori" lists night shelters only (#13)
    await bot.presses(PERSON, menu[-1], "❄️ Posti letto emergenza freddo")
    found = await bot.says(PERSON, location=(45.5449, 10.2262))  # via Rose
    distances = [_metres(v["address"].rsplit("·", 1)[1]) for v in venues(found)]
    assert distances == sorted(distances) and distances[0] < 50
    assert venues(found)[0]["title"].startswith("Casa San Martino")


async def test_a_french_speaker_gets_the_answer_in_french(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 15, 0)
    bot.fake.add_user(FRENCH, first_name="Amadou", language_code="fr")
    menu = await bot.says(FRENCH, "/services")
    assert "De quoi avez-vous besoin ?" in menu[-1]["text"]
    await bot.presses(FRENCH, menu[-1], "🚿 Douches et hygiène")
    found = texts(await bot.says(FRENCH, location=STATION))
    assert "Douches et hygiène les plus proches de vous" in found
    assert "Douches et hygiène" in found  # the service's own name in French
    assert "🔴 Fermé, ouvre demain à 09:00" in found
    assert "par le Help Center ou un guichet" in found


async def test_a_location_first_then_the_category(bot):
    await load_example(bot)
    set_local_time(2026, 12, 3, 10, 0)
    bot.fake.add_user(ARABIC, first_name="Omar", language_code="ar")
    asked = await bot.says(ARABIC, location=STATION)
    assert "عمّ تبحث" in asked[-1]["text"]
    found = await bot.presses(ARABIC, asked[-1], "🧳 حفظ الأمتعة")
    assert "🟢 مفتوح الآن، حتى الساعة 13:00" in texts(found)
    assert venues(found)[0]["title"] == "حفظ الأمتعة"


async def test_far_outside_the_city_the_person_gets_the_help_center_contact(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    menu = await bot.says(PERSON, "/services")
    await bot.presses(PERSON, menu[-1], "🍲 Pasti e cibo")
    answer = await bot.says(PERSON, location=(41.9028, 12.4964))  # Rome
    assert not venues(answer)
    text = texts(answer)
    assert "entro 15 km" in text and "Help Center della stazione" in text
    assert "+39 030 000 0001" in text


async def test_typing_a_station_name_instead_of_sharing_a_location(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    menu = await bot.says(PERSON, "/services")
    await bot.presses(PERSON, menu[-1], "📄 Documenti e aiuto legale")
    unknown = await bot.says(PERSON, "Narnia")
    assert "Non conosco questo luogo" in texts(unknown)
    found = await bot.says(PERSON, "stazione")
    assert "più vicini a Stazione di Brescia" in texts(found)
    assert venues(found)[0]["title"].startswith("Sportello documenti")
    after = await bot.says(PERSON, "grazie")  # the question was answered: back to normal
    assert "Non conosco questo luogo" not in texts(after)


async def test_without_a_location_the_list_by_area(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    menu = await bot.says(PERSON, "/services")
    asked = await bot.presses(PERSON, menu[-1], "🛏 Dormitori")
    areas = asked[-1]
    assert ["Sud"] in bot.fake.buttons(areas)
    listing = texts(await bot.presses(PERSON, areas, "Sud"))
    assert "Dormitorio di via Marchetti" in listing and "Asilo notturno di via Corsica" in listing
    assert "Casa Betel" not in listing


async def test_a_bed_tonight_shows_free_beds_first_with_their_age(bot):
    await load_example(bot)
    await bot.known(PERSON)
    set_local_time(2026, 12, 2, 17, 0)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        betel = await service_by_key(session, "casa-betel")
        assert corsica and betel
        await set_beds(session, corsica, free=4, by=None)
        await set_beds(session, betel, free=0, by=None)
        await session.commit()
    bot.fake.clear()
    # two hours after the count, whatever the count itself took (set_local_time(19, 0) would
    # have it 1 second short of two hours when storing the counts was slower than answering)
    clock.advance(2 * 3600)
    text = texts(await bot.says(PERSON, "/tonight"))
    assert text.startswith("🛏 Letti per stanotte")
    assert "🛏 4 liberi su 60 (aggiornato 2 ore fa)" in text
    assert (
        text.index("Asilo notturno")
        < text.index("Pieni o senza conteggio")
        < text.index("Casa Betel")
    )
    assert "Help Center della stazione" in text and "+39 030 000 0001" in text
    assert "solo donne" in text


async def test_an_old_count_is_shown_as_unconfirmed_never_as_fresh(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 9, 0)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica
        await set_beds(session, corsica, free=7, by=None)
        await session.commit()
    clock.advance(7 * 3600)  # the default limit is 6 hours
    bot.fake.add_user(FRENCH, first_name="Amadou", language_code="fr")
    text = texts(await bot.says(FRENCH, "/tonight"))
    assert "⚠️ Non confirmé : 7 libres sur 60, dernier décompte il y a 7 heures" in text
    assert "(mis à jour" not in text.split("Asile de nuit")[1].split("\n\n")[0]


async def test_winter_beds_do_not_appear_in_summer(bot):
    await load_example(bot)
    set_local_time(2027, 7, 10, 18, 0)
    text = texts(await bot.says(PERSON, "/tonight"))
    assert "Casa San Martino" not in text and "Dormitorio San Vincenzo" in text


async def _staff_of(bot, telegram_id: int, *keys: str) -> None:
    await bot.grant(telegram_id, Role.SHELTER_STAFF)
    await bot.grant(OPERATOR, Role.OPERATOR)
    for key in keys:
        answer = await bot.says(OPERATOR, f"/staffof {telegram_id} {key}")
        assert "Fatto" in texts(answer)


async def test_shelter_staff_update_free_beds_with_a_few_taps(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 17, 30)
    await _staff_of(bot, STAFF, "asilo-corsica")
    cards = await bot.says(STAFF, "/beds")
    card = cards[-1]
    assert "Asilo notturno di via Corsica" in card["text"]
    assert len(cards) == 2  # the heading and their one shelter
    asked = await bot.presses(STAFF, card, "➕ 1")  # no count yet: nothing to add one to
    assert "Non c'è ancora un conteggio per stanotte" in texts(asked)
    await bot.says(STAFF, "0")
    await bot.presses(STAFF, card, "➕ 1")
    await bot.presses(STAFF, card, "➕ 1")
    await bot.presses(STAFF, card, "➖ 1")
    assert "1 libero su 60" in bot.fake.current_message(STAFF, card["message_id"])["text"]
    await bot.presses(STAFF, card, "✏️ Scrivi il numero")
    wrong = await bot.says(STAFF, "tanti")
    assert "Invia solo un numero" in texts(wrong)
    saved = await bot.says(STAFF, "12")
    assert "Salvato." in texts(saved) and "12 liberi su 60" in texts(saved)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica and corsica.beds and corsica.beds.free == 12
        history = await bed_history(session, corsica)
        assert [h.free for h in history if h.source == "bot"] == [0, 1, 2, 1, 12]
        assert all(h.by_id is not None for h in history if h.source == "bot")


async def test_staff_cannot_update_a_shelter_that_is_not_theirs(bot):
    await load_example(bot)
    await _staff_of(bot, STAFF, "asilo-corsica")
    await _staff_of(bot, OTHER_STAFF, "casa-betel")
    mine = (await bot.says(STAFF, "/beds"))[-1]
    async with bot.session() as session:
        betel = await service_by_key(session, "casa-betel")
        assert betel
    # A crafted button press naming the other shelter (Telegram does not stop that).
    before = len(bot.fake.sent_messages(STAFF))
    bot.fake.push_update(callback_update(bot.fake.user(STAFF), mine, f"beds:+:{betel.id}"))
    await bot.deliver()
    answer = bot.fake.sent_messages(STAFF)[before:]
    assert "Puoi aggiornare solo i dormitori che gestisci." in texts(answer)
    async with bot.session() as session:
        betel = await service_by_key(session, "casa-betel")
        assert betel and (betel.beds is None or betel.beds.free is None)
        denied = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "denied")
        )
        assert denied == 1


async def test_a_person_in_need_cannot_use_the_staff_commands(bot):
    await load_example(bot)
    for command in ("/beds", "/editservice", "/staffof 1 asilo-corsica"):
        answer = await bot.says(PERSON, command)
        assert "riservata al personale dell'Help Center" in texts(answer)


async def test_the_daily_reminder_goes_once_to_staff_whose_counts_are_old(bot):
    from bot.jobs import run_now
    from handlers.beds import send_bed_reminders

    await load_example(bot)
    set_local_time(2026, 12, 2, 9, 0)
    await _staff_of(bot, STAFF, "asilo-corsica")
    await _staff_of(bot, OTHER_STAFF, "casa-betel")
    card = (await bot.says(OTHER_STAFF, "/beds"))[-1]
    await bot.presses(OTHER_STAFF, card, "✅ È ancora giusto")
    await bot.says(OTHER_STAFF, "3")  # there was no count to confirm: they are asked for it
    runtime = bot.application.bot_data["runtime"]
    assert await run_now(runtime, send_bed_reminders) == 0  # too early: the default is 18:00
    set_local_time(2026, 12, 2, 18, 5)
    assert await run_now(runtime, send_bed_reminders) == 1
    assert await run_now(runtime, send_bed_reminders) == 0  # once a day, whatever restarts
    async with bot.session() as session:
        reminders = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "bed_reminder"))
        )
    assert [r.chat_id for r in reminders] == [STAFF]
    assert "Asilo notturno di via Corsica" in reminders[0].params["text"]
    assert reminders[0].params["text"].startswith("Buonasera!")
    set_local_time(2026, 12, 3, 18, 30)
    assert await run_now(runtime, send_bed_reminders) == 2  # a new day: both counts are old again


async def test_an_operator_changes_hours_adds_a_closure_and_the_staff_are_told(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await _staff_of(bot, STAFF, "asilo-corsica")
    kinds = await bot.says(OPERATOR, "/editservice")
    services = await bot.presses(OPERATOR, kinds[-1], "🛏 Dormitori")
    card = await bot.presses(OPERATOR, services[-1], "Asilo notturno di via Corsica")
    prompt = await bot.presses(OPERATOR, card[-1], "🕒 Orari")
    assert "daily 20:00-08:00" in texts(prompt)
    bad = await bot.says(OPERATOR, "sempre aperto")
    assert "Non riesco a leggerlo" in texts(bad)
    saved = await bot.says(OPERATOR, "daily 17:00-09:00")
    assert "Orari: lun-dom 17:00-09:00" in texts(saved)  # was the English "daily"
    await bot.presses(OPERATOR, saved[-1], "🚫 Aggiungi chiusura")
    closed = await bot.says(OPERATOR, "24/12 lavori")
    assert "Chiuso il: 24/12/2026" in texts(closed)
    set_local_time(2026, 12, 24, 18, 0)
    text = texts(await bot.says(PERSON, "/tonight"))
    corsica = text.split("Asilo notturno di via Corsica")[1].split("\n")[1]
    assert corsica == "🔴 Chiuso, apre domani alle 17:00"
    async with bot.session() as session:
        edits = list(await session.scalars(select(ServiceEdit).order_by(ServiceEdit.id)))
        notices = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "service_edited")
            )
        )
    assert [(e.field, e.after) for e in edits] == [
        ("hours", "daily 17:00-09:00"),
        ("closure_added", "2026-12-24"),
    ]
    assert edits[0].before == "daily 16:00-08:00" and edits[0].by_id is not None
    assert [n.chat_id for n in notices] == [STAFF, STAFF]
    assert "ha cambiato gli orari di apertura di Asilo notturno" in notices[0].params["text"]


async def test_an_operator_writes_a_note_that_people_then_read(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.grant(OPERATOR, Role.OPERATOR)
    kinds = await bot.says(OPERATOR, "/editservice")
    services = await bot.presses(OPERATOR, kinds[-1], "👕 Vestiti")
    card = await bot.presses(OPERATOR, services[-1], "Guardaroba (vestiti)")
    await bot.presses(OPERATOR, card[-1], "📝 Note")
    await bot.says(OPERATOR, "Questa settimana solo scarpe e giacche")
    menu = await bot.says(PERSON, "/services")
    await bot.presses(PERSON, menu[-1], "👕 Vestiti")
    assert "solo scarpe e giacche" in texts(await bot.says(PERSON, location=STATION))


async def test_staff_assignment_needs_a_shelter_staff_account_and_a_shelter(bot):
    await load_example(bot)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.says(PERSON, "/start")
    not_staff = await bot.says(OPERATOR, f"/staffof {PERSON} asilo-corsica")
    assert "/invite shelter_staff" in texts(not_staff)
    await bot.grant(STAFF, Role.SHELTER_STAFF)
    not_a_shelter = await bot.says(OPERATOR, f"/staffof {STAFF} guardaroba")
    assert "Non conosco nessun dormitorio" in texts(not_a_shelter)
    usage = await bot.says(OPERATOR, "/staffof")
    assert "Inoltrami un messaggio" in texts(usage)  # was the raw-id usage "/staffof ID_TELEGRAM"
    await bot.says(OPERATOR, f"/staffof {STAFF} asilo-corsica")
    await bot.says(OPERATOR, f"/staffof remove {STAFF} asilo-corsica")
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(ShelterStaff)) == 0
        told = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "staff_assigned")
        )
    assert told == 1
    no_shelters = await bot.says(STAFF, "/beds")
    assert "Non ti è ancora stato assegnato" in texts(no_shelters)


async def test_bed_history_keeps_every_change(bot):
    await load_example(bot)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica
        for free in (3, 5, 99):
            await set_beds(session, corsica, free=free, by=None)
        await session.commit()
        rows = list(
            await session.scalars(select(BedCountChange).where(BedCountChange.source == "bot"))
        )
    assert [(r.previous_free, r.free) for r in rows] == [(None, 3), (3, 5), (5, 60)]


async def test_an_operator_reopens_a_closed_day_and_cancel_stops_a_typed_step(bot):
    await load_example(bot)
    set_local_time(2026, 12, 20, 10, 0)
    await bot.grant(OPERATOR, Role.OPERATOR)
    kinds = await bot.says(OPERATOR, "/editservice")
    services = await bot.presses(OPERATOR, kinds[-1], "🍲 Pasti e cibo")
    card = await bot.presses(OPERATOR, services[-1], "Mensa di Casa San Vincenzo (pranzo)")
    assert "Chiuso il: 26/12/2026" in texts(card)
    reopened = await bot.presses(OPERATOR, card[-1], "↩️ Riapri il 26/12/2026")
    assert "Chiuso il: —" in texts(reopened)
    await bot.presses(OPERATOR, reopened[-1], "📝 Note")
    assert "Annullato." in texts(await bot.says(OPERATOR, "/cancel"))
    after = await bot.says(OPERATOR, "questa non è una nota")
    assert "Salvato." not in texts(after)
    async with bot.session() as session:
        edits = list(await session.scalars(select(ServiceEdit)))
    assert [(e.field, e.before) for e in edits] == [("closure_removed", "2026-12-26")]


async def test_a_typed_answer_awaited_before_a_restart_is_still_understood(bot):
    await load_example(bot)
    set_local_time(2026, 12, 2, 17, 30)
    await _staff_of(bot, STAFF, "asilo-corsica")
    card = (await bot.says(STAFF, "/beds"))[-1]
    await bot.presses(STAFF, card, "✏️ Scrivi il numero")

    async with bot.restarted() as after_restart:
        saved = await after_restart.says(STAFF, "9")

    assert "Salvato." in texts(saved) and "9 liberi su 60" in texts(saved)
