"""Cases: reports of a sighting and urgent requests, from the first word to a closed outcome.

A case moves through a small, explicit lifecycle (:data:`TRANSITIONS`); every move is a
:class:`CaseEvent` row with who and when. "The first operator to press Take wins" is a
database fact: :func:`take_case` is one conditional ``UPDATE … WHERE status='new' AND
owner_id IS NULL`` whose row count says who won, so it holds across workers and processes.

Escalation is state in the case row (``escalation_step``, ``next_escalation_at``): a sweep
finds overdue cases and advances each by one step with another conditional update, so after
a restart an overdue case escalates at once, and never twice for the same step.

Half-written reports and requests are open flows of the person's conversation
(:mod:`models.conversation`), written in the update's own transaction, so a restart in the
middle of a conversation loses nothing.

A case closed after someone met the person leaves one anonymous contact in the contact
database (:func:`contact_for_case`), in the transaction that closes it. What ``/stats``, the
exports and ``/forget`` make of cases is in :mod:`models.stats`, :mod:`models.contact_export`
and :mod:`models.privacy`, which import this module.

This module renders no text and imports nothing from ``telegram``. A move returns a
:class:`CaseMove`; who is told what about it is decided in :mod:`models.case_notices`, and the
handlers turn that into messages in each recipient's language.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models import contacts
from models.accounts import Account, audit
from models.base import Base, BigId, clock
from models.db import insert_ignore, rows_affected
from models.outbox import OutboxMessage, OutboxStatus
from models.roles import Permission, Role, can


def _enum(e: type[enum.Enum], length: int = 20) -> Any:
    return Enum(e, native_enum=False, length=length, values_callable=lambda m: [x.value for x in m])


class CaseKind(enum.StrEnum):
    REPORT = "report"  # a sighting reported by a volunteer or an operator
    URGENT = "urgent"  # police or railway staff asking for someone to come now
    HELP_REQUEST = "help_request"  # a person in need writing to the Help Center


class CaseStatus(enum.StrEnum):
    NEW = "new"
    TAKEN = "taken"
    ON_SITE = "on_site"
    CLOSED = "closed"


class Category(enum.StrEnum):
    SLEEPING_ROUGH = "sleeping_rough"
    HEALTH = "health"
    MINOR = "minor"
    FAMILY = "family"
    AGGRESSIVE = "aggressive"
    OTHER = "other"


class Urgency(enum.StrEnum):
    EMERGENCY = "emergency"  # the reporter is told to call 112 first
    TODAY = "today"
    NOT_URGENT = "not_urgent"


class CaseOutcome(enum.StrEnum):
    HELPED = "helped"
    REFERRED = "referred"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    EMERGENCY_SERVICES = "emergency_services"
    DUPLICATE = "duplicate"


class Action(enum.StrEnum):
    TAKE = "take"
    ARRIVE = "arrive"
    CLOSE = "close"
    REOPEN = "reopen"
    RELEASE = "release"


# The lifecycle, all of it: (status, action) -> new status. Anything else is refused.
TRANSITIONS: dict[tuple[CaseStatus, Action], CaseStatus] = {
    (CaseStatus.NEW, Action.TAKE): CaseStatus.TAKEN,
    (CaseStatus.NEW, Action.CLOSE): CaseStatus.CLOSED,  # e.g. a duplicate nobody needs to take
    (CaseStatus.TAKEN, Action.ARRIVE): CaseStatus.ON_SITE,
    (CaseStatus.TAKEN, Action.CLOSE): CaseStatus.CLOSED,
    (CaseStatus.TAKEN, Action.RELEASE): CaseStatus.NEW,
    (CaseStatus.ON_SITE, Action.CLOSE): CaseStatus.CLOSED,
    (CaseStatus.CLOSED, Action.REOPEN): CaseStatus.TAKEN,  # whoever reopens it owns it
}

# Outbox kinds of alerts: urgent ones start with "urgent" (the dispatcher times those).
REPORT_ALERT = "alert"
URGENT_ALERT = "urgent_alert"
ALERT_KINDS = (REPORT_ALERT, URGENT_ALERT)

OPEN_STATUSES = (CaseStatus.NEW, CaseStatus.TAKEN, CaseStatus.ON_SITE)
# Besides the owner, who may move a case someone else owns.
SUPERVISORS = frozenset({Role.COORDINATOR, Role.ADMIN})


class TransitionRefused(Exception):
    """The case is not in a state where this action makes sense (or the actor may not)."""


def next_status(status: CaseStatus, action: Action) -> CaseStatus:
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise TransitionRefused(f"{action.value} from {status.value}") from None


# The order of a case card's buttons.
ACTION_ORDER = (Action.TAKE, Action.ARRIVE, Action.CLOSE, Action.RELEASE, Action.REOPEN)


def actions_for(actor: Account, case: Case) -> list[Action]:
    """What this person may do to this case now, in the order of the card's buttons."""
    return [
        action
        for action in ACTION_ORDER
        if (case.status, action) in TRANSITIONS and may_act(actor, case, action)
    ]


