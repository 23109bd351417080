"""What people are told about a case, rendered in each one's language and put in the outbox.

Who is told what when a case moves is the domain's decision
(:func:`models.case_notices.notices_for`); :func:`announce` renders each notice it returns
(alerts, "someone took it" edits, feedback to the reporter) and enqueues it in the same
transaction as the change (see :mod:`models.outbox`); the dispatcher sends them within
Telegram's limits. Every path that moves a case calls :func:`announce`, so each notifies the
same way. Each notice has a ``dedupe_key`` (an alert round's is
``case:{id}:escalation:{step}:{chat}``), so it is never enqueued twice. The escalation sweep
(:func:`escalate_due_cases`) takes its session from the job runner (``bot.jobs``) every 30
seconds; tests run it the same way after moving the clock.

A case nobody could be alerted about (nobody on duty, no coordinator or administrator who has
written to the bot and not blocked it, no team chat; or every alert refused by Telegram) is
marked unalerted in its row. The same sweep alerts the first staff member who becomes
reachable (:func:`alert_unalerted_cases`) and tells the requester; the database is the only
memory, so a restart changes nothing.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import N_, Catalogs, Translator
from bot.parsing import callback_data
from bot.runtime import Runtime
from config.settings import Settings
from handlers.directory_common import help_center_text
from models.accounts import Account
from models.case_notices import Announcement, Notice, Reach, Told, notices_for
from models.cases import (
    REPORT_ALERT,
    URGENT_ALERT,
    Case,
    CaseKind,
    CaseMove,
    CaseOutcome,
    CaseStatus,
    Category,
    Move,
    Urgency,
    case_by_id,
    claim_due_escalations,
    claim_unalerted,
    unalerted_after_refusals,
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
    CaseOutcome.HELPED: N_("Person met and helped"),
    CaseOutcome.REFERRED: N_("Referred to a service"),
    CaseOutcome.REFUSED: N_("Refused help"),
    CaseOutcome.NOT_FOUND: N_("Not found"),
    CaseOutcome.EMERGENCY_SERVICES: N_("Sent to emergency services"),
    CaseOutcome.DUPLICATE: N_("Duplicate of another case"),
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


async def announce(
    session: AsyncSession,
    move: CaseMove,
    settings: Settings,
    catalogs: Catalogs,
    *,
    answered_in_place: tuple[int, int] | None = None,
) -> Announcement:
    """Tell whoever the domain says must hear of ``move`` (:func:`notices_for`), each in
    their language, through the outbox, in the caller's transaction."""
    announcement = await notices_for(
        session, move, team_chat_id=settings.team_chat_id, answered_in_place=answered_in_place
    )
    for notice in announcement.notices:
        await enqueue_notice(session, move.case, notice, settings, catalogs)
    return announcement


async def enqueue_notice(
    session: AsyncSession, case: Case, notice: Notice, settings: Settings, catalogs: Catalogs
) -> None:
    """One notice, rendered for its recipient and queued once (its key)."""
    _ = translator_of(catalogs, notice.recipient)
    method = "sendMessage"
    params: dict[str, Any]
    if notice.told is Told.ALERT:
        kind = alert_kind(case)
        params = {"text": alert_text(case, notice.step, _), "reply_markup": alert_buttons(case, _)}
    elif notice.told is Told.TAKEN_BY:
        kind, method = "alert_taken", "editMessageText"
        taken = taken_text(case, notice.owner, settings, _)
        params = {"message_id": notice.message_id, "text": alert_text(case, 0, _) + "\n\n" + taken}
    else:
        kind = "case_feedback"
        params = await reporter_feedback(session, case, notice, settings, _)
    enqueue(
        session,
        chat_id=notice.chat_id,
        kind=kind,
        method=method,
        params=params,
        account_id=notice.recipient.id if notice.recipient is not None else None,
        subject_type="case",
        subject_id=case.id,
        dedupe_key=f"case:{case.id}:{notice.key}",
    )


async def alert_new_case(
    session: AsyncSession, case: Case, settings: Settings, catalogs: Catalogs
) -> Reach:
    """Step 0: the first alert, right when the case is opened."""
    announcement = await announce(session, CaseMove(Move.OPENED, case), settings, catalogs)
    assert announcement.reach is not None
    return announcement.reach


def escalation_intervals(settings: Settings) -> tuple[timedelta, timedelta]:
    return (
        timedelta(minutes=settings.escalation_minutes),
        timedelta(minutes=settings.escalation_repeat_minutes),
    )


