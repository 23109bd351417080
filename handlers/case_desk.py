"""The operators' desk: ``/duty``, ``/cases``, a case card, and the buttons that move a case.

Every button names its case (``case:<action>:<id>``), so an old message still works or
answers clearly why it no longer does. Moving a case and telling others about it (edits of
their alerts, feedback to the reporter) happen in one transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.i18n import N_, Translator, ago
from bot.runtime import HCContext
from bot.telegram_errors import is_unknown_file
from handlers.case_drafts import send
from handlers.case_notify import (
    OUTCOME_LABELS,
    STATUS_LABELS,
    alert_text,
    case_facts_lines,
    enqueue_reporter_feedback,
    enqueue_taken_edits,
    operator_name,
    taken_text,
)
from handlers.common import acknowledge, drop_buttons, edit_text, handles
from models.accounts import Account
from models.cases import (
    TRANSITIONS,
    Action,
    Case,
    CaseFilter,
    CaseKind,
    CaseStatus,
    Outcome,
    TransitionRefused,
    age,
    case_by_id,
    count_unassigned,
    decline_case,
    duplicate_candidates,
    history,
    mark_duplicate_of,
    may_act,
    move_case,
    open_cases,
    set_duty,
    take_case,
)
from models.roles import Permission

log = logging.getLogger(__name__)

FILTER_LABELS = {
    CaseFilter.MINE: N_("Mine"),
    CaseFilter.UNASSIGNED: N_("Unassigned"),
    CaseFilter.ALL: N_("All"),
}

EVENT_LABELS = {
    "created": N_("opened"),
    "taken": N_("taken"),
    "declined": N_("can't take it"),
    "escalated": N_("alert repeated"),
    "arrive": N_("on site"),
    "closed": N_("closed"),
    "reopen": N_("reopened"),
    "release": N_("handed back"),
    "duplicate_of": N_("duplicate of"),
}


# ---- duty -----------------------------------------------------------------------------------


@handles("duty", Permission.HANDLE_CASES)
async def duty(update: Update, context: HCContext) -> None:
    """``/duty`` shows the state with a switch; ``/duty on`` and ``/duty off`` set it."""
    wanted = (context.args or [""])[0].lower()
    if wanted in ("on", "off"):
        await _switch_duty(update, context, wanted == "on")
        return
    await send(update, context, duty_text(context), reply_markup=duty_button(context))


@handles("duty", Permission.HANDLE_CASES)
async def duty_button_pressed(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await acknowledge(update, context)
    await drop_buttons(update)
    await _switch_duty(update, context, query.data == "duty:on")


async def _switch_duty(update: Update, context: HCContext, on: bool) -> None:
    await set_duty(context.session, context.account, on)
    text = duty_text(context)
    if on:
        waiting = await count_unassigned(context.session)
        if waiting:
            text += "\n" + context._.ngettext(
                "{n} case is waiting for someone: /cases",
                "{n} cases are waiting for someone: /cases",
                waiting,
            ).format(n=waiting)
    await send(update, context, text, reply_markup=duty_button(context))


def duty_text(context: HCContext) -> str:
    _ = context._
    if context.account.on_duty:
        return _("🟢 You are on duty: you receive alerts for new cases and urgent requests.")
    return _("⚪ You are off duty: you receive no alerts.")


def duty_button(context: HCContext) -> InlineKeyboardMarkup:
    _ = context._
    if context.account.on_duty:
        button = InlineKeyboardButton(_("Go off duty"), callback_data="duty:off")
    else:
        button = InlineKeyboardButton(_("Go on duty"), callback_data="duty:on")
    return InlineKeyboardMarkup([[button]])


# ---- list and card --------------------------------------------------------------------------


@handles("cases", Permission.HANDLE_CASES, private_only=True)
async def list_cases(update: Update, context: HCContext) -> None:
    which = CaseFilter.ALL
    query = update.callback_query
    if query is not None and query.data is not None:
        await acknowledge(update, context)
        value = query.data.removeprefix("cases:list:")
        which = next((f for f in CaseFilter if f.value == value), CaseFilter.ALL)
    cases = await open_cases(context.session, context.account, which)
    _ = context._
    text = _("Open cases ({which}): {count}").format(
        which=_(FILTER_LABELS[which]), count=len(cases)
    )
    if not cases:
        text += "\n" + _("Nothing here right now.")
    rows = [
        [InlineKeyboardButton(case_line(case, _), callback_data=f"case:show:{case.id}")]
        for case in cases
    ]
    rows.append(
        [
            InlineKeyboardButton(_(label), callback_data=f"cases:list:{f.value}")
            for f, label in FILTER_LABELS.items()
        ]
    )
    await send(update, context, text, reply_markup=InlineKeyboardMarkup(rows))


def case_line(case: Case, _: Translator) -> str:
    icon = "🚨" if case.kind is CaseKind.URGENT else "📋"
    return f"{icon} {case.reference} · {age_text(age(case), _)} · {_(STATUS_LABELS[case.status])}"


def age_text(elapsed: timedelta, _: Translator) -> str:
    return ago(max(int(elapsed.total_seconds() // 60), 0), _)


async def card_text(context: HCContext, case: Case) -> str:
    _ = context._
    owner = await context.session.get(Account, case.owner_id) if case.owner_id else None
    kind = _("Urgent request") if case.kind is CaseKind.URGENT else _("Report")
    lines = [
        f"{kind} {case.reference}",
        _("Status: {status}").format(status=_(STATUS_LABELS[case.status])),
        _("Opened {age}").format(age=age_text(age(case), _)),
    ]
    if owner is not None:
        lines.append(_("Owner: {name}").format(name=operator_name(context.settings, owner, _)))
    lines += case_facts_lines(case, _)
    if case.outcome is not None:
        lines.append(_("Outcome: {outcome}").format(outcome=_(OUTCOME_LABELS[case.outcome])))
    lines += ["", _("History:")]
    tz = context.settings.tz
    for event, actor in await history(context.session, case.id):
        who = operator_name(context.settings, actor, _) if actor and actor.is_staff else ""
        label = _(EVENT_LABELS[event.action]) if event.action in EVENT_LABELS else event.action
        if event.action == "duplicate_of":
            label += f" {event.detail}"
        lines.append(f"{event.at.astimezone(tz):%d/%m %H:%M} {label} {who}".rstrip())
    return "\n".join(lines)[:4000]


def card_buttons(context: HCContext, case: Case) -> InlineKeyboardMarkup | None:
    _ = context._
    labels = {
        Action.TAKE: _("✋ Take it"),
        Action.ARRIVE: _("📍 I'm on site"),
        Action.CLOSE: _("Close"),
        Action.RELEASE: _("Hand back"),
        Action.REOPEN: _("Reopen"),
    }
    buttons = [
        InlineKeyboardButton(labels[action], callback_data=f"case:{action.value}:{case.id}")
        for action in (Action.TAKE, Action.ARRIVE, Action.CLOSE, Action.RELEASE, Action.REOPEN)
        if (case.status, action) in TRANSITIONS and may_act(context.account, case, action)
    ]
    if not buttons:
        return None
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


async def send_card(update: Update, context: HCContext, case: Case) -> None:
    """The card: text and buttons, then the shared location and the photo, if any."""
    chat = update.effective_chat
    assert chat is not None
    context.scope.concerns("case", case.id)
    await context.bot.send_message(
        chat.id, await card_text(context, case), reply_markup=card_buttons(context, case)
    )
    if case.latitude is not None and case.longitude is not None:
        await context.bot.send_location(chat.id, case.latitude, case.longitude)
    if case.photo_file_id:
        await _send_photo(context, chat.id, case, case.photo_file_id)


async def _send_photo(context: HCContext, chat_id: int, case: Case, file_id: str) -> None:
    """The case's photo; one Telegram no longer knows is said so, and the card stands."""
    try:
        await context.bot.send_photo(chat_id, file_id)
    except BadRequest as exc:
        if not is_unknown_file(exc):
            raise
        log.info("case %s: its photo is no longer known to Telegram", case.id)
        gone = context._("The photo of this case is no longer available.")
        await context.bot.send_message(chat_id, gone)