def may_act(actor: Account, case: Case, action: Action) -> bool:
    """Staff may take and reopen; only the owner (or a coordinator) moves a taken case."""
    if not can(actor.role, Permission.HANDLE_CASES):
        return False
    if action in (Action.TAKE, Action.REOPEN):
        return True
    if case.owner_id is None:
        return actor.role in SUPERVISORS
    return case.owner_id == actor.id or actor.role in SUPERVISORS


class Case(Base):
    __tablename__ = "help_case"
    __table_args__ = (
        Index("ix_help_case_status_escalation", "status", "next_escalation_at"),
        Index("ix_help_case_owner_status", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[CaseKind] = mapped_column(_enum(CaseKind))
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.NEW)
    category: Mapped[Category] = mapped_column(_enum(Category), default=Category.OTHER)
    urgency: Mapped[Urgency] = mapped_column(_enum(Urgency), default=Urgency.TODAY)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    place: Mapped[str | None] = mapped_column(Text)  # a described place, when no pin was shared
    seen: Mapped[str | None] = mapped_column(Text)  # what was seen / what is needed
    person: Mapped[str | None] = mapped_column(Text)  # a rough description, no names
    photo_file_id: Mapped[str | None] = mapped_column(String(200))  # Telegram's id, never a copy
    outcome: Mapped[CaseOutcome | None] = mapped_column(_enum(CaseOutcome))
    # Closed as a duplicate: the case it duplicates, if the operator named it.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("help_case.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    taken_at: Mapped[datetime | None]
    on_site_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None]
    # Nobody could be alerted about this case (nobody reachable when it was opened, or every
    # alert refused): the sweep alerts the first staff member who becomes reachable.
    unalerted_since: Mapped[datetime | None]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class CaseEvent(Base):
    """One line of a case's history: a transition, an alert round, a refusal to take."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("help_case.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=clock.now)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str | None] = mapped_column(String(12))
    detail: Mapped[str | None] = mapped_column(Text)


class CaseCounter(Base):
    """Per-day sequence behind the short references (``BS-2611-07``)."""

    __tablename__ = "case_counter"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


# ---------------------------------------------------------------------------------------------
# Opening a case
# ---------------------------------------------------------------------------------------------


async def next_reference(session: AsyncSession, prefix: str, tz: ZoneInfo) -> str:
    """``PREFIX-DDMM-NN``: the local day and the case's number that day (race-free).

    The counter row is incremented with one ``UPDATE … RETURNING``; the row lock serialises
    concurrent openings, so two cases never get the same number.
    """
    local = clock.now().astimezone(tz)
    day = local.strftime("%Y%m%d")
    await insert_ignore(session, CaseCounter.__table__, [{"day": day, "last": 0}], ["day"])
    result = await session.execute(
        update(CaseCounter)
        .where(CaseCounter.day == day)
        .values(last=CaseCounter.last + 1)
        .returning(CaseCounter.last)
    )
    number = int(result.scalar_one())
    return f"{prefix}-{local:%d%m}-{number:02d}"


def record(
    session: AsyncSession,
    case: Case,
    action: str,
    actor: Account | None,
    *,
    from_status: CaseStatus | None = None,
    detail: str | None = None,
) -> CaseEvent:
    event = CaseEvent(
        case_id=case.id,
        at=clock.now(),
        actor_id=actor.id if actor else None,
        action=action,
        from_status=from_status.value if from_status else None,
        to_status=case.status.value,
        detail=detail,
    )
    session.add(event)
    return event


@dataclass
class NewCase:
    kind: CaseKind
    category: Category = Category.OTHER
    urgency: Urgency = Urgency.TODAY
    latitude: float | None = None
    longitude: float | None = None
    place: str | None = None
    seen: str | None = None
    person: str | None = None
    photo_file_id: str | None = None


async def open_case(
    session: AsyncSession,
    reporter: Account,
    facts: NewCase,
    *,
    prefix: str,
    tz: ZoneInfo,
    first_escalation: timedelta,
) -> Case:
    now = clock.now()
    case = Case(
        reference=await next_reference(session, prefix, tz),
        kind=facts.kind,
        status=CaseStatus.NEW,
        category=facts.category,
        urgency=facts.urgency,
        reporter_id=reporter.id,
        latitude=facts.latitude,
        longitude=facts.longitude,
        place=facts.place,
        seen=facts.seen,
        person=facts.person,
        photo_file_id=facts.photo_file_id,
        created_at=now,
        escalation_step=0,
        next_escalation_at=now + first_escalation,
    )
    session.add(case)
    await session.flush()
    record(session, case, "created", reporter, detail=facts.kind.value)
    return case


# ---------------------------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------------------------


class Move(enum.StrEnum):
    """What happened to a case, as :func:`models.case_notices.notices_for` is told it."""

    OPENED = "opened"
    TAKEN = "taken"
    ARRIVED = "arrived"
    CLOSED = "closed"
    REOPENED = "reopened"
    RELEASED = "released"  # handed back: unassigned again
    ESCALATED = "escalated"  # nobody took it in time: a reminder round
    ALERTED_LATE = "alerted_late"  # nobody could be alerted; now someone can
    ALERTS_LOST = "alerts_lost"  # every alert was refused: nobody has it


MOVE_OF_ACTION = {
    Action.TAKE: Move.TAKEN,
    Action.ARRIVE: Move.ARRIVED,
    Action.CLOSE: Move.CLOSED,
    Action.REOPEN: Move.REOPENED,
    Action.RELEASE: Move.RELEASED,
}


@dataclass(frozen=True)
class CaseMove:
    """A case transition, as every path that moves a case describes it.

    ``actor`` is who moved it (None: a sweep, the dispatcher); ``event_id`` its history line,
    which keys what it causes (each message queued once); ``round`` the alert round it starts
    (opened: None, the first round is chosen when it is announced).
    """

    what: Move
    case: Case
    actor: Account | None = None
    event_id: int | None = None
    round: AlertRound | None = None


@dataclass
class TakeResult:
    won: bool
    case: Case
    owner: Account | None
    move: CaseMove | None = None  # the take, when won


async def take_case(session: AsyncSession, case_id: int, operator: Account) -> TakeResult:
    """The first caller wins: a conditional update, its row count is the verdict."""
    now = clock.now()
    result = await session.execute(
        update(Case)
        .where(Case.id == case_id, Case.status == CaseStatus.NEW, Case.owner_id.is_(None))
        .values(
            status=CaseStatus.TAKEN,
            owner_id=operator.id,
            taken_at=now,
            next_escalation_at=None,
            unalerted_since=None,
        )
        .execution_options(synchronize_session=False)
    )
    won = rows_affected(result) == 1
    case = await session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise LookupError(case_id)
    owner = await session.get(Account, case.owner_id) if case.owner_id else None
    if not won:
        return TakeResult(won, case, owner)
    event = record(session, case, "taken", operator, from_status=CaseStatus.NEW)
    await session.flush()
    return TakeResult(won, case, owner, CaseMove(Move.TAKEN, case, operator, event.id))


async def decline_case(session: AsyncSession, case: Case, operator: Account) -> bool:
    """An operator says they can't. True if every alerted on-duty operator has now declined,
    in which case the next escalation step is brought forward to now."""
    record(session, case, "declined", operator, from_status=case.status)
    await session.flush()
    if case.status is not CaseStatus.NEW:
        return False
    decliners = await _decliners(session, case.id)
    on_duty = {a.id for a in await on_duty_operators(session)}
    if on_duty and on_duty <= decliners:
        case.next_escalation_at = clock.now()
        return True
    return False


async def move_case(
    session: AsyncSession,
    case: Case,
    action: Action,
    actor: Account,
    *,
    outcome: CaseOutcome | None = None,
    detail: str | None = None,
    duplicate_of: int | None = None,
) -> CaseMove:
    """Any transition except the first take (see :func:`take_case`), with its history line.

    Closing records the outcome (and, for a duplicate, the case it repeats) and, when
    someone met the person, the contact it leaves (:func:`contact_for_case`), all in the
    caller's transaction. Returns the move, for whoever must be told
    (:func:`models.case_notices.notices_for`).
    """
    if not may_act(actor, case, action):
        raise TransitionRefused(f"{action.value} not allowed to {actor.role.value}")
    previous = case.status
    target = next_status(previous, action)
    now = clock.now()
    guarded = await session.execute(
        update(Case)
        .where(Case.id == case.id, Case.status == previous)
        .values(status=target)
        .execution_options(synchronize_session=False)
    )
    if rows_affected(guarded) != 1:
        raise TransitionRefused("changed meanwhile")
    await session.refresh(case)
    if action is Action.ARRIVE:
        case.on_site_at = now
    elif action is Action.CLOSE:
        if outcome is None:
            raise TransitionRefused("closing needs an outcome")
        case.outcome = outcome
        case.closed_at = now
        case.next_escalation_at = None
        case.unalerted_since = None
        if case.owner_id is None:
            case.owner_id = actor.id
        case.duplicate_of_id = duplicate_of if outcome is CaseOutcome.DUPLICATE else None
    elif action is Action.REOPEN:
        case.owner_id = actor.id
        case.outcome = None
        case.duplicate_of_id = None
        case.closed_at = None
        case.taken_at = now
    elif action is Action.RELEASE:
        case.owner_id = None
        case.taken_at = None
        case.on_site_at = None
        case.escalation_step = 0
        case.next_escalation_at = now  # re-alert at the next sweep
    event = record(
        session,
        case,
        action.value if action is not Action.CLOSE else "closed",
        actor,
        from_status=previous,
        detail=outcome.value if outcome else detail,
    )
    await session.flush()
    if action is Action.CLOSE:
        await contact_for_case(session, case)
    return CaseMove(MOVE_OF_ACTION[action], case, actor, event.id)


# Outcomes in which an operator met the person: they are a contact. "Not found" and
# "duplicate" met nobody, so they leave none (the case itself still counts in /stats).
MET_OUTCOMES: dict[CaseOutcome, contacts.ContactOutcome] = {
    CaseOutcome.HELPED: contacts.ContactOutcome.RESOLVED,
    CaseOutcome.REFERRED: contacts.ContactOutcome.REFERRED,
    CaseOutcome.EMERGENCY_SERVICES: contacts.ContactOutcome.REFERRED,
    CaseOutcome.REFUSED: contacts.ContactOutcome.DECLINED,
}
OUTCOME_ACTIONS: dict[CaseOutcome, tuple[contacts.Action, ...]] = {
    CaseOutcome.REFERRED: (contacts.Action.REFERRAL,),
    CaseOutcome.EMERGENCY_SERVICES: (contacts.Action.REFERRAL,),
}


async def contact_for_case(session: AsyncSession, case: Case) -> contacts.Contact | None:
    """The contact a just-closed case leaves behind, at most one per case (a case closed,
    reopened and closed again keeps its first). Anonymous: a case knows no person code; the
    operator links it with /contact if they know who it was. No free text is copied."""
    if case.outcome is None or case.outcome not in MET_OUTCOMES:
        return None
    met_at = case.on_site_at or case.closed_at
    assert met_at is not None
    return await contacts.contact_from_closed_case(
        session,
        case_id=case.id,
        occurred_at=met_at,
        operator_id=case.owner_id,
        outcome=MET_OUTCOMES[case.outcome],
        actions=OUTCOME_ACTIONS.get(case.outcome, ()),
    )


# ---------------------------------------------------------------------------------------------
# Who gets alerted, and escalation
# ---------------------------------------------------------------------------------------------


def _case_handlers() -> list[Role]:
    return [role for role in Role if can(role, Permission.HANDLE_CASES)]


async def on_duty_operators(session: AsyncSession) -> list[Account]:
    query = (
        select(Account)
        .where(
            Account.on_duty.is_(True),
            Account.role.in_(_case_handlers()),
            Account.unreachable_since.is_(None),
        )
        .order_by(Account.id)
    )
    return list(await session.scalars(query))


async def coordinators(session: AsyncSession) -> list[Account]:
    """Coordinators; if the team has none yet, the administrators."""
    for roles in ([Role.COORDINATOR], [Role.ADMIN]):
        found = list(
            await session.scalars(
                select(Account)
                .where(Account.role.in_(roles), Account.unreachable_since.is_(None))
                .order_by(Account.id)
            )
        )
        if found:
            return found
    return []


@dataclass
class AlertRound:
    """Who to alert for a case at an escalation step, and whether anyone was on duty.

    ``late`` is set on the round that finally reaches someone about an unalerted case: the
    moment the case had been unalerted since, which keys its messages (enqueued once).
    ``handed_back`` is the history line of the case's last hand-back, if any: its steps count
    again from there, so its rounds need keys of their own.
    """

    case: Case
    step: int
    recipients: list[Account]
    nobody_on_duty: bool
    late: datetime | None = None
    handed_back: int | None = None

    @property
    def key(self) -> str:
        """What tells this round's alerts apart from every other round's (dedupe keys)."""
        if self.late is not None:
            return f"late:{self.late.timestamp():.6f}"
        if self.handed_back is not None:
            return f"escalation:{self.handed_back}:{self.step}"
        return f"escalation:{self.step}"


async def alert_recipients(
    session: AsyncSession, step: int, case_id: int | None = None
) -> tuple[list[Account], bool]:
    """Step 0 and 1: the on-duty operators who have not said they can't; step 2 and later:
    coordinators too. With nobody (able) on duty, coordinators from the first step.

    The second value says whether nobody at all was on duty (the requester is told so).
    """
    on_duty = await on_duty_operators(session)
    declined = await _decliners(session, case_id) if case_id is not None else set()
    chosen = [a for a in on_duty if a.id not in declined]
    if step >= 2 or not chosen:
        known = {a.id for a in chosen}
        chosen += [a for a in await coordinators(session) if a.id not in known]
    return chosen, not on_duty


async def _last_hand_back(session: AsyncSession, case_id: int) -> int | None:
    """The history line of the case's last hand-back (None: never handed back)."""
    query = select(func.max(CaseEvent.id)).where(
        CaseEvent.case_id == case_id, CaseEvent.action == Action.RELEASE.value
    )
    return await session.scalar(query)


