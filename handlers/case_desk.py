"""The operators' desk: ``/duty``, ``/cases``, a case card, and the buttons that move a case.

Every button names its case (``case:<action>:<id>``), so an old message still works or
answers clearly why it no longer does. Moving a case and telling others about it (edits of
their alerts, feedback to the reporter) happen in one transaction; who is told is the
domain's decision (``models.case_notices``), the same for every path that moves a case.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.i18n import N_, Translator, ago
from bot.parsing import callback_data, parse_id
from bot.runtime import HCContext
from handlers.bad_input import stale_button
from handlers.case_drafts import send
from handlers.case_notify import (
    OUTCOME_LABELS,
    STATUS_LABELS,
    alert_text,
    announce,
    case_facts_lines,
    operator_name,
    taken_text,
)
from handlers.common import acknowledge, drop_buttons, edit_text, handles
from models.accounts import account_by_id
from models.cases import (
    PRESSING_EMERGENCY,
    PRESSING_LATER,
    PRESSING_TODAY,
    Action,
    Case,
    CaseFilter,
    CaseKind,
    CaseOutcome,
    CaseStatus,
    TransitionRefused,
    actions_for,
    age,
    case_by_id,
    case_by_reference,
    cases_reported_by,
    count_unassigned,
    decline_case,
    duplicate_candidates,
    history,
    mark_duplicate_of,
    may_act,
    move_case,
    open_cases,
    pressing_rank,
    set_duty,
    take_case,
)
from models.outbox import IF_FILE_GONE
from models.roles import Permission

log = logging.getLogger(__name__)

FILTER_LABELS = {
    CaseFilter.MINE: N_("Mine"),
    CaseFilter.UNASSIGNED: N_("Unassigned"),
    CaseFilter.ALL: N_("All"),
}

# The urgency mark of a line in /cases: a colour anyone sees at a glance, and a word.
PRESSING_MARKS = {
    PRESSING_EMERGENCY: ("🔴", N_("emergency")),
    PRESSING_TODAY: ("🟠", N_("today")),
    PRESSING_LATER: ("🟢", N_("not urgent")),
}
# Where a card's Take came from: its button carries this, so the card stays a card.
FROM_CARD = "card"

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
    "unalerted": N_("nobody could be alerted"),
    "alerted_late": N_("alert reached the team"),
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
    account = context.account
    if not account.on_duty:
        return _("⚪ You are off duty: you receive no alerts.")
    if account.unreachable_since is not None:
        return _(
            "🟠 You are on duty, but my alerts cannot reach you: Telegram refuses them (you "
            "may have blocked the bot). Write to me in our private chat to receive them again."
        )
    text = _("🟢 You are on duty: you receive alerts for new cases and urgent requests.")
    since = context.scope.was_unreachable_since
    if since is not None:
        local = since.astimezone(context.settings.tz)
        text += "\n" + _(
            "⚠️ Since {time} I could not deliver my alerts to you; from now on they reach you."
        ).format(time=f"{local:%d/%m %H:%M}")
    return text


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
    """``/cases``: the open cases, most pressing first; ``/cases BS-0112-02``: that case."""
    if update.callback_query is None and context.args:
        await _find_case(update, context, context.args[0])
        return
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
        [
            InlineKeyboardButton(
                case_line(case, _), callback_data=callback_data("case", "show", case.id)
            )
        ]
        for case in cases
    ]
    rows.append(
        [
            InlineKeyboardButton(_(label), callback_data=f"cases:list:{f.value}")
            for f, label in FILTER_LABELS.items()
        ]
    )
    await send(update, context, text, reply_markup=InlineKeyboardMarkup(rows))


async def _find_case(update: Update, context: HCContext, reference: str) -> None:
    """A case by its reference, open or closed: its card."""
    case = await case_by_reference(context.session, reference[:20])
    if case is None:
        text = context._(
            "No case has the reference {ref}. References look like BS-0112-02; /cases lists "
            "the open ones."
        ).format(ref=reference[:20].upper())
        await send(update, context, text)
        return
    await send_card(update, context, case)


def case_line(case: Case, _: Translator) -> str:
    """One case in a list: urgency mark, kind, reference, urgency, age, status."""
    icon = "🚨" if case.kind is CaseKind.URGENT else "📋"
    mark, word = PRESSING_MARKS[pressing_rank(case.kind, case.urgency)]
    return (
        f"{mark} {icon} {case.reference} · {_(word)} · {age_text(age(case), _)} · "
        f"{_(STATUS_LABELS[case.status])}"
    )


def age_text(elapsed: timedelta, _: Translator) -> str:
    return ago(max(int(elapsed.total_seconds() // 60), 0), _)


async def card_text(context: HCContext, case: Case) -> str:
    _ = context._
    owner = await account_by_id(context.session, case.owner_id)
    kind = _("Urgent request") if case.kind is CaseKind.URGENT else _("Report")
    lines = [
        f"{kind} {case.reference}",
        _("Status: {status}").format(status=_(STATUS_LABELS[case.status])),
        _("Opened {age}").format(age=age_text(age(case), _)),
    ]
    if owner is not None:
        lines.append(_("Owner: {name}").format(name=operator_name(context.settings, owner, _)))
    lines += case_facts_lines(case, _, pin_below=True)
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
    suffix = {Action.TAKE: (FROM_CARD,)}
    buttons = [
        InlineKeyboardButton(
            labels[action],
            callback_data=callback_data("case", action, case.id, *suffix.get(action, ())),
        )
        for action in actions_for(context.account, case)
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
    """The case's photo; one Telegram no longer knows is said so, and the card stands (the
    outbox sends the note instead of the photo: see ``IF_FILE_GONE``)."""
    gone = context._("The photo of this case is no longer available.")
    await context.bot.send_photo(chat_id, file_id, api_kwargs={IF_FILE_GONE: gone})


# ---- buttons on a case ----------------------------------------------------------------------


@handles("cases", Permission.HANDLE_CASES)
async def case_button(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    parts = query.data.split(":")
    case_id = parse_id(parts[2]) if len(parts) > 2 else None
    if case_id is None:
        await acknowledge(update, context)
        await stale_button(update, context)
        return
    action = parts[1]
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
        await _take(update, context, case, from_card=parts[3:] == [FROM_CARD])
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


async def _take(update: Update, context: HCContext, case: Case, *, from_card: bool) -> None:
    """The first Take wins. On an alert, the alert says so; on a card, the card keeps its
    shape (its buttons go, as after any move) and the fresh card follows."""
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
    assert result.move is not None
    pressed = (query.message.chat.id, query.message.message_id)
    await announce(context.session, result.move, settings, catalogs, answered_in_place=pressed)
    if from_card:
        await drop_buttons(update)
    else:
        taken = _("✅ You took this case.")
        await edit_text(update, alert_text(result.case, 0, _) + "\n\n" + taken)
    await send_card(update, context, result.case)


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
        [
            InlineKeyboardButton(
                _(label), callback_data=callback_data("case", "out", case.id, outcome)
            )
        ]
        for outcome, label in OUTCOME_LABELS.items()
    ]
    await send(
        update,
        context,
        _("How did {ref} end?").format(ref=case.reference),
        reply_markup=InlineKeyboardMarkup(rows),
    )


async def _close(update: Update, context: HCContext, case: Case, value: str) -> None:
    outcome = next((o for o in CaseOutcome if o.value == value), None)
    if outcome is None:
        await acknowledge(update, context)
        await stale_button(update, context)
        return
    await _move(update, context, case, Action.CLOSE.value, outcome=outcome)


async def _move(
    update: Update,
    context: HCContext,
    case: Case,
    action_name: str,
    *,
    outcome: CaseOutcome | None = None,
) -> None:
    action = next((a for a in Action if a.value == action_name), None)
    if action is None:
        await acknowledge(update, context)
        await stale_button(update, context)
        return
    try:
        moved = await move_case(context.session, case, action, context.account, outcome=outcome)
    except TransitionRefused:
        await acknowledge(update, context)
        await send(update, context, refused_text(context, case))
        return
    await acknowledge(update, context)
    await drop_buttons(update)
    await announce(context.session, moved, context.settings, context.runtime.catalogs)
    await send_card(update, context, case)
    if outcome is CaseOutcome.DUPLICATE:
        await _ask_duplicate_of(update, context, case)


async def _ask_duplicate_of(update: Update, context: HCContext, case: Case) -> None:
    """Optional: which case this one repeats, picked among the latest (one tap, or none)."""
    _ = context._
    candidates = await duplicate_candidates(context.session, case)
    if not candidates:
        return
    rows = [
        [
            InlineKeyboardButton(
                case_line(other, _), callback_data=callback_data("case", "dup", case.id, other.id)
            )
        ]
        for other in candidates
    ]
    text = _("Which case does {ref} repeat? Pick it if you know (optional).").format(
        ref=case.reference
    )
    await send(update, context, text, reply_markup=InlineKeyboardMarkup(rows))


async def _duplicate_of(update: Update, context: HCContext, case: Case, value: str) -> None:
    await acknowledge(update, context)
    original_id = parse_id(value)
    original = await case_by_id(context.session, original_id) if original_id else None
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


# ---- /myreports -----------------------------------------------------------------------------


@handles("myreports", Permission.FOLLOW_OWN_REPORTS, private_only=True)
async def my_reports(update: Update, context: HCContext) -> None:
    """``/myreports``: the reports and urgent requests this person made and where each stands."""
    _ = context._
    cases = await cases_reported_by(context.session, context.account)
    if not cases:
        await send(update, context, _("You have not made any report or urgent request yet."))
        return
    lines = [_("Your reports and requests, the latest first:")]
    lines += [my_case_line(context, case) for case in cases]
    await send(update, context, "\n".join(lines)[:4000])


def my_case_line(context: HCContext, case: Case) -> str:
    """Where one's own report stands: no operator's name, no other reporter's words."""
    _ = context._
    icon = "🚨" if case.kind is CaseKind.URGENT else "📋"
    opened = f"{case.created_at.astimezone(context.settings.tz):%d/%m %H:%M}"
    line = f"{icon} {case.reference} · {opened} · {_(STATUS_LABELS[case.status])}"
    if case.outcome is not None:
        line += f" ({_(OUTCOME_LABELS[case.outcome])})"
    return line
