"""What people are told about a case, rendered in each one's language and put in the outbox.

Alerts, escalations, "someone took it" edits and feedback to the reporter follow from a
state change, so they are enqueued in the same transaction as the change (see
:mod:`models.outbox`); the dispatcher sends them within Telegram's limits. Each alert round
has a ``dedupe_key`` (``case:{id}:escalation:{step}:{chat}``), so a step is never enqueued
twice. The escalation sweep (:func:`escalate_due_cases`) is a plain function: a JobQueue job
calls it every 30 seconds and tests call it directly after moving the clock.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import N_, Catalogs, Translator
from config.settings import Settings
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
    sent_alerts,
)
from models.outbox import enqueue

log = logging.getLogger(__name__)

ESCALATION_SWEEP_SECONDS = 30

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


def where_text(case: Case, _: Translator) -> str:
    if case.place:
        return case.place
    if case.latitude is not None:
        return _("location pin shared (open the case to see it)")
    return _("not given")


def case_facts_lines(case: Case, _: Translator) -> list[str]:
    """What was reported, as the alert and the case card both show it."""
    lines = []
    if case.kind is CaseKind.REPORT:
        lines.append(
            _("Category: {category} · {urgency}").format(
                category=_(CATEGORY_LABELS[case.category]), urgency=_(URGENCY_LABELS[case.urgency])
            )
        )
    lines.append(_("Where: {place}").format(place=where_text(case, _)))
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
                {"text": _("✋ Take it"), "callback_data": f"case:take:{case.id}"},
                {"text": _("Can't"), "callback_data": f"case:cant:{case.id}"},
            ],
            [{"text": _("Open the case"), "callback_data": f"case:show:{case.id}"}],
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
            dedupe_key=f"case:{case.id}:escalation:{step}:{account.telegram_id}",
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
            dedupe_key=f"case:{case.id}:escalation:{step}:{settings.team_chat_id}",
        )
        count += 1
    return count


async def alert_new_case(
    session: AsyncSession, case: Case, settings: Settings, catalogs: Catalogs
) -> AlertRound:
    """Step 0: the first alert, right when the case is opened."""
    recipients, nobody = await alert_recipients(session, 0, case.id)
    round_ = AlertRound(case, 0, recipients, nobody)
    enqueue_alert_round(session, round_, settings, catalogs)
    return round_


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
    """
    first, repeat = escalation_intervals(settings)
    async with sessionmaker() as session:
        rounds = await claim_due_escalations(
            session, first=first, repeat=repeat, skip_locked=not settings.is_sqlite
        )
        for round_ in rounds:
            enqueue_alert_round(session, round_, settings, catalogs)
        await session.commit()
    if rounds:
        log.info("escalated %d case(s)", len(rounds))
    return len(rounds)


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