async def _decliners(session: AsyncSession, case_id: int) -> set[int]:
    query = select(CaseEvent.actor_id).where(
        CaseEvent.case_id == case_id, CaseEvent.action == "declined"
    )
    return {actor for actor in await session.scalars(query) if actor is not None}


def escalation_delay(step: int, *, first: timedelta, repeat: timedelta) -> timedelta:
    """Time from step ``step`` to the next: the first two gaps are ``first``, then ``repeat``."""
    return first if step < 2 else repeat


async def claim_due_escalations(
    session: AsyncSession,
    *,
    first: timedelta,
    repeat: timedelta,
    skip_locked: bool,
    limit: int = 100,
) -> list[AlertRound]:
    """Advance every overdue unassigned case by exactly one step.

    The step is advanced with a conditional update on the step it was read at, so two
    sweeps (two workers, or a sweep racing a restart) cannot both escalate the same step.
    """
    now = clock.now()
    query = (
        select(Case)
        .where(Case.status == CaseStatus.NEW, Case.next_escalation_at <= now)
        .order_by(Case.next_escalation_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rounds: list[AlertRound] = []
    for case in list(await session.scalars(query)):
        step = case.escalation_step + 1
        advanced = await session.execute(
            update(Case)
            .where(
                Case.id == case.id,
                Case.escalation_step == case.escalation_step,
                Case.status == CaseStatus.NEW,
            )
            .values(
                escalation_step=step,
                next_escalation_at=now + escalation_delay(step, first=first, repeat=repeat),
            )
            .execution_options(synchronize_session=False)
        )
        if rows_affected(advanced) != 1:
            continue
        await session.refresh(case)
        recipients, nobody = await alert_recipients(session, step, case.id)
        record(session, case, "escalated", None, detail=f"step {step}: {len(recipients)} alerted")
        handed_back = await _last_hand_back(session, case.id)
        rounds.append(AlertRound(case, step, recipients, nobody, handed_back=handed_back))
    return rounds


# ---------------------------------------------------------------------------------------------
# Cases nobody could be alerted about
# ---------------------------------------------------------------------------------------------


def mark_unalerted(session: AsyncSession, case: Case) -> None:
    """Nobody can receive an alert about ``case``: it says so until someone is alerted."""
    if case.unalerted_since is None:
        case.unalerted_since = clock.now()
        record(session, case, "unalerted", None)


async def claim_unalerted(
    session: AsyncSession, *, skip_locked: bool, limit: int = 100
) -> list[AlertRound]:
    """Unassigned cases nobody has been alerted about, with whoever can be alerted now.

    Each round carries the ``unalerted_since`` it was read with: :func:`mark_alerted` clears
    it with a conditional update on that value, so two sweeps (two workers) never both alert
    for it. A case with nobody to alert yet comes with an empty round (the caller may still
    have a team chat to alert).
    """
    query = (
        select(Case)
        .where(Case.status == CaseStatus.NEW, Case.unalerted_since.is_not(None))
        .order_by(Case.unalerted_since)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rounds: list[AlertRound] = []
    for case in list(await session.scalars(query)):
        since = case.unalerted_since
        assert since is not None
        recipients, nobody = await alert_recipients(session, case.escalation_step, case.id)
        rounds.append(AlertRound(case, case.escalation_step, recipients, nobody, late=since))
    return rounds


async def mark_alerted(session: AsyncSession, case: Case, since: datetime, *, alerted: int) -> bool:
    """A round reached someone about a case unalerted since ``since``: it no longer is.
    False if another sweep got there first (its alerts are then the ones sent)."""
    done = await session.execute(
        update(Case)
        .where(Case.id == case.id, Case.unalerted_since == since)
        .values(unalerted_since=None)
        .execution_options(synchronize_session=False)
    )
    if rows_affected(done) != 1:
        return False
    case.unalerted_since = None
    record(session, case, "alerted_late", None, detail=f"{alerted} alerted")
    return True


async def unalerted_unless_delivered(session: AsyncSession, case_id: int) -> bool:
    """After an alert round that reached nobody, or an alert that failed for good: if no
    alert of the case is sent or on its way, nobody has it, and an unassigned case becomes
    unalerted. True if it did."""
    case = await session.get(Case, case_id)
    if case is None or case.status is not CaseStatus.NEW or case.unalerted_since is not None:
        return False
    alive = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.subject_type == "case",
            OutboxMessage.subject_id == case_id,
            OutboxMessage.kind.in_(ALERT_KINDS),
            OutboxMessage.status.in_(
                [OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT]
            ),
        )
    )
    if alive:
        return False
    mark_unalerted(session, case)
    return True


def _case_alerts(*statuses: OutboxStatus) -> Any:
    return (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.subject_type == "case",
            OutboxMessage.subject_id == Case.id,
            OutboxMessage.kind.in_(ALERT_KINDS),
            OutboxMessage.status.in_(statuses),
        )
        .exists()
    )


