"""The team's daily tools in the contact database (#13): /note, /audit, /stats."""

from __future__ import annotations

from sqlalchemy import select

from bot.i18n import Catalogs
from models.accounts import Account
from models.base import clock
from models.contacts import Channel, Contact, ContactFacts, Person, create_person, record_contact
from models.directory import Service, set_beds
from models.roles import Role
from tests.cases_helpers import set_language
from tests.conftest import ADMIN_ID, BotHarness
from tests.directory_helpers import set_local_time

OPERATOR = 101
FR = Catalogs("it").translator("fr")
IT = Catalogs("it").translator("it")


async def test_a_note_typed_at_the_outcome_step_does_not_skip_the_outcome(
    bot: BotHarness,
) -> None:
    for language, _ in (("it", IT), ("fr", FR)):
        await bot.grant(OPERATOR, Role.OPERATOR)
        await set_language(bot, OPERATOR, language)
        message = (await bot.says(OPERATOR, "/contact"))[-1]
        for button in (_("Anonymous"), _("Street"), _("Skip"), _("Done"), _("Done")):
            message = (await bot.presses(OPERATOR, message, button))[-1]
        assert _("Outcome?") in message["text"]

        noted = (await bot.says(OPERATOR, "/note asked for a blanket"))[-1]
        assert "asked for a blanket" in noted["text"]
        assert _("Outcome?") in noted["text"], "the outcome is still asked"
        assert _("Save") not in str(bot.fake.buttons(noted))
        message = (await bot.presses(OPERATOR, noted, _("Referred elsewhere")))[-1]
        assert _("Add a note with /note followed by the text, or save now.") in message["text"]
        await bot.presses(OPERATOR, message, _("Save"))

    async with bot.session() as session:
        contacts = list(await session.scalars(select(Contact).order_by(Contact.id)))
    assert [(c.outcome, c.notes) for c in contacts] == [("referred", "asked for a blanket")] * 2


async def test_the_audit_log_reads_as_sentences_in_the_admins_language(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    answer = await bot.says(OPERATOR, "/person new MR 1985 M")
    code = next(word for word in answer[-1]["text"].split() if "-" in word and word[0].isupper())
    await bot.says(OPERATOR, f"/person {code.rstrip('.')}")
    await bot.says(OPERATOR, "/duty on")
    await bot.says(ADMIN_ID, "/start")
    async with bot.session() as session:
        operator = await session.scalar(select(Account).where(Account.telegram_id == OPERATOR))
        person = await session.scalar(select(Person))
    assert operator is not None and person is not None
    who = f"{operator.operator_code} (operatore dell'Help Center)"

    lines = (await bot.says(ADMIN_ID, "/audit"))[-1]["text"].splitlines()[1:]
    assert all(" · " in line for line in lines), lines
    sentences = [line.split(" · ", 1)[1] for line in lines]
    assert f"{who} è entrato in turno" in sentences
    assert f"{who} ha letto la scheda di persona n. {person.id}" in sentences
    assert f"{who} ha registrato persona n. {person.id}" in sentences
    assert not any("person_read" in line or "duty_on" in line for line in lines)

    await set_language(bot, ADMIN_ID, "fr")
    lines = (await bot.says(ADMIN_ID, f"/audit person {person.id}"))[-1]["text"].splitlines()
    sentences = [line.split(" · ", 1)[1] for line in lines[1:]]
    fr_who = f"{operator.operator_code} (intervenant du Help Center)"
    assert sentences == [
        f"{fr_who} a consulté la fiche de personne n° {person.id}",
        f"{fr_who} a enregistré personne n° {person.id}",
    ]


# ---- /stats --------------------------------------------------------------------------------

COORDINATOR = 201


def shelter(key: str) -> Service:
    return Service(
        key=key,
        category="night_shelter",
        names={"it": key},
        descriptions={},
        eligibility={},
        application_process={},
        notes={},
    )


async def test_stats_say_how_many_shelters_reported_and_the_age_reference(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    set_local_time(2026, 3, 10, 20, 0)
    async with bot.session() as session:
        big, small, silent = shelter("big"), shelter("small"), shelter("silent")
        session.add_all([big, small, silent])
        await session.flush()
        for service in (big, small, silent):
            await session.refresh(service, ["beds"])
        await set_beds(session, big, total=20, free=5, by=None)
        await set_beds(session, small, total=10, free=0, by=None)
        await create_person(session, initials="MR", birth_year=2008)  # 18 in 2026
        await session.commit()
    async with bot.session() as session:
        person = await session.scalar(select(Person))
        assert person is not None
        await record_contact(
            session,
            ContactFacts(occurred_at=clock.now(), channel=Channel.STREET, person_id=person.id),
        )
        await session.commit()

    text = (await bot.says(COORDINATOR, "/stats 2026-03-01 2026-03-31"))[0]["text"]
    assert "Posti letto occupati: 25 su 30 (83%), dai conteggi di 2 dormitori" in text
    assert "Età (raggiunta nel 2026): 18-24 1" in text

    await set_language(bot, COORDINATOR, "fr")
    text = (await bot.says(COORDINATOR, "/stats 2025-12-01 2026-03-31"))[0]["text"]
    assert "d'après les comptages de 2 centres d'hébergement" in text
    assert "Âge (atteint en 2026) : 18-24 1" in text


async def test_a_reversed_period_gets_its_own_message(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    said = (await bot.says(COORDINATOR, "/stats 2025-03-31 2025-03-01"))[-1]["text"]
    assert said == (
        "Il periodo finisce prima di iniziare: scrivi prima il primo giorno, poi l'ultimo "
        "(2025-03-01 2025-03-31)."
    )
    said = (await bot.says(COORDINATOR, "/stats marzo"))[-1]["text"]
    assert said == IT("Write the period as /stats 2025-01-01 2025-03-31.")
    await set_language(bot, COORDINATOR, "fr")
    said = (await bot.says(COORDINATOR, "/stats 31/03/2025 01/03/2025"))[-1]["text"]
    assert said.startswith("La période se termine avant de commencer")
