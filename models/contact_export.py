"""Exports of contacts, people, exchanges and cases for a period: CSV files or one XLSX workbook.

Pseudonymous by design: people appear by their code, operators by their operator code,
bot users by an internal account number; never names, phones, Telegram ids, message texts or
payloads. Free notes are left out unless asked for (``include_notes``). The column dictionary
below is the single source for ``docs/export-columns.md`` (a test keeps them in step). Rows are
streamed from the database, so a year of a busy help center does not sit in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.accounts import Account, audit
from models.cases import Case
from models.contacts import Contact, ContactAction, ContactNeed, Person
from models.exchange import Exchange
from models.sqlite_inline import off_the_loop
from models.stats import Period, nationality_group_expression

STREAM_CHUNK = 5000

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "contacts": [
        ("contact_id", "Number of the contact (intervention) in the database."),
        ("occurred_at", "When it happened, ISO 8601 in UTC."),
        ("local_date", "The day it happened in the Help Center's time zone (YYYY-MM-DD)."),
        ("channel", "street, desk, phone or bot."),
        ("place", "Where, as a short label chosen by the operator (empty if not given)."),
        ("person_code", "Pseudonymous code of the person; empty for an anonymous contact."),
        ("operator_code", "Operator code of who recorded it (OP-…), never a name."),
        ("needs", "Needs expressed, separated by ';' (food, shelter, hygiene, …)."),
        ("actions", "What was given or done, separated by ';' (listening, meal_ticket, …)."),
        ("outcome", "resolved, referred, follow_up, declined or none."),
        ("case_id", "Number of the related case, if any."),
        ("service_id", "Number of the related service in the directory, if any."),
        ("source", "bot (recorded with /contact), case (from a closed case) or import."),
        ("notes", "Free notes: exported only with --include-notes, empty otherwise."),
    ],
    "people": [
        ("person_code", "Pseudonymous code (see the code scheme in the README)."),
        ("birth_year", "Year of birth, if known."),
        ("gender", "female, male, other, or empty if unknown."),
        ("nationality", "Citizenship, ISO 3166-1 alpha-2 code (IT, MA, RO, …)."),
        (
            "nationality_group",
            "italian, eu, europe_non_eu, africa, asia, americas, other, unknown.",
        ),
        ("languages", "Languages spoken, ISO 639-1 codes separated by ','."),
        (
            "resident_in_city",
            "yes if the last residence was in the city, no if not, empty if unknown.",
        ),
        ("housing", "ETHOS category: roofless, houseless, insecure, inadequate."),
        (
            "consent",
            "yes if consent to keep name and phone was recorded (they are never exported).",
        ),
        ("first_seen_at", "When the record was created, ISO 8601 in UTC."),
        ("contacts_in_period", "How many contacts this person had in the exported period."),
    ],
    "exchanges": [
        ("exchange_id", "Number of the exchange (one message in or out)."),
        ("occurred_at", "When, ISO 8601 in UTC."),
        ("direction", "in (from a user) or out (from the bot)."),
        ("kind", "command, text, callback, location, photo… or the Bot API method for out."),
        ("flow", "Which flow handled it (contact, stats, directory, …)."),
        ("role", "The role of the account at the time."),
        ("account_ref", "Internal account number (pseudonymous), never a Telegram id."),
        ("subject_type", "What it was about (person, case, …), if linked."),
        ("subject_id", "The number of that record."),
        ("failed", "yes if the update could not be handled or the message not sent."),
    ],
    "cases": [
        ("case_ref", "Short reference of the case (BS-DDMM-NN), as the team knows it."),
        ("kind", "report (a sighting) or urgent (police or railway staff asking to come)."),
        ("category", "sleeping_rough, health, minor, family, aggressive or other."),
        ("urgency", "emergency, today or not_urgent."),
        ("status", "new, taken, on_site or closed."),
        ("outcome", "helped, referred, refused, not_found, emergency_services or duplicate."),
        ("duplicate_of", "For a duplicate: the reference of the case it repeats, if given."),
        ("created_at", "When the report or request arrived, ISO 8601 in UTC."),
        ("local_date", "The day it arrived in the Help Center's time zone (YYYY-MM-DD)."),
        ("taken_at", "When the current owner took it, ISO 8601 in UTC."),
        ("on_site_at", "When the operator said they were on site, ISO 8601 in UTC."),
        ("closed_at", "When it was closed, ISO 8601 in UTC."),
        ("escalations", "How many times the alert was repeated because nobody took it."),
        ("owner_code", "Operator code of who handled it (OP-…), never a name."),
        ("notes", "Where, what and who as written: exported only with --include-notes."),
    ],
}


@dataclass(frozen=True)
class ExportOptions:
    period: Period
    include_notes: bool = False


def _iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _sorted_list(joined: str | None) -> str:
    return ";".join(sorted(v for v in (joined or "").split(";") if v))


def _aggregate(session: AsyncSession, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.string_agg(column, ";")
    return func.group_concat(column, ";")


async def _stream(session: AsyncSession, query: Any) -> AsyncIterator[Any]:
    result = await session.stream(query.execution_options(yield_per=STREAM_CHUNK))
    async for row in result:
        yield row


async def contact_rows(session: AsyncSession, options: ExportOptions) -> AsyncIterator[list[str]]:
    period = options.period
    needs = (
        select(ContactNeed.contact_id, _aggregate(session, ContactNeed.need).label("v"))
        .group_by(ContactNeed.contact_id)
        .subquery()
    )
    actions = (
        select(ContactAction.contact_id, _aggregate(session, ContactAction.action).label("v"))
        .group_by(ContactAction.contact_id)
        .subquery()
    )
    operator = aliased(Account)
    query = (
        select(
            Contact.id,
            Contact.occurred_at,
            Contact.channel,
            Contact.place,
            Person.code,
            operator.operator_code,
            needs.c.v.label("needs"),
            actions.c.v.label("actions"),
            Contact.outcome,
            Contact.case_id,
            Contact.service_id,
            Contact.source,
            Contact.notes,
        )
        .outerjoin(Person, Person.id == Contact.person_id)
        .outerjoin(operator, operator.id == Contact.operator_id)
        .outerjoin(needs, needs.c.contact_id == Contact.id)
        .outerjoin(actions, actions.c.contact_id == Contact.id)
        .where(Contact.occurred_at >= period.start, Contact.occurred_at < period.end)
        .order_by(Contact.occurred_at, Contact.id)
    )
    tz = period.tz
    async for row in _stream(session, query):
        yield [
            str(row.id),
            _iso(row.occurred_at),
            row.occurred_at.astimezone(tz).date().isoformat(),
            _text(row.channel),
            row.place or "",
            row.code or "",
            row.operator_code or "",
            _sorted_list(row.needs),
            _sorted_list(row.actions),
            _text(row.outcome),
            _text(row.case_id),
            _text(row.service_id),
            _text(row.source),
            (row.notes or "") if options.include_notes else "",
        ]


async def people_rows(session: AsyncSession, options: ExportOptions) -> AsyncIterator[list[str]]:
    period = options.period
    seen = (
        select(Contact.person_id, func.count().label("n"))
        .where(
            and_(Contact.occurred_at >= period.start, Contact.occurred_at < period.end),
            Contact.person_id.is_not(None),
        )
        .group_by(Contact.person_id)
        .subquery()
    )
    query = (
        select(Person, nationality_group_expression(), seen.c.n)
        .join(seen, seen.c.person_id == Person.id)
        .order_by(Person.code)
    )
    async for person, group, count in _stream(session, query):
        yield [
            person.code,
            _text(person.birth_year),
            _text(person.gender),
            person.nationality or "",
            group,
            person.languages or "",
            _yes_no(person.resident_in_city),
            _text(person.housing),
            "yes" if person.consent_at else "no",
            _iso(person.created_at),
            str(count),
        ]


async def exchange_rows(session: AsyncSession, options: ExportOptions) -> AsyncIterator[list[str]]:
    period = options.period
    query = (
        select(
            Exchange.id,
            Exchange.occurred_at,
            Exchange.direction,
            Exchange.kind,
            Exchange.flow,
            Exchange.role,
            Exchange.account_id,
            Exchange.subject_type,
            Exchange.subject_id,
            Exchange.error,
        )
        .where(Exchange.occurred_at >= period.start, Exchange.occurred_at < period.end)
        .order_by(Exchange.occurred_at, Exchange.id)
    )
    async for row in _stream(session, query):
        yield [
            str(row.id),
            _iso(row.occurred_at),
            _text(row.direction),
            row.kind or "",
            row.flow or "",
            row.role or "",
            _text(row.account_id),
            row.subject_type or "",
            _text(row.subject_id),
            "yes" if row.error else "no",
        ]


async def case_rows(session: AsyncSession, options: ExportOptions) -> AsyncIterator[list[str]]:
    period = options.period
    owner = aliased(Account)
    original = aliased(Case)
    query = (
        select(Case, owner.operator_code, original.reference)
        .outerjoin(owner, owner.id == Case.owner_id)
        .outerjoin(original, original.id == Case.duplicate_of_id)
        .where(Case.created_at >= period.start, Case.created_at < period.end)
        .order_by(Case.created_at, Case.id)
    )
    async for case, owner_code, duplicate_of in _stream(session, query):
        yield [
            case.reference,
            case.kind.value,
            case.category.value,
            case.urgency.value,
            case.status.value,
            case.outcome.value if case.outcome else "",
            duplicate_of or "",
            _iso(case.created_at),
            case.created_at.astimezone(period.tz).date().isoformat(),
            _iso(case.taken_at),
            _iso(case.on_site_at),
            _iso(case.closed_at),
            str(case.escalation_step),
            owner_code or "",
            _case_notes(case) if options.include_notes else "",
        ]


def _case_notes(case: Case) -> str:
    parts = [("where", case.place), ("what", case.seen), ("person", case.person)]
    return "; ".join(f"{label}: {text}" for label, text in parts if text)


# Every table of an export, in this order (its columns in :data:`COLUMNS`).
RowSource = Callable[[AsyncSession, ExportOptions], AsyncIterator[list[str]]]
TABLES: dict[str, RowSource] = {
    "contacts": contact_rows,
    "people": people_rows,
    "exchanges": exchange_rows,
    "cases": case_rows,
}


def _record_export(
    session: AsyncSession, actor: Account | None, options: ExportOptions, fmt: str
) -> None:
    period = options.period
    detail = f"{fmt} {period.first_day}..{period.last_day} notes={options.include_notes}"
    audit(session, actor, "data_exported", detail=detail)


async def export_csv(
    session: AsyncSession, options: ExportOptions, directory: Path, *, actor: Account | None
) -> dict[str, int]:
    """One CSV file per table in ``directory`` (UTF-8, header row); returns rows per table.

    For the command line only (local files, written as rows stream in), not for the bot.
    """
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    counts: dict[str, int] = {}
    for name, source in TABLES.items():
        path = directory / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([column for column, _doc in COLUMNS[name]])
            counts[name] = 0
            with off_the_loop():  # a year's rows: long work
                async for row in source(session, options):
                    writer.writerow(row)
                    counts[name] += 1
    _record_export(session, actor, options, "csv")
    return counts


async def export_xlsx(
    session: AsyncSession, options: ExportOptions, *, actor: Account | None
) -> tuple[bytes, dict[str, int]]:
    """One workbook: a sheet per table and a ``columns`` sheet with the dictionary."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    counts: dict[str, int] = {}
    for name, source in TABLES.items():
        sheet = workbook.create_sheet(name)
        sheet.append([column for column, _doc in COLUMNS[name]])
        counts[name] = 0
        with off_the_loop():  # a year's rows: long work
            async for row in source(session, options):
                sheet.append(row)
                counts[name] += 1
    dictionary = workbook.create_sheet("columns")
    dictionary.append(["table", "column", "meaning"])
    for name, columns in COLUMNS.items():
        for column, doc in columns:
            dictionary.append([name, column, doc])
    buffer = io.BytesIO()
    workbook.save(buffer)
    _record_export(session, actor, options, "xlsx")
    return buffer.getvalue(), counts


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_xlsx(data: bytes) -> dict[str, list[dict[str, str]]]:
    """Read an export back (for checks and round-trip tests): sheet → rows as dicts."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True)
    tables: dict[str, list[dict[str, str]]] = {}
    for sheet in workbook.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        header = [str(h) for h in rows[0]] if rows else []
        tables[sheet.title] = [
            {h: "" if v is None else str(v) for h, v in zip(header, row, strict=False)}
            for row in rows[1:]
        ]
    return tables