async def unalerted_after_refusals(session: AsyncSession, *, limit: int = 100) -> list[Case]:
    """The sweep's backstop for :func:`unalerted_unless_delivered`: unassigned cases whose
    alerts all failed but that are not marked unalerted (two alerts failing at the same
    moment in two transactions each see the other still on its way). Marks and returns them.
    """
    query = (
        select(Case)
        .where(
            Case.status == CaseStatus.NEW,
            Case.unalerted_since.is_(None),
            _case_alerts(OutboxStatus.FAILED),
            ~_case_alerts(OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT),
        )
        .order_by(Case.id)
        .limit(limit)
    )
    found = list(await session.scalars(query))
    for case in found:
        mark_unalerted(session, case)
    return found


async def count_unalerted(session: AsyncSession) -> int:
    query = (
        select(func.count())
        .select_from(Case)
        .where(Case.status == CaseStatus.NEW, Case.unalerted_since.is_not(None))
    )
    return int(await session.scalar(query) or 0)


async def alertable_staff(session: AsyncSession) -> list[Account]:
    """Who would receive the first alert of a case opened now (empty: nobody)."""
    recipients, _ = await alert_recipients(session, 0)
    return recipients


async def sent_alerts(session: AsyncSession, case_id: int) -> list[OutboxMessage]:
    """Alerts about a case that Telegram accepted (they have a message id to edit)."""
    query = select(OutboxMessage).where(
        OutboxMessage.subject_type == "case",
        OutboxMessage.subject_id == case_id,
        OutboxMessage.kind.in_(ALERT_KINDS),
        OutboxMessage.status == OutboxStatus.SENT,
        OutboxMessage.message_id.is_not(None),
    )
    return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class CaseFilter(enum.StrEnum):
    MINE = "mine"
    UNASSIGNED = "unassigned"
    ALL = "all"


