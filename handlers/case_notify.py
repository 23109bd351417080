"""What people are told about a case, rendered in each one's language and put in the outbox.

Alerts, escalations, "someone took it" edits and feedback to the reporter follow from a
state change, so they are enqueued in the same transaction as the change (see
:mod:`models.outbox`); the dispatcher sends them within Telegram's limits. Each alert round
has a ``dedupe_key`` (``case:{id}:escalation:{step}:{chat}``), so a step is never enqueued
twice. The escalation sweep (:func:`escalate_due_cases`) is a plain function: a JobQueue job
calls it every 30 seconds and tests call it directly after moving the clock.

A case nobody could be alerted about (nobody on duty, no coordinator or administrator who has
written to the bot and not blocked it, no team chat; or every alert refused by Telegram) is
marked unalerted in its row. The same sweep alerts the first staff member who becomes
reachable (:func:`alert_unalerted_cases`) and tells the requester; the database is the only
memory, so a restart changes nothing.
"""

from __future__ import annotations

import enum
import html
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import N_, Catalogs, Translator
from bot.parsing import callback_data
from config.settings import Settings
from handlers.directory_common import help_center_text
from models.accounts import Account
from models.cases import (
    REPORT_ALERT,
    URGENT_ALERT,
    AlertRound,
    Case,
    CaseKind,
    CaseStatus,
    Category,
    Outcome,
    Urgency,
    alert_recipients,
    claim_due_escalations,
    claim_unalerted,
    mark_alerted,
    sent_alerts,
    unalerted_after_refusals,
    unalerted_unless_delivered,
)
from models.directory import help_center
from models.outbox import enqueue

log = logging.getLogger(__name__)

ESCALATION_SWEEP_SECONDS = 30
EMERGENCY_NUMBER = "112"

CATEGORY_LABELS = {
    Category.SLEEPING_ROUGH: N_("Sleeping rough"),
    Category.HEALTH: N_("Health concern"),
    Category.MINOR: N_("Possible minor"),
    Category.FAMILY: N_("Family with children"),
    Category.AGGRESSIVE: N_("Aggressive situation"),
    Category.OTHER: N_("Other"),
}
URGENCY_LABELS = {
    Urgency.EMERGENCY: N_("Emergency (call 112 first)"),
    Urgency.TODAY: N_("Urgent, today"),
    Urgency.NOT_URGENT: N_("Not urgent"),
}
OUTCOME_LABELS = {
    Outcome.HELPED: N_("Person met and helped"),
    Outcome.REFERRED: N_("Referred to a service"),
    Outcome.REFUSED: N_("Refused help"),
    Outcome.NOT_FOUND: N_("Not found"),
    Outcome.EMERGENCY_SERVICES: N_("Sent to emergency services"),
    Outcome.DUPLICATE: N_("Duplicate of another case"),
}
STATUS_LABELS = {
    CaseStatus.NEW: N_("waiting for someone to take it"),
    CaseStatus.TAKEN: N_("taken"),
    CaseStatus.ON_SITE: N_("operator on site"),
    CaseStatus.CLOSED: N_("closed"),
}


def translator_of(catalogs: Catalogs, account: Account | None) -> Translator:
    language = catalogs.pick(account.language if account else None, None)
    return catalogs.translator(language)


def operator_name(settings: Settings, operator: Account | None, _: Translator) -> str:
    """How the requester and colleagues see an operator: first name or code, as configured."""
    if operator is None:
        return _("an operator")
    if settings.show_operator_as == "operator_code" or not operator.display_name:
        return operator.operator_code or _("an operator")
    return operator.display_name


def where_text(case: Case, _: Translator, *, pin_below: bool = False) -> str:
    """The place; a shared pin is sent as a Telegram location right under the case card
    (``pin_below``), while an alert points to the card."""
    if case.place:
        return case.place
    if case.latitude is not None:
        if pin_below:
            return _("the location sent below")
        return _("location pin shared (open the case to see it)")
    return _("not given")


def case_facts_lines(case: Case, _: Translator, *, pin_below: bool = False) -> list[str]:
    """What was reported, as the alert and the case card both show it."""
    lines = []
    if case.kind is CaseKind.REPORT:
        lines.append(
            _("Category: {category} · {urgency}").format(
                category=_(CATEGORY_LABELS[case.category]), urgency=_(URGENCY_LABELS[case.urgency])
            )
        )
    lines.append(_("Where: {place}").format(place=where_text(case, _, pin_below=pin_below)))
    if case.seen:
        lines.append(_("What: {text}").format(text=case.seen))
    if case.person:
        lines.append(_("Person: {text}").format(text=case.person))
    return lines


