"""Where cases meet the contact database and the directory's bed counts.

The contacts feature left seams for the cases and directory work; this module plugs them in
(imported at the end of :mod:`models.cases`, so importing ``models`` registers everything):

* a closed case in which someone met the person leaves one contact (:func:`contact_for_case`,
  called by :func:`models.cases.move_case` in the transaction that closes the case);
* ``/stats`` gets urgent cases with response times (:func:`urgent_figures`) and bed occupancy
  (:func:`bed_figures`);
* exports get a pseudonymous ``cases`` table (:func:`case_rows`);
* ``/forget`` and the retention job reach what cases hold (:func:`forget_reporter`,
  :func:`case_retention`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.accounts import Account
from models.cases import Case, CaseEvent, CaseKind, CaseStatus
from models.cases import Outcome as CaseOutcome
from models.contact_export import ExportOptions, register_table
from models.contacts import Action, Contact, contact_from_closed_case
from models.contacts import Outcome as ContactOutcome
from models.directory import BedCountChange
from models.privacy import register_forget_step, register_retention_step
from models.stats import BedFigures, UrgentFigures, register_provider, response_time_figures

# ---- a closed case leaves a contact ----------------------------------------------------------

# Outcomes in which an operator met the person: they are a contact. "Not found" and
# "duplicate" met nobody, so they leave none (the case itself still counts in /stats).
MET_OUTCOMES: dict[CaseOutcome, ContactOutcome] = {
    CaseOutcome.HELPED: ContactOutcome.RESOLVED,
    CaseOutcome.REFERRED: ContactOutcome.REFERRED,
    CaseOutcome.EMERGENCY_SERVICES: ContactOutcome.REFERRED,
    CaseOutcome.REFUSED: ContactOutcome.DECLINED,
}
OUTCOME_ACTIONS: dict[CaseOutcome, tuple[Action, ...]] = {
    CaseOutcome.REFERRED: (Action.REFERRAL,),
    CaseOutcome.EMERGENCY_SERVICES: (Action.REFERRAL,),
}


async def contact_for_case(session: AsyncSession, case: Case) -> Contact | None:
    """The contact a just-closed case leaves behind, at most one per case (a case closed,
    reopened and closed again keeps its first). Anonymous: a case knows no person code; the
    operator links it with /contact if they know who it was. No free text is copied."""
    if case.outcome is None or case.outcome not in MET_OUTCOMES:
        return None
    met_at = case.on_site_at or case.closed_at
    assert met_at is not None
    return await contact_from_closed_case(
        session,
        case_id=case.id,
        occurred_at=met_at,
        operator_id=case.owner_id,
        outcome=MET_OUTCOMES[case.outcome],
        actions=OUTCOME_ACTIONS.get(case.outcome, ()),
    )


# ---- /stats ----------------------------------------------------------------------------------


async def urgent_figures(session: AsyncSession, start: datetime, end: datetime) -> UrgentFigures:
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


async def bed_figures(session: AsyncSession, start: datetime, end: datetime) -> BedFigures:
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


# ---- exports ---------------------------------------------------------------------------------

CASE_COLUMNS: list[tuple[str, str]] = [
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
]


def _iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _case_notes(case: Case) -> str:
    parts = [("where", case.place), ("what", case.seen), ("person", case.person)]
    return "; ".join(f"{label}: {text}" for label, text in parts if text)


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
    result = await session.stream(query.execution_options(yield_per=1000))
    async for case, owner_code, duplicate_of in result:
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


# ---- privacy ---------------------------------------------------------------------------------


async def forget_reporter(session: AsyncSession, account: Account) -> dict[str, int]:
    """``/forget`` by someone who reported cases: the link to them goes, the cases stay.

    A case is the team's record of a person in distress, not of the reporter: what was seen
    and where is kept (until retention), but nothing says any more who reported it (the case
    row and its "created" history line lose the account). A half-written report goes with
    the rest of their conversation (``models.privacy.forget_account``).
    """
    cases = await session.execute(
        update(Case)
        .where(Case.reporter_id == account.id)
        .values(reporter_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CaseEvent)
        .where(CaseEvent.actor_id == account.id, CaseEvent.action == "created")
        .values(actor_id=None)
        .execution_options(synchronize_session=False)
    )
    return {"cases": int(getattr(cases, "rowcount", 0) or 0)}


async def case_retention(
    session: AsyncSession, text_cutoff: datetime, photo_cutoff: datetime
) -> dict[str, int]:
    """Photos (Telegram file ids) older than the photo retention go, open cases included;
    closed cases past the retention period lose their free texts and the map pin (where a
    person sleeps is as telling as a name). Abandoned drafts: ``models.conversation``."""
    photos = await session.execute(
        update(Case)
        .where(Case.created_at < photo_cutoff, Case.photo_file_id.is_not(None))
        .values(photo_file_id=None)
        .execution_options(synchronize_session=False)
    )
    texts = await session.execute(
        update(Case)
        .where(
            Case.status == CaseStatus.CLOSED,
            Case.closed_at < text_cutoff,
            or_(
                Case.place.is_not(None),
                Case.seen.is_not(None),
                Case.person.is_not(None),
                Case.latitude.is_not(None),
            ),
        )
        .values(place=None, seen=None, person=None, latitude=None, longitude=None)
        .execution_options(synchronize_session=False)
    )
    return {
        "case_photos": int(getattr(photos, "rowcount", 0) or 0),
        "case_texts": int(getattr(texts, "rowcount", 0) or 0),
    }


register_provider("urgent", urgent_figures)
register_provider("beds", bed_figures)
register_table("cases", CASE_COLUMNS, case_rows)
register_forget_step(forget_reporter)
register_retention_step(case_retention)