# How pressing a case is, most pressing first: an urgent request (someone asks the team to
# come now) ranks with a reported emergency. The desk lists by this rank, then by age.
PRESSING_EMERGENCY, PRESSING_TODAY, PRESSING_LATER = 0, 1, 2


def pressing_rank(kind: CaseKind, urgency: Urgency) -> int:
    if kind is CaseKind.URGENT or urgency is Urgency.EMERGENCY:
        return PRESSING_EMERGENCY
    return PRESSING_TODAY if urgency is Urgency.TODAY else PRESSING_LATER


def _pressing_rank_column() -> Any:
    """:func:`pressing_rank` as SQL, so the database sorts and the limit keeps the right ones."""
    return sql_case(
        (Case.kind == CaseKind.URGENT, PRESSING_EMERGENCY),
        (Case.urgency == Urgency.EMERGENCY, PRESSING_EMERGENCY),
        (Case.urgency == Urgency.TODAY, PRESSING_TODAY),
        else_=PRESSING_LATER,
    )


async def open_cases(
    session: AsyncSession, viewer: Account, which: CaseFilter, *, limit: int = 20
) -> list[Case]:
    """Open cases, most pressing first, then the oldest first (waiting longest)."""
    query = select(Case).where(Case.status.in_(OPEN_STATUSES))
    if which is CaseFilter.MINE:
        query = query.where(Case.owner_id == viewer.id)
    elif which is CaseFilter.UNASSIGNED:
        query = query.where(Case.owner_id.is_(None))
    query = query.order_by(_pressing_rank_column(), Case.created_at, Case.id).limit(limit)
    return list(await session.scalars(query))