def alert_text(case: Case, step: int, _: Translator) -> str:
    if case.kind is CaseKind.URGENT:
        title = _("🚨 Urgent request {ref}").format(ref=case.reference)
    elif case.kind is CaseKind.HELP_REQUEST:
        title = _("💬 A person in need writes to the Help Center {ref}").format(ref=case.reference)
    else:
        title = _("📋 New report {ref}").format(ref=case.reference)
    lines = []
    if step > 0:
        lines.append(_("⏰ Still nobody has taken it (reminder {step}).").format(step=step))
    lines.append(title)
    lines += case_facts_lines(case, _)
    if case.photo_file_id:
        lines.append(_("📷 A photo is attached (open the case to see it)."))
    return "\n".join(lines)


def alert_buttons(case: Case, _: Translator) -> dict[str, Any]:
    """Bot API ``reply_markup`` as JSON (the outbox stores plain JSON)."""
    return {
        "inline_keyboard": [
            [
                {"text": _("✋ Take it"), "callback_data": callback_data("case", "take", case.id)},
                {"text": _("Can't"), "callback_data": callback_data("case", "cant", case.id)},
            ],
            [{"text": _("Open the case"), "callback_data": callback_data("case", "show", case.id)}],
        ]
    }


def alert_kind(case: Case) -> str:
    """The outbox kind of a case's alerts: ``urgent_alert`` for urgent requests, so the
    dispatcher's ``helpcenter_urgent_first_alert_seconds`` histogram (kinds starting with
    ``urgent``) measures them; ``alert`` for reports."""
    return URGENT_ALERT if case.kind is CaseKind.URGENT else REPORT_ALERT


def enqueue_alert_round(
    session: AsyncSession, round_: AlertRound, settings: Settings, catalogs: Catalogs
) -> int:
    """One alert per recipient (and the team chat), each in its own language."""
    case, step = round_.case, round_.step
    kind = alert_kind(case)
    count = 0
    for account in round_.recipients:
        _ = translator_of(catalogs, account)
        enqueue(
            session,
            chat_id=account.telegram_id,
            kind=kind,
            params={"text": alert_text(case, step, _), "reply_markup": alert_buttons(case, _)},
            account_id=account.id,
            subject_type="case",
            subject_id=case.id,
            dedupe_key=f"case:{case.id}:{round_.key}:{account.telegram_id}",
        )
        count += 1
    if settings.team_chat_id is not None:
        _ = catalogs.translator(catalogs.default_language)
        enqueue(
            session,
            chat_id=settings.team_chat_id,
            kind=kind,
            params={"text": alert_text(case, step, _), "reply_markup": alert_buttons(case, _)},
            subject_type="case",
            subject_id=case.id,
            dedupe_key=f"case:{case.id}:{round_.key}:{settings.team_chat_id}",
        )
        count += 1
    return count


class Reach(enum.Enum):
    """Who the first alert of a new case went to, as the requester is told."""

    ON_DUTY = "on_duty"  # the operators on duty (or the team chat)
    COORDINATORS = "coordinators"  # nobody on duty: coordinators, or else administrators
    NOBODY = "nobody"  # nobody could be alerted: the case is unalerted


async def alert_new_case(
    session: AsyncSession, case: Case, settings: Settings, catalogs: Catalogs
) -> Reach:
    """Step 0: the first alert, right when the case is opened."""
    recipients, nobody_on_duty = await alert_recipients(session, 0, case.id)
    round_ = AlertRound(case, 0, recipients, nobody_on_duty)
    if enqueue_alert_round(session, round_, settings, catalogs) == 0:
        await unalerted_unless_delivered(session, case.id)
        return Reach.NOBODY
    if nobody_on_duty and recipients:
        return Reach.COORDINATORS
    return Reach.ON_DUTY


def escalation_intervals(settings: Settings) -> tuple[timedelta, timedelta]:
    return (
        timedelta(minutes=settings.escalation_minutes),
        timedelta(minutes=settings.escalation_repeat_minutes),
    )


