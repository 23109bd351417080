"""Statistics over the contact database, computed by SQL aggregates (never row loops).

A period is a half-open interval of local days ``[start, end)`` converted to UTC. Every figure
is one grouped query; the time series is one scan with a ``CASE`` that maps each contact to its
bucket, so local-day boundaries are right on both PostgreSQL and SQLite.

Urgent cases with their response times are read from the cases' tables (:mod:`models.cases`),
bed occupancy from the directory's bed counts (:mod:`models.directory`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, distinct, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from models.cases import Case, CaseEvent, CaseKind
from models.contacts import Contact, ContactAction, ContactNeed, Person
from models.directory import BedCountChange
from models.sqlite_inline import off_the_loop

EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
EUROPE_NON_EU = frozenset(
    [
        "AL",
        "AD",
        "BA",
        "BY",
        "CH",
        "GB",
        "GE",
        "IS",
        "LI",
        "MC",
        "MD",
        "ME",
        "MK",
        "NO",
        "RS",
        "RU",
        "SM",
        "TR",
        "UA",
        "VA",
        "XK",
    ]
)
AFRICA = frozenset(
    [
        "DZ",
        "AO",
        "BJ",
        "BW",
        "BF",
        "BI",
        "CM",
        "CV",
        "CF",
        "TD",
        "KM",
        "CD",
        "CG",
        "CI",
        "DJ",
        "EG",
        "GQ",
        "ER",
        "SZ",
        "ET",
        "GA",
        "GM",
        "GH",
        "GN",
        "GW",
        "KE",
        "LS",
        "LR",
        "LY",
        "MG",
        "MW",
        "ML",
        "MR",
        "MU",
        "MA",
        "MZ",
        "NA",
        "NE",
        "NG",
        "RW",
        "ST",
        "SN",
        "SC",
        "SL",
        "SO",
        "ZA",
        "SS",
        "SD",
        "TZ",
        "TG",
        "TN",
        "UG",
        "ZM",
        "ZW",
        "EH",
    ]
)
ASIA = frozenset(
    [
        "AF",
        "AM",
        "AZ",
        "BH",
        "BD",
        "BT",
        "BN",
        "KH",
        "CN",
        "IN",
        "ID",
        "IR",
        "IQ",
        "IL",
        "JP",
        "JO",
        "KZ",
        "KW",
        "KG",
        "LA",
        "LB",
        "MY",
        "MV",
        "MN",
        "MM",
        "NP",
        "KP",
        "OM",
        "PK",
        "PS",
        "PH",
        "QA",
        "SA",
        "SG",
        "KR",
        "LK",
        "SY",
        "TW",
        "TJ",
        "TH",
        "TL",
        "TM",
        "AE",
        "UZ",
        "VN",
        "YE",
    ]
)
AMERICAS = frozenset(
    [
        "AR",
        "BO",
        "BR",
        "CA",
        "CL",
        "CO",
        "CR",
        "CU",
        "DO",
        "EC",
        "SV",
        "GT",
        "HT",
        "HN",
        "JM",
        "MX",
        "NI",
        "PA",
        "PY",
        "PE",
        "PR",
        "TT",
        "US",
        "UY",
        "VE",
        "BZ",
        "GY",
        "SR",
    ]
)
NATIONALITY_GROUPS = (
    "italian",
    "eu",
    "europe_non_eu",
    "africa",
    "asia",
    "americas",
    "other",
    "unknown",
)
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
_BAND_LOWER = (0, 18, 25, 35, 45, 55, 65)


# The days a period may name. At the calendar's ends (year 1, year 9999) a local midnight has
# no UTC time and the day after does not exist; and no record of the Help Center is older
# than this century.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


@dataclass(frozen=True)
class Period:
    """Local days ``[first_day, end_day)`` in the Help Center's time zone."""

    first_day: date
    end_day: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.end_day, time(0), self.tz)

    @property
    def last_day(self) -> date:
        return self.end_day - timedelta(days=1)

    @classmethod
    def week_of(cls, now: datetime, tz: ZoneInfo) -> Period:
        today = now.astimezone(tz).date()
        monday = today - timedelta(days=today.weekday())
        return cls(monday, monday + timedelta(days=7), tz)

    @classmethod
    def month_of(cls, now: datetime, tz: ZoneInfo) -> Period:
        today = now.astimezone(tz).date()
        first = today.replace(day=1)
        return cls(first, _add_months(first, 1), tz)

    @classmethod
    def previous_month(cls, now: datetime, tz: ZoneInfo) -> Period:
        first = now.astimezone(tz).date().replace(day=1)
        return cls(_add_months(first, -1), first, tz)

    @classmethod
    def year_of(cls, now: datetime, tz: ZoneInfo) -> Period:
        today = now.astimezone(tz).date()
        return cls(date(today.year, 1, 1), date(today.year + 1, 1, 1), tz)

    @classmethod
    def custom(cls, first_day: date, last_day: date, tz: ZoneInfo) -> Period:
        if last_day < first_day:
            raise ValueError("the period ends before it starts")
        if first_day < FIRST_DAY or last_day > LAST_DAY:
            raise ValueError("the period is outside the days statistics cover")
        return cls(first_day, last_day + timedelta(days=1), tz)

    @property
    def age_reference_year(self) -> int:
        """The one reference for ages, whatever the period: the age a person reaches in the
        calendar year of the period's last day (only birth years are kept)."""
        return self.last_day.year

    def buckets(self) -> list[tuple[date, str]]:
        """Bucket starts and labels: days up to a month, weeks up to a quarter, else months."""
        days = (self.end_day - self.first_day).days
        starts: list[date] = []
        cursor = self.first_day
        if days <= 31:
            step = "day"
        elif days <= 92:
            step = "week"
        else:
            step = "month"
            cursor = cursor.replace(day=1)
        while cursor < self.end_day:
            starts.append(max(cursor, self.first_day))
            if step == "day":
                cursor += timedelta(days=1)
            elif step == "week":
                cursor += timedelta(days=7)
            else:
                cursor = _add_months(cursor, 1)
        fmt = {"day": "%d/%m", "week": "%d/%m", "month": "%m/%Y"}[step]
        return [(d, d.strftime(fmt)) for d in starts]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class UrgentFigures:
    urgent_cases: int
    median_response_seconds: float | None
    p90_response_seconds: float | None