# ---- buttons on a case ----------------------------------------------------------------------


@handles("cases", Permission.HANDLE_CASES)
async def case_button(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    parts = query.data.split(":")
    try:
        action, case_id = parts[1], int(parts[2])
    except (IndexError, ValueError):
        await acknowledge(update, context)
        return
    case = await case_by_id(context.session, case_id)
    if case is None:
        await acknowledge(update, context)
        await send(update, context, context._("This case does not exist any more."))
        return
    context.scope.concerns("case", case.id)
    if action == "show":
        await acknowledge(update, context)
        await send_card(update, context, case)
    elif action == "take":
        await _take(update, context, case)
    elif action == "cant":
        await _cant(update, context, case)
    elif action == "close":
        await acknowledge(update, context)
        await _ask_outcome(update, context, case)
    elif action == "out" and len(parts) > 3:
        await _close(update, context, case, parts[3])
    elif action == "dup" and len(parts) > 3:
        await _duplicate_of(update, context, case, parts[3])
    else:
        await _move(update, context, case, action)


async def _take(update: Update, context: HCContext, case: Case) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None
    _ = context._
    result = await take_case(context.session, case.id, context.account)
    settings, catalogs = context.settings, context.runtime.catalogs
    if not result.won:
        who = taken_text(result.case, result.owner, settings, _)
        if result.case.status is CaseStatus.CLOSED:
            who = _("{ref} is already closed.").format(ref=result.case.reference)
        await acknowledge(update, context, who)
        await drop_buttons(update)
        await send(update, context, _("Too late: {status}").format(status=who))
        return
    await acknowledge(update, context, _("It's yours."))
    event_id = await _last_event_id(context, result.case)
    pressed = (query.message.chat.id, query.message.message_id)
    await enqueue_taken_edits(
        context.session,
        result.case,
        context.account,
        event_id=event_id,
        settings=settings,
        catalogs=catalogs,
        except_message=pressed,
    )
    await enqueue_reporter_feedback(
        context.session,
        result.case,
        event_id=event_id,
        actor=context.account,
        settings=settings,
        catalogs=catalogs,
    )
    await edit_text(update, alert_text(result.case, 0, _) + "\n\n" + _("✅ You took this case."))
    await send_card(update, context, result.case)


async def _last_event_id(context: HCContext, case: Case) -> int:
    await context.session.flush()
    events = await history(context.session, case.id)
    return events[-1][0].id


async def _cant(update: Update, context: HCContext, case: Case) -> None:
    _ = context._
    everyone_declined = await decline_case(context.session, case, context.account)
    await acknowledge(update, context, _("Noted."))
    text = _("Noted: you can't take {ref}.").format(ref=case.reference)
    if everyone_declined:
        text += " " + _("Nobody on duty can: the coordinators are being alerted.")
    await send(update, context, text)


async def _ask_outcome(update: Update, context: HCContext, case: Case) -> None:
    _ = context._
    if not may_act(context.account, case, Action.CLOSE) or case.status is CaseStatus.CLOSED:
        await send(update, context, refused_text(context, case))
        return
    rows = [
        [InlineKeyboardButton(_(label), callback_data=f"case:out:{case.id}:{outcome.value}")]
        for outcome, label in OUTCOME_LABELS.items()
    ]
    await send(
        update,
        context,
        _("How did {ref} end?").format(ref=case.reference),
        reply_markup=InlineKeyboardMarkup(rows),
    )


async def _close(update: Update, context: HCContext, case: Case, value: str) -> None:
    outcome = next((o for o in Outcome if o.value == value), None)
    if outcome is None:
        await acknowledge(update, context)
        return
    await _move(update, context, case, Action.CLOSE.value, outcome=outcome)


async def _move(
    update: Update,
    context: HCContext,
    case: Case,
    action_name: str,
    *,
    outcome: Outcome | None = None,
) -> None:
    action = next((a for a in Action if a.value == action_name), None)
    if action is None:
        await acknowledge(update, context)
        return
    try:
        await move_case(context.session, case, action, context.account, outcome=outcome)
    except TransitionRefused:
        await acknowledge(update, context)
        await send(update, context, refused_text(context, case))
        return
    await acknowledge(update, context)
    await drop_buttons(update)
    event_id = await _last_event_id(context, case)
    if action in (Action.CLOSE, Action.REOPEN):
        await enqueue_reporter_feedback(
            context.session,
            case,
            event_id=event_id,
            actor=context.account,
            settings=context.settings,
            catalogs=context.runtime.catalogs,
            reopened=action is Action.REOPEN,
        )
    await send_card(update, context, case)
    if outcome is Outcome.DUPLICATE:
        await _ask_duplicate_of(update, context, case)


async def _ask_duplicate_of(update: Update, context: HCContext, case: Case) -> None:
    """Optional: which case this one repeats, picked among the latest (one tap, or none)."""
    _ = context._
    candidates = await duplicate_candidates(context.session, case)
    if not candidates:
        return
    rows = [
        [InlineKeyboardButton(case_line(other, _), callback_data=f"case:dup:{case.id}:{other.id}")]
        for other in candidates
    ]
    text = _("Which case does {ref} repeat? Pick it if you know (optional).").format(
        ref=case.reference
    )
    await send(update, context, text, reply_markup=InlineKeyboardMarkup(rows))


async def _duplicate_of(update: Update, context: HCContext, case: Case, value: str) -> None:
    await acknowledge(update, context)
    original = await case_by_id(context.session, int(value)) if value.isdigit() else None
    _ = context._
    if original is None or not await mark_duplicate_of(
        context.session, case, original, context.account
    ):
        await send(update, context, refused_text(context, case))
        return
    await drop_buttons(update)
    await send(
        update,
        context,
        _("Noted: {ref} repeats {original}.").format(
            ref=case.reference, original=original.reference
        ),
    )


def refused_text(context: HCContext, case: Case) -> str:
    return context._(
        "You can't do that on {ref} now: it is {status}, or it belongs to someone else."
    ).format(ref=case.reference, status=context._(STATUS_LABELS[case.status]))