async def escalate_due_cases(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, catalogs: Catalogs
) -> int:
    """Escalate every overdue unassigned case by one step; returns how many escalated.

    Restart-safe: the due time is in the case row, so after a restart an overdue case
    escalates at the first sweep; the step guard in the model makes it happen once.

    The same run alerts about unalerted cases whoever has become reachable (not counted in
    the returned number, which is escalations only).
    """
    first, repeat = escalation_intervals(settings)
    async with sessionmaker() as session:
        rounds = await claim_due_escalations(
            session, first=first, repeat=repeat, skip_locked=not settings.is_sqlite
        )
        for round_ in rounds:
            reached = enqueue_alert_round(session, round_, settings, catalogs)
            if reached == 0:
                await unalerted_unless_delivered(session, round_.case.id)
            else:
                await reached_at_last(session, round_, reached, catalogs)
        lost = await unalerted_after_refusals(session)
        late = await alert_unalerted_cases(session, settings, catalogs)
        for case in lost:
            if case.unalerted_since is not None:  # and still nobody to alert
                await tell_requester_alerts_failed(session, case.id, settings, catalogs)
        await session.commit()
    if rounds:
        log.info("escalated %d case(s)", len(rounds))
    if late:
        log.info("alerted %d case(s) that nobody could be alerted about before", late)
    return len(rounds)


async def alert_unalerted_cases(
    session: AsyncSession, settings: Settings, catalogs: Catalogs
) -> int:
    """Alert, about each case nobody has been alerted about, whoever can be alerted now, and
    tell its requester that the request has reached the team. Returns how many cases."""
    reached = 0
    for round_ in await claim_unalerted(session, skip_locked=not settings.is_sqlite):
        if not round_.recipients and settings.team_chat_id is None:
            continue  # still nobody
        assert round_.late is not None
        if not await mark_alerted(
            session, round_.case, round_.late, alerted=len(round_.recipients)
        ):
            continue  # another sweep alerted for it
        enqueue_alert_round(session, round_, settings, catalogs)
        await enqueue_reached_feedback(session, round_.case, round_.late, catalogs)
        reached += 1
    return reached


async def reached_at_last(
    session: AsyncSession, round_: AlertRound, reached: int, catalogs: Catalogs
) -> None:
    """An escalation round reached someone about a case that was unalerted: it no longer is
    (so the same sweep does not alert for it a second time), and the requester is told."""
    case = round_.case
    since = case.unalerted_since
    if since is not None and await mark_alerted(session, case, since, alerted=reached):
        await enqueue_reached_feedback(session, case, since, catalogs)


async def enqueue_reached_feedback(
    session: AsyncSession, case: Case, since: datetime, catalogs: Catalogs
) -> bool:
    """The requester was told nobody could be alerted: now someone has been."""
    reporter = await session.get(Account, case.reporter_id) if case.reporter_id else None
    if reporter is None or reporter.telegram_id < 0:  # gone, or erased with /forget
        return False
    _ = translator_of(catalogs, reporter)
    if case.kind is CaseKind.URGENT:
        text = _(
            "📣 Your request {ref} has now reached the Help Center team. "
            "I will tell you who is coming."
        )
    else:
        text = _(
            "📣 Your report {ref} has now reached the Help Center team. "
            "I will tell you when an operator takes it in charge."
        )
    enqueue(
        session,
        chat_id=reporter.telegram_id,
        kind="case_feedback",
        params={"text": text.format(ref=case.reference)},
        account_id=reporter.id,
        subject_type="case",
        subject_id=case.id,
        dedupe_key=f"case:{case.id}:reached:{since.timestamp():.6f}",
    )
    return True


def taken_text(case: Case, owner: Account | None, settings: Settings, _: Translator) -> str:
    return _("✅ {ref} has been taken by {name}.").format(
        ref=case.reference, name=operator_name(settings, owner, _)
    )


async def enqueue_taken_edits(
    session: AsyncSession,
    case: Case,
    owner: Account | None,
    *,
    event_id: int,
    settings: Settings,
    catalogs: Catalogs,
    except_message: tuple[int, int] | None = None,
) -> int:
    """Edit the alerts already delivered to the others: the buttons go, "taken by" shows."""
    count = 0
    for row in await sent_alerts(session, case.id):
        if except_message == (row.chat_id, row.message_id):
            continue
        recipient = await session.get(Account, row.account_id) if row.account_id else None
        _ = translator_of(catalogs, recipient)
        enqueue(
            session,
            chat_id=row.chat_id,
            kind="alert_taken",
            method="editMessageText",
            params={
                "message_id": row.message_id,
                "text": alert_text(case, 0, _) + "\n\n" + taken_text(case, owner, settings, _),
            },
            account_id=row.account_id,
            subject_type="case",
            subject_id=case.id,
            dedupe_key=f"case:{case.id}:taken:{event_id}:{row.id}",
        )
        count += 1
    return count