@dataclass(frozen=True)
class BedFigures:
    occupied: int
    capacity: int
    shelters: int = 0  # how many shelters reported a count in the period

    @property
    def rate(self) -> float:
        return self.occupied / self.capacity if self.capacity else 0.0


@dataclass
class StatsReport:
    period: Period
    contacts: int = 0
    anonymous_contacts: int = 0
    people: int = 0
    new_people: int = 0
    returning_people: int = 0
    by_need: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_nationality: dict[str, int] = field(default_factory=dict)
    by_gender: dict[str, int] = field(default_factory=dict)
    by_age_band: dict[str, int] = field(default_factory=dict)
    series: list[tuple[str, int]] = field(default_factory=list)
    urgent: UrgentFigures | None = None
    beds: BedFigures | None = None


async def urgent_case_figures(
    session: AsyncSession, start: datetime, end: datetime
) -> UrgentFigures:
    """Urgent requests opened in ``[start, end)``; response time = request → first "taken".

    The first take is read from the history, so a release or a reopen does not reset it.
    """
    first_taken = (
        select(CaseEvent.case_id, func.min(CaseEvent.at).label("at"))
        .where(CaseEvent.action == "taken")
        .group_by(CaseEvent.case_id)
        .subquery()
    )
    query = (
        select(Case.created_at, first_taken.c.at)
        .outerjoin(first_taken, first_taken.c.case_id == Case.id)
        .where(Case.kind == CaseKind.URGENT, Case.created_at >= start, Case.created_at < end)
    )
    rows = (await session.execute(query)).all()
    seconds = [(_aware(taken) - created).total_seconds() for created, taken in rows if taken]
    times = response_time_figures(seconds)
    return UrgentFigures(len(rows), times.median_response_seconds, times.p90_response_seconds)


