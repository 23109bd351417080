"""Who is told what when a case moves: decided here, once, for every path that moves a case.

A case is opened (a report, an urgent request, a request to the desk), taken by the first
Take, moved on the desk (on site, closed, reopened, handed back), escalated by the sweep,
alerted at last after nobody could be, or left with every alert refused. Each path describes
what happened as a :class:`models.cases.CaseMove` and asks :func:`notices_for`:

- opened, escalated: the team, one alert round (the on-duty operators who have not said they
  can't; the coordinators too from the third round, or when nobody is on duty; the team
  chat). With nobody to alert, the case is marked unalerted. A round that reaches someone
  about a case nobody could be alerted about tells the reporter it has reached the team.
- alerted late: the same round, once (a conditional update decides which sweep sends it).
- taken: every delivered alert shows who took it (except the one the taker pressed, which
  the desk answers in place); the reporter hears who took it.
- closed, reopened: the reporter.
- on site, handed back: nobody now (a case handed back is alerted again by the next sweep).
- alerts lost: the reporter hears that nobody has it.

The reporter is never told about their own move, nor once forgotten (``/forget``). Handlers
render each :class:`Notice` in its recipient's language and queue it in the outbox in the
same transaction (``handlers.case_notify.announce``); its ``key`` makes it queued once.
Nothing here renders text or knows Telegram.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, account_by_id
from models.cases import (
    AlertRound,
    CaseMove,
    Move,
    alert_recipients,
    mark_alerted,
    sent_alerts,
    unalerted_unless_delivered,
)


class Told(enum.StrEnum):
    """What a notice tells."""

    ALERT = "alert"  # the team: the case, with Take, Can't and Open buttons
    TAKEN_BY = "taken_by"  # a delivered alert, edited: who took the case
    TAKEN = "taken"  # the reporter: someone took it (is coming, has read it)
    CLOSED = "closed"  # the reporter: closed, and how it ended
    REOPENED = "reopened"  # the reporter: someone follows it again
    REACHED = "reached"  # the reporter: the team has it at last
    UNREACHED = "unreached"  # the reporter: every alert failed, nobody has it


class Reach(enum.Enum):
    """Who an alert round reached, as the requester is told."""

    ON_DUTY = "on_duty"  # the operators on duty (or the team chat)
    COORDINATORS = "coordinators"  # nobody on duty: coordinators, or else administrators
    NOBODY = "nobody"  # nobody could be alerted: the case is unalerted


@dataclass(frozen=True)
class Notice:
    """One message to queue: what, to whom, and the key that makes it queued once."""

    told: Told
    chat_id: int
    recipient: Account | None  # None: the team chat (its default language)
    key: str  # unique among the case's messages (the outbox ``dedupe_key`` after the case)
    step: int = 0  # an alert: its round (0 the first, then the reminders)
    message_id: int | None = None  # an alert edited: which message
    owner: Account | None = None  # who has the case now (taken, reopened)


@dataclass
class Announcement:
    """Everything a move causes; ``reach`` for a move that alerts the team."""

    notices: list[Notice] = field(default_factory=list)
    reach: Reach | None = None

    @property
    def alerted(self) -> int:
        return sum(1 for notice in self.notices if notice.told is Told.ALERT)


ALERTING = frozenset({Move.OPENED, Move.ESCALATED, Move.ALERTED_LATE})
REPORTER_TOLD = {
    Move.TAKEN: Told.TAKEN,
    Move.CLOSED: Told.CLOSED,
    Move.REOPENED: Told.REOPENED,
    Move.ALERTS_LOST: Told.UNREACHED,
}


async def notices_for(
    session: AsyncSession,
    move: CaseMove,
    *,
    team_chat_id: int | None,
    answered_in_place: tuple[int, int] | None = None,
) -> Announcement:
    """Who is told what about ``move`` (see the module's note).

    ``answered_in_place`` is the (chat, message) the mover pressed: the handler edits that
    one itself. Keeps the case's alert bookkeeping (unalerted, alerted at last) in step with
    what it returns, in the caller's transaction.
    """
    if move.what in ALERTING:
        return await _alert_round(session, move, team_chat_id)
    announcement = Announcement()
    if move.what is Move.TAKEN:
        announcement.notices += await _alerts_taken(session, move, answered_in_place)
    told = REPORTER_TOLD.get(move.what)
    reporter = await _reporter_to_tell(session, move) if told is not None else None
    if told is not None and reporter is not None:
        notice = await _to_reporter(session, move, told, reporter)
        if notice is not None:
            announcement.notices.append(notice)
    return announcement


async def _alert_round(
    session: AsyncSession, move: CaseMove, team_chat_id: int | None
) -> Announcement:
    case = move.case
    round_ = move.round
    if round_ is None:  # a new case: its first round
        recipients, nobody_on_duty = await alert_recipients(session, 0, case.id)
        round_ = AlertRound(case, 0, recipients, nobody_on_duty)
    alerts = [
        Notice(Told.ALERT, a.telegram_id, a, f"{round_.key}:{a.telegram_id}", step=round_.step)
        for a in round_.recipients
    ]
    if team_chat_id is not None:
        key = f"{round_.key}:{team_chat_id}"
        alerts.append(Notice(Told.ALERT, team_chat_id, None, key, step=round_.step))
    if not alerts:
        if move.what is not Move.ALERTED_LATE:  # (a late round is for an unalerted case)
            await unalerted_unless_delivered(session, case.id)
        return Announcement(reach=Reach.NOBODY)
    reach = Reach.COORDINATORS if round_.nobody_on_duty and round_.recipients else Reach.ON_DUTY
    announcement = Announcement(alerts, reach)
    since = round_.late or case.unalerted_since
    if since is None:
        return announcement
    if not await mark_alerted(session, case, since, alerted=len(alerts)):
        # Another sweep reached someone first: a late round is its, a reminder still goes.
        return Announcement(reach=reach) if move.what is Move.ALERTED_LATE else announcement
    reporter = await _reporter_to_tell(session, move)
    if reporter is not None:
        key = f"reached:{since.timestamp():.6f}"
        announcement.notices.append(Notice(Told.REACHED, reporter.telegram_id, reporter, key))
    return announcement


async def _alerts_taken(
    session: AsyncSession, move: CaseMove, answered_in_place: tuple[int, int] | None
) -> list[Notice]:
    """The alerts already delivered show who took the case; their buttons go."""
    owner = await account_by_id(session, move.case.owner_id)
    notices = []
    for row in await sent_alerts(session, move.case.id):
        if answered_in_place == (row.chat_id, row.message_id):
            continue
        recipient = await account_by_id(session, row.account_id)
        key = f"taken:{move.event_id}:{row.id}"
        notice = Notice(
            Told.TAKEN_BY, row.chat_id, recipient, key, message_id=row.message_id, owner=owner
        )
        notices.append(notice)
    return notices


async def _reporter_to_tell(session: AsyncSession, move: CaseMove) -> Account | None:
    """The case's reporter, unless they moved it themselves or are gone or forgotten."""
    reporter_id = move.case.reporter_id
    if reporter_id is None or (move.actor is not None and move.actor.id == reporter_id):
        return None
    reporter = await account_by_id(session, reporter_id)
    if reporter is None or reporter.telegram_id < 0:  # gone, or erased with /forget
        return None
    return reporter


async def _to_reporter(
    session: AsyncSession, move: CaseMove, told: Told, reporter: Account
) -> Notice | None:
    case = move.case
    if told is Told.UNREACHED:
        if case.unalerted_since is None:  # someone has been alerted meanwhile
            return None
        key = f"unreached:{case.unalerted_since.timestamp():.6f}"
        return Notice(told, reporter.telegram_id, reporter, key)
    if told is Told.CLOSED and case.outcome is None:
        return None
    owner = await account_by_id(session, case.owner_id)
    key = f"feedback:{move.event_id}"
    return Notice(told, reporter.telegram_id, reporter, key, owner=owner)