async def escalate_due_cases(session: AsyncSession, settings: Settings, catalogs: Catalogs) -> int:
    """Escalate every overdue unassigned case by one step; returns how many escalated.

    Restart-safe: the due time is in the case row, so after a restart an overdue case
    escalates at the first sweep; the step guard in the model makes it happen once.

    The same run alerts about unalerted cases whoever has become reachable (not counted in
    the returned number, which is escalations only), and tells the requesters of cases whose
    every alert failed. A job (``escalation_job``) runs it as one unit of work.
    """
    first, repeat = escalation_intervals(settings)
    rounds = await claim_due_escalations(
        session, first=first, repeat=repeat, skip_locked=not settings.is_sqlite
    )
    for round_ in rounds:
        await announce(
            session, CaseMove(Move.ESCALATED, round_.case, round=round_), settings, catalogs
        )
    lost = await unalerted_after_refusals(session)
    late = await alert_unalerted_cases(session, settings, catalogs)
    for case in lost:
        await announce(session, CaseMove(Move.ALERTS_LOST, case), settings, catalogs)
    if rounds:
        log.info("escalated %d case(s)", len(rounds))
    if late:
        log.info("alerted %d case(s) that nobody could be alerted about before", late)
    return len(rounds)


async def escalation_sweep(session: AsyncSession, runtime: Runtime) -> int:
    """:func:`escalate_due_cases` as a job's unit of work (``bot.jobs``)."""
    return await escalate_due_cases(session, runtime.settings, runtime.catalogs)


async def alert_unalerted_cases(
    session: AsyncSession, settings: Settings, catalogs: Catalogs
) -> int:
    """Alert, about each case nobody has been alerted about, whoever can be alerted now, and
    tell its requester that the request has reached the team. Returns how many cases."""
    reached = 0
    for round_ in await claim_unalerted(session, skip_locked=not settings.is_sqlite):
        move = CaseMove(Move.ALERTED_LATE, round_.case, round=round_)
        if (await announce(session, move, settings, catalogs)).alerted:
            reached += 1
    return reached


def taken_text(case: Case, owner: Account | None, settings: Settings, _: Translator) -> str:
    return _("✅ {ref} has been taken by {name}.").format(
        ref=case.reference, name=operator_name(settings, owner, _)
    )


async def reporter_feedback(
    session: AsyncSession, case: Case, notice: Notice, settings: Settings, _: Translator
) -> dict[str, Any]:
    """What the reporter reads (Bot API parameters)."""
    if notice.told is Told.UNREACHED:
        if case.kind is CaseKind.URGENT:
            first = _("About your request {ref}: my alerts could not be delivered to anyone.")
        else:
            first = _("About your report {ref}: my alerts could not be delivered to anyone.")
        text = await nobody_reachable_text(session, first.format(ref=case.reference), _, settings)
        return {"text": text, "parse_mode": "HTML"}
    outcome = _(OUTCOME_LABELS[case.outcome]) if case.outcome is not None else ""
    text = feedback_template(case, notice.told, _).format(
        ref=case.reference, name=operator_name(settings, notice.owner, _), outcome=outcome
    )
    return {"text": text}


def feedback_template(case: Case, told: Told, _: Translator) -> str:
    """Taken, closed, reopened, or reached at last, in the reporter's words for the case."""
    urgent = case.kind is CaseKind.URGENT
    if told is Told.REACHED and urgent:
        return _(
            "📣 Your request {ref} has now reached the Help Center team. "
            "I will tell you who is coming."
        )
    if told is Told.REACHED:
        return _(
            "📣 Your report {ref} has now reached the Help Center team. "
            "I will tell you when an operator takes it in charge."
        )
    if told is Told.REOPENED:
        return _("Your report {ref} has been reopened: {name} is following it again.")
    if told is Told.CLOSED:
        return _("Your report {ref} is closed: {outcome}. Thank you for your help.")
    if urgent:
        return _("🚶 {name} from the Help Center is coming for your request {ref}.")
    if case.kind is CaseKind.HELP_REQUEST:
        return _("{name} from the Help Center has read your request {ref}.")
    return _("Your report {ref} has been taken in charge by {name}. Thank you.")


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
    case = await case_by_id(session, case_id)
    if case is None:
        return False
    move = CaseMove(Move.ALERTS_LOST, case)
    return bool((await announce(session, move, settings, catalogs)).notices)