def _aware(value: Any) -> datetime:
    """``min()`` over a UTC column comes back as text or naive on SQLite: make it UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def bed_occupancy_figures(
    session: AsyncSession, start: datetime, end: datetime
) -> BedFigures:
    """Bed-nights: for each shelter and each local day of the period with a count, the last
    count of that day; occupied = total − free, capacity = total, summed over those nights.
    Days without a count are left out rather than guessed."""
    tz = start.tzinfo
    query = (
        select(BedCountChange.service_id, BedCountChange.at, BedCountChange.total)
        .add_columns(BedCountChange.free)
        .where(
            BedCountChange.at >= start,
            BedCountChange.at < end,
            BedCountChange.free.is_not(None),
        )
        .order_by(BedCountChange.at, BedCountChange.id)
    )
    nights: dict[tuple[int, date], tuple[int, int]] = {}
    for service_id, at, total, free in (await session.execute(query)).all():
        nights[(service_id, at.astimezone(tz).date())] = (total, free)
    occupied = sum(max(total - free, 0) for total, free in nights.values())
    capacity = sum(total for total, _free in nights.values())
    shelters = len({service_id for service_id, _day in nights})
    return BedFigures(occupied, capacity, shelters)


def response_time_figures(seconds: Sequence[float]) -> UrgentFigures:
    """Median and 90th percentile (inclusive method) of response times."""
    if not seconds:
        return UrgentFigures(0, None, None)
    ordered = sorted(seconds)
    p90 = (
        statistics.quantiles(ordered, n=10, method="inclusive")[-1]
        if len(ordered) > 1
        else ordered[0]
    )
    return UrgentFigures(len(ordered), statistics.median(ordered), p90)


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(Contact.occurred_at >= period.start, Contact.occurred_at < period.end)


def nationality_group_expression() -> ColumnElement[str]:
    nationality = Person.nationality
    return case(
        (nationality.is_(None), literal("unknown")),
        (nationality == "IT", literal("italian")),
        (nationality.in_(sorted(EU_COUNTRIES)), literal("eu")),
        (nationality.in_(sorted(EUROPE_NON_EU)), literal("europe_non_eu")),
        (nationality.in_(sorted(AFRICA)), literal("africa")),
        (nationality.in_(sorted(ASIA)), literal("asia")),
        (nationality.in_(sorted(AMERICAS)), literal("americas")),
        else_=literal("other"),
    )


def age_band_expression(reference_year: int) -> ColumnElement[str]:
    """Age reached in the reference year, banded, written as birth-year thresholds."""
    birth = Person.birth_year
    whens: list[tuple[ColumnElement[bool], Any]] = [
        (birth.is_(None), literal("unknown")),
        (birth <= 0, literal("unknown")),
    ]
    for lower, label in reversed(list(zip(_BAND_LOWER, AGE_BANDS, strict=False))):
        whens.append((birth <= reference_year - lower, literal(label)))
    return case(*whens, else_=literal("unknown"))


async def _grouped(session: AsyncSession, query: Any) -> dict[str, int]:
    rows = (await session.execute(query)).all()
    return {str(key if key is not None else "unknown"): int(n) for key, n in rows}


async def compute_stats(session: AsyncSession, period: Period) -> StatsReport:
    """The period's figures (a year's take a second on SQLite at 1M exchanges: long work)."""
    with off_the_loop():
        return await _compute_stats(session, period)


async def _compute_stats(session: AsyncSession, period: Period) -> StatsReport:
    report = StatsReport(period=period)
    in_period = _in_period(period)
    totals = (
        await session.execute(
            select(
                func.count(),
                func.count(distinct(Contact.person_id)),
                func.sum(case((Contact.person_id.is_(None), 1), else_=0)),
            ).where(in_period)
        )
    ).one()
    report.contacts, report.people = int(totals[0]), int(totals[1])
    report.anonymous_contacts = int(totals[2] or 0)

    # New: the person's first contact ever falls inside the period.
    first_seen = (
        select(Contact.person_id)
        .where(Contact.person_id.is_not(None))
        .group_by(Contact.person_id)
        .having(
            and_(
                func.min(Contact.occurred_at) >= period.start,
                func.min(Contact.occurred_at) < period.end,
            )
        )
        .subquery()
    )
    report.new_people = int(await session.scalar(select(func.count()).select_from(first_seen)) or 0)
    report.returning_people = report.people - report.new_people

    report.by_need = await _grouped(
        session,
        select(ContactNeed.need, func.count())
        .join(Contact, Contact.id == ContactNeed.contact_id)
        .where(in_period)
        .group_by(ContactNeed.need),
    )
    report.by_action = await _grouped(
        session,
        select(ContactAction.action, func.count())
        .join(Contact, Contact.id == ContactAction.contact_id)
        .where(in_period)
        .group_by(ContactAction.action),
    )
    report.by_channel = await _grouped(
        session, select(Contact.channel, func.count()).where(in_period).group_by(Contact.channel)
    )
    people_in_period = (
        select(Contact.person_id).where(in_period, Contact.person_id.is_not(None)).distinct()
    ).subquery()
    report.by_nationality = await _people_by(
        session, people_in_period, nationality_group_expression()
    )
    report.by_gender = await _people_by(session, people_in_period, Person.gender)
    report.by_age_band = await _people_by(
        session, people_in_period, age_band_expression(period.age_reference_year)
    )
    report.series = await _series(session, period)
    report.urgent = await urgent_case_figures(session, period.start, period.end)
    report.beds = await bed_occupancy_figures(session, period.start, period.end)
    return report


async def _people_by(session: AsyncSession, people: Any, key: Any) -> dict[str, int]:
    labelled = key.label("key")
    query = (
        select(labelled, func.count())
        .select_from(Person)
        .join(people, people.c.person_id == Person.id)
        .group_by(labelled)
    )
    return await _grouped(session, query)


async def _series(session: AsyncSession, period: Period) -> list[tuple[str, int]]:
    buckets = period.buckets()
    tz = period.tz
    whens = [
        (Contact.occurred_at < datetime.combine(start, time(0), tz), literal(index - 1))
        for index, (start, _label) in enumerate(buckets)
        if index > 0
    ]
    bucket = case(*whens, else_=literal(len(buckets) - 1)) if whens else literal(0)
    labelled = bucket.label("bucket")
    rows = (
        await session.execute(
            select(labelled, func.count()).where(_in_period(period)).group_by(labelled)
        )
    ).all()
    counts = {int(index): int(n) for index, n in rows}
    return [(label, counts.get(index, 0)) for index, (_start, label) in enumerate(buckets)]
