"""A small contact database with known answers, and helpers for the contacts tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Catalogs
from models.contacts import (
    Action,
    Channel,
    ContactFacts,
    ContactOutcome,
    Gender,
    Need,
    Person,
    create_person,
    record_contact,
)
from models.stats import Period

ROME = ZoneInfo("Europe/Rome")
IT = Catalogs("it").translator("it")
MARCH = Period.custom(date(2025, 3, 1), date(2025, 3, 31), ROME)


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ROME)


@dataclass
class Dataset:
    people: dict[str, Person]
    contact_ids: list[int]  # the March contacts, in time order


async def seed_march(session: AsyncSession) -> Dataset:
    """Five people, six contacts in March 2025 (local time), two just outside it.

    Known answers for March: 6 contacts (1 anonymous), 4 people, 3 new and 1 returning.
    """
    p1 = await create_person(
        session, initials="MR", birth_year=1985, gender=Gender.MALE, nationality="MA"
    )
    p2 = await create_person(
        session, initials="AB", birth_year=2000, gender=Gender.FEMALE, nationality="RO"
    )
    p3 = await create_person(
        session, initials="CD", birth_year=1950, gender=Gender.MALE, nationality="IT"
    )
    p4 = await create_person(session, initials="EF")
    p5 = await create_person(
        session, initials="GH", birth_year=1990, gender=Gender.FEMALE, nationality="UA"
    )

    async def contact(
        when: datetime,
        person: Person | None,
        channel: Channel,
        needs: list[Need],
        actions: list[Action],
        notes: str | None = None,
    ) -> int:
        facts = ContactFacts(
            occurred_at=when,
            channel=channel,
            person_id=person.id if person else None,
            needs=needs,
            actions=actions,
            outcome=ContactOutcome.RESOLVED,
            notes=notes,
        )
        return (await record_contact(session, facts)).id

    await contact(local(2025, 2, 20), p1, Channel.STREET, [Need.FOOD], [Action.LISTENING])
    march = [
        # 00:30 on 1 March in Rome is still 28 February in UTC: it belongs to March.
        await contact(
            local(2025, 3, 1, 0, 30),
            p1,
            Channel.STREET,
            [Need.FOOD, Need.SHELTER],
            [Action.MEAL_TICKET, Action.INFORMATION],
            notes="slept on platform 1",
        ),
        await contact(local(2025, 3, 5), None, Channel.STREET, [Need.FOOD], [Action.LISTENING]),
        await contact(local(2025, 3, 10), p1, Channel.DESK, [Need.FOOD], [Action.MEAL_TICKET]),
        await contact(local(2025, 3, 15), p2, Channel.DESK, [Need.HYGIENE], [Action.SHOWER]),
        await contact(
            local(2025, 3, 20), p3, Channel.STREET, [Need.HEALTH], [Action.MEDICAL_REFERRAL]
        ),
        await contact(
            local(2025, 3, 31, 23, 30),
            p4,
            Channel.PHONE,
            [Need.SHELTER],
            [Action.SHELTER_PLACEMENT],
        ),
    ]
    # 00:30 on 1 April in Rome is 31 March in UTC: it does not belong to March.
    await contact(local(2025, 4, 1, 0, 30), p5, Channel.DESK, [Need.WORK], [Action.ORIENTATION])
    await session.flush()
    return Dataset({"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5}, march)
