"""The team's daily tools in the contact database (#13): /note, /audit, /stats."""

from __future__ import annotations

from sqlalchemy import select

from bot.i18n import Catalogs
from models.accounts import Account
from models.contacts import Contact, Person
from models.roles import Role
from tests.cases_helpers import set_language
from tests.conftest import ADMIN_ID, BotHarness

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