async def cases_reported_by(
    session: AsyncSession, reporter: Account, *, limit: int = 15
) -> list[Case]:
    """The reports and urgent requests ``reporter`` made, the latest first (closed included)."""
    query = (
        select(Case)
        .where(Case.reporter_id == reporter.id)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


async def count_unassigned(session: AsyncSession) -> int:
    query = select(func.count()).select_from(Case).where(Case.status == CaseStatus.NEW)
    return int(await session.scalar(query) or 0)


async def case_by_id(session: AsyncSession, case_id: int) -> Case | None:
    return await session.get(Case, case_id)


async def duplicate_candidates(session: AsyncSession, case: Case, *, limit: int = 6) -> list[Case]:
    """The cases a duplicate most likely repeats: the latest others opened before it."""
    query = (
        select(Case)
        .where(Case.id != case.id, Case.created_at <= case.created_at)
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


async def mark_duplicate_of(
    session: AsyncSession, case: Case, original: Case, actor: Account
) -> bool:
    """Record which case a case closed as a duplicate repeats (a history line says so)."""
    if case.outcome is not CaseOutcome.DUPLICATE or original.id == case.id:
        return False
    if not may_act(actor, case, Action.CLOSE):  # the one who closed it, or a coordinator
        return False
    case.duplicate_of_id = original.id
    record(session, case, "duplicate_of", actor, from_status=case.status, detail=original.reference)
    await session.flush()
    return True


async def case_by_reference(session: AsyncSession, reference: str) -> Case | None:
    return await session.scalar(select(Case).where(Case.reference == reference.strip().upper()))


async def history(session: AsyncSession, case_id: int) -> list[tuple[CaseEvent, Account | None]]:
    query = (
        select(CaseEvent, Account)
        .outerjoin(Account, Account.id == CaseEvent.actor_id)
        .where(CaseEvent.case_id == case_id)
        .order_by(CaseEvent.at, CaseEvent.id)
    )
    return [(row[0], row[1]) for row in await session.execute(query)]


async def set_duty(session: AsyncSession, account: Account, on: bool) -> None:
    account.on_duty = on
    account.on_duty_since = clock.now() if on else None
    record_duty = "duty_on" if on else "duty_off"
    audit(session, account, record_duty, subject_type="account", subject_id=account.id)


@dataclass(frozen=True)
class ClosedCaseFacts:
    """What the contact database needs from a closed case (issue 5 reads this)."""

    case_id: int
    reference: str
    kind: CaseKind
    category: Category
    urgency: Urgency
    outcome: CaseOutcome
    latitude: float | None
    longitude: float | None
    place: str | None
    person: str | None
    owner_id: int | None
    reporter_id: int | None
    created_at: datetime
    taken_at: datetime | None
    on_site_at: datetime | None
    closed_at: datetime


async def closed_case_facts(session: AsyncSession, case_id: int) -> ClosedCaseFacts | None:
    """The facts of a closed case, or None if it does not exist or is still open."""
    case = await session.get(Case, case_id)
    if case is None or case.status is not CaseStatus.CLOSED or case.outcome is None:
        return None
    assert case.closed_at is not None
    return ClosedCaseFacts(
        case_id=case.id,
        reference=case.reference,
        kind=case.kind,
        category=case.category,
        urgency=case.urgency,
        outcome=case.outcome,
        latitude=case.latitude,
        longitude=case.longitude,
        place=case.place,
        person=case.person,
        owner_id=case.owner_id,
        reporter_id=case.reporter_id,
        created_at=case.created_at,
        taken_at=case.taken_at,
        on_site_at=case.on_site_at,
        closed_at=case.closed_at,
    )


def age(case: Case) -> timedelta:
    return clock.now() - case.created_at