async def enqueue_reporter_feedback(
    session: AsyncSession,
    case: Case,
    *,
    event_id: int,
    actor: Account,
    settings: Settings,
    catalogs: Catalogs,
    reopened: bool = False,
) -> bool:
    """Tell the reporter what changed (taken, reopened, closed), in their language. Not to
    oneself."""
    if case.reporter_id is None or case.reporter_id == actor.id:
        return False
    reporter = await session.get(Account, case.reporter_id)
    if reporter is None:
        return False
    _ = translator_of(catalogs, reporter)
    owner = await session.get(Account, case.owner_id) if case.owner_id else None
    name = operator_name(settings, owner, _)
    if reopened:
        text = _("Your report {ref} has been reopened: {name} is following it again.").format(
            ref=case.reference, name=name
        )
    elif case.status is CaseStatus.TAKEN and case.kind is CaseKind.URGENT:
        text = _("🚶 {name} from the Help Center is coming for your request {ref}.").format(
            name=name, ref=case.reference
        )
    elif case.status is CaseStatus.TAKEN and case.kind is CaseKind.HELP_REQUEST:
        text = _("{name} from the Help Center has read your request {ref}.").format(
            name=name, ref=case.reference
        )
    elif case.status is CaseStatus.TAKEN:
        text = _("Your report {ref} has been taken in charge by {name}. Thank you.").format(
            ref=case.reference, name=name
        )
    elif case.status is CaseStatus.CLOSED and case.outcome is not None:
        text = _("Your report {ref} is closed: {outcome}. Thank you for your help.").format(
            ref=case.reference, outcome=_(OUTCOME_LABELS[case.outcome])
        )
    else:
        return False
    enqueue(
        session,
        chat_id=reporter.telegram_id,
        kind="case_feedback",
        params={"text": text},
        account_id=reporter.id,
        subject_type="case",
        subject_id=case.id,
        dedupe_key=f"case:{case.id}:feedback:{event_id}",
    )
    return True


async def nobody_reachable_text(
    session: AsyncSession, first_line: str, _: Translator, settings: Settings
) -> str:
    """What a requester reads when nobody could be alerted: that, plainly; 112; the Help
    Center's phone and hours from the directory; and that the first member of the team who
    becomes reachable will be alerted. HTML (the directory's contact is)."""
    center = help_center_text(await help_center(session), _, settings.tz)
    return "\n\n".join(
        [
            html.escape(first_line),
            html.escape(
                _(
                    "⚠️ Right now nobody at the Help Center can be alerted: no operator is on "
                    "duty and no coordinator can be reached."
                )
            ),
            html.escape(
                _("If someone's life may be in danger, call {number} now.").format(
                    number=EMERGENCY_NUMBER
                )
            ),
            center,
            html.escape(
                _(
                    "I will alert the first member of the team who becomes reachable, "
                    "and tell you when they have it."
                )
            ),
        ]
    )


async def tell_requester_alerts_failed(
    session: AsyncSession, case_id: int, settings: Settings, catalogs: Catalogs
) -> bool:
    """Every alert of a case was refused by Telegram after the requester had been told that
    the team was alerted: they are told the truth now (called by the outbox dispatcher, in
    the transaction that marks the case unalerted)."""
    case = await session.get(Case, case_id)
    if case is None or case.unalerted_since is None or case.reporter_id is None:
        return False
    reporter = await session.get(Account, case.reporter_id)
    if reporter is None or reporter.telegram_id < 0:  # gone, or erased with /forget
        return False
    _ = translator_of(catalogs, reporter)
    if case.kind is CaseKind.URGENT:
        first = _("About your request {ref}: my alerts could not be delivered to anyone.")
    else:
        first = _("About your report {ref}: my alerts could not be delivered to anyone.")
    text = await nobody_reachable_text(session, first.format(ref=case.reference), _, settings)
    enqueue(
        session,
        chat_id=reporter.telegram_id,
        kind="case_feedback",
        params={"text": text, "parse_mode": "HTML"},
        account_id=reporter.id,
        subject_type="case",
        subject_id=case.id,
        dedupe_key=f"case:{case.id}:unreached:{case.unalerted_since.timestamp():.6f}",
    )
    return True
