"""Operators and coordinators use the contact database from the bot."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from models.accounts import AuditEntry
from models.contacts import Contact, Person, person_by_code
from models.exchange import Exchange
from models.roles import Role
from tests.conftest import BotHarness, make_settings
from tests.contacts_helpers import IT, seed_march

OPERATOR = 101
COORDINATOR = 201
CODE = re.compile(r"[A-Z]{2}\d{4}[FMX]\d*-[0-9A-Z]")


async def person_reads(bot: BotHarness, person_id: int) -> int:
    async with bot.session() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    AuditEntry.action == "person_read", AuditEntry.subject_id == person_id
                )
            )
            or 0
        )


async def register(bot: BotHarness, user: int, *args: str) -> str:
    answer = await bot.says(user, "/person new " + " ".join(args))
    found = CODE.search(answer[-1]["text"])
    assert found, answer[-1]["text"]
    return found.group(0)


async def test_operator_records_a_contact_in_a_few_taps(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    code = await register(bot, OPERATOR, "MR", "1985", "M")

    answer = await bot.says(OPERATOR, f"/contact {code.lower()}")
    message = answer[-1]
    assert IT("How did you meet?") in message["text"]
    steps: list[str] = [
        IT("Street"),
        IT("Railway station"),
        IT("Food"),
        IT("A place to sleep"),
        IT("Done"),
        IT("Meal ticket"),
        IT("Done"),
        IT("Need met"),
    ]
    for button in steps:
        message = (await bot.presses(OPERATOR, message, button))[-1]
    assert "✓ " not in message["text"]
    assert IT("Add a note with /note followed by the text, or save now.") in message["text"]

    noted = (await bot.says(OPERATOR, "/note slept near platform 3"))[-1]
    assert "slept near platform 3" in noted["text"]
    saved = (await bot.presses(OPERATOR, noted, IT("Save")))[-1]
    assert IT("Contact saved (number {id}).").format(id=1) in saved["text"]

    async with bot.session() as session:
        contact = (await session.scalars(select(Contact))).one()
        person = await person_by_code(session, code)
        assert person is not None
        assert contact.person_id == person.id
        assert contact.channel == "street" and contact.place == "station"
        assert [n.value for n in contact.needs] == ["food", "shelter"]
        assert [a.value for a in contact.actions] == ["meal_ticket"]
        assert contact.outcome == "resolved"
        assert contact.notes == "slept near platform 3"
    assert await person_reads(bot, person.id) == 1  # the /contact CODE look-up


async def test_anonymous_contact_and_a_mistyped_code(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    code = await register(bot, OPERATOR, "AB", "?", "F")
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    answer = await bot.says(OPERATOR, f"/contact {typo}")
    assert answer[-1]["text"].startswith(f"Nessuna persona con il codice {typo}.")

    message = (await bot.says(OPERATOR, "/contact"))[-1]
    for button in (
        IT("Anonymous"),
        IT("Desk"),
        IT("Skip"),
        IT("Done"),
        IT("Listening"),
        IT("Done"),
        IT("Nothing to add"),
        IT("Save"),
    ):
        message = (await bot.presses(OPERATOR, message, button))[-1]
    async with bot.session() as session:
        contact = (await session.scalars(select(Contact))).one()
    assert contact.person_id is None and contact.channel == "desk"
    assert [a.value for a in contact.actions] == ["listening"]


async def test_person_lookup_shows_history_and_is_audited(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    async with bot.session() as session:
        data = await seed_march(session)
        await session.commit()
    p1 = data.people["p1"]
    answer = (await bot.says(OPERATOR, f"/person {p1.code}"))[-1]
    assert IT("Contacts: {count}").format(count=3) in answer["text"]
    assert await person_reads(bot, p1.id) == 1

    after = (await bot.says(OPERATOR, f"/person {p1.code} set housing=roofless resident=no"))[-1]
    assert IT("roofless") in after["text"]
    assert await person_reads(bot, p1.id) == 2

    consent = (await bot.presses(OPERATOR, after, IT("Record consent")))[-1]
    assert IT("Withdraw consent") in str(consent["reply_markup"])
    assert await person_reads(bot, p1.id) == 3
    async with bot.session() as session:
        person = await session.get(Person, p1.id)
        assert person is not None and person.consent_at is not None
        assert person.housing == "roofless" and person.resident_in_city is False


async def test_identity_needs_consent_and_a_key_and_is_not_left_in_the_log(
    database_url: str,
) -> None:
    key = Fernet.generate_key().decode()
    async with BotHarness(make_settings(database_url, encryption_key=key)) as bot:
        await bot.grant(OPERATOR, Role.OPERATOR)
        code = await register(bot, OPERATOR, "MR", "1985", "M")
        refused = await bot.says(OPERATOR, f"/person {code} identity Mario Rossi; 3331234567")
        assert refused[-1]["text"] == IT(
            "Record the person's consent first: without it no name or phone is kept."
        )
        shown = (await bot.says(OPERATOR, f"/person {code}"))[-1]
        await bot.presses(OPERATOR, shown, IT("Record consent"))
        done = await bot.says(OPERATOR, f"/person {code} identity Mario Rossi; 3331234567")
        assert done[-1]["text"] == IT("Name and phone saved, encrypted.")
        async with bot.session() as session:
            person = await person_by_code(session, code)
            assert person is not None and person.name_token
            assert "Mario" not in person.name_token
            from models.contacts import read_identity

            assert read_identity(person, key) == ("Mario Rossi", "3331234567")
            leaks = await session.scalar(select(func.count()).where(Exchange.text.like("%Mario%")))
            assert leaks == 0


async def test_coordinator_merges_two_records_of_the_same_person(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    async with bot.session() as session:
        data = await seed_march(session)
        await session.commit()
    keep, drop = data.people["p1"], data.people["p2"]
    question = (await bot.says(COORDINATOR, f"/merge {keep.code} {drop.code}"))[-1]
    done = (await bot.presses(COORDINATOR, question, IT("Merge")))[-1]
    assert (
        IT("Merged: {drop} is now part of {keep} ({moved} contacts moved).").format(
            drop=drop.code, keep=keep.code, moved=1
        )
        == done["text"]
    )
    async with bot.session() as session:
        moved = await session.scalar(select(func.count()).where(Contact.person_id == keep.id))
        assert moved == 4
        found = await person_by_code(session, drop.code)
        assert found is not None and found.id == keep.id
        logged = await session.scalar(
            select(AuditEntry.detail).where(AuditEntry.action == "person_merged")
        )
    assert logged == f"merged person {drop.id} into {keep.id}; 1 contacts moved"
    assert await person_reads(bot, drop.id) == 1


async def test_coordinator_gets_stats_as_text_and_charts(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    async with bot.session() as session:
        await seed_march(session)
        await session.commit()
    answer = await bot.says(COORDINATOR, "/stats 2025-03-01 2025-03-31")
    text = answer[0]["text"]
    assert (
        IT("Contacts: {contacts} (anonymous: {anonymous})").format(contacts=6, anonymous=1) in text
    )
    assert (
        IT("People: {people} (new: {new}, returning: {returning})").format(
            people=4, new=3, returning=1
        )
        in text
    )
    assert IT("Bed occupancy: no bed counts in this period") in text
    photos = [m for m in answer if "photo" in m]
    assert len(photos) == 3

    menu = (await bot.says(COORDINATOR, "/stats"))[-1]
    assert bot.fake.buttons(menu) == [
        [IT("This week"), IT("This month")],
        [IT("Last month"), IT("This year")],
    ]
    shown = await bot.presses(COORDINATOR, menu, IT("This month"))
    assert (
        IT("Contacts: {contacts} (anonymous: {anonymous})").format(contacts=0, anonymous=0)
        in shown[-1]["text"]
    )


@pytest.mark.parametrize("command", ["/stats", "/export"])
@pytest.mark.parametrize("period", ["0001-01-01 2025-03-31", "2025-03-01 9999-12-31"])
async def test_a_period_at_the_ends_of_the_calendar_gets_the_usage(
    bot: BotHarness, command: str, period: str
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    answer = await bot.says(COORDINATOR, f"{command} {period}")
    assert answer[-1]["text"] == IT(f"Write the period as {command} 2025-01-01 2025-03-31.")


async def test_coordinator_exports_a_workbook(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    async with bot.session() as session:
        await seed_march(session)
        await session.commit()
    answer = await bot.says(COORDINATOR, "/export 2025-03-01 2025-03-31")
    document: dict[str, Any] = answer[-1]
    assert document["document"]["file_name"] == "helpcenter-2025-03-01-2025-03-31.xlsx"
    assert "6" in document["caption"]
    async with bot.session() as session:
        exported = await session.scalar(
            select(AuditEntry.detail).where(AuditEntry.action == "data_exported")
        )
    assert exported == "xlsx 2025-03-01..2025-03-31 notes=False"


async def test_admin_reads_the_audit_log(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    code = await register(bot, OPERATOR, "MR", "1985", "M")
    await bot.says(OPERATOR, f"/person {code}")
    from tests.conftest import ADMIN_ID

    answer = await bot.says(ADMIN_ID, "/audit person")
    assert "ha letto la scheda di persona n." in answer[-1]["text"]  # was the raw "person_read"
    assert "OP-" in answer[-1]["text"]
