"""Reports, urgent requests and cases: wiring of the flows and the conversation steps.

The flows live in :mod:`handlers.report`, :mod:`handlers.urgent` and
:mod:`handlers.case_desk`; a draft is an open flow of the person's conversation
(:mod:`models.conversation`, routed by :mod:`handlers.case_drafts`). The escalation sweep
runs every 30 seconds on the JobQueue.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.i18n import N_
from bot.jobs import sweep_job
from bot.runtime import HCContext, runtime_of
from handlers import case_desk, report, urgent
from handlers.case_drafts import DRAFT_GROUP, DraftActive, send
from handlers.case_notify import (
    ESCALATION_SWEEP_SECONDS,
    escalation_sweep,
    tell_requester_alerts_failed,
)
from handlers.common import Command, acknowledge, drop_buttons, handles
from models.conversation import FLOW_PERMISSIONS, Flow, end, may_finish
from models.roles import Permission

COMMANDS = [
    Command("report", N_("Report a person who may need help"), Permission.REPORT_SIGHTING),
    Command("urgent", N_("Ask the Help Center to come now"), Permission.REQUEST_URGENT),
    Command("cases", N_("Open cases"), Permission.HANDLE_CASES),
    Command("duty", N_("Go on or off duty"), Permission.HANDLE_CASES),
    Command(
        "myreports",
        N_("Your reports and requests: where each stands"),
        Permission.FOLLOW_OWN_REPORTS,
    ),
    Command("cancel", N_("Stop what you are writing")),
]


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add this feature's handlers and its escalation job."""
    application.add_handler(TypeHandler(Update, draft_gate), group=DRAFT_GROUP)
    in_draft = DraftActive()
    application.add_handler(CommandHandler("cancel", cancel, filters=in_draft))
    application.add_handler(CommandHandler("report", report.start_report))
    application.add_handler(CommandHandler("urgent", urgent.start_urgent))
    application.add_handler(CommandHandler("cases", case_desk.list_cases))
    application.add_handler(CommandHandler("duty", case_desk.duty))
    application.add_handler(CommandHandler("myreports", case_desk.my_reports))
    application.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & ~filters.COMMAND & in_draft,
            draft_step,
        )
    )
    application.add_handler(CallbackQueryHandler(report.report_button, pattern=r"^rep:"))
    application.add_handler(CallbackQueryHandler(urgent.urgent_button, pattern=r"^urg:"))
    application.add_handler(CallbackQueryHandler(draft_button, pattern=r"^draft:"))
    application.add_handler(CallbackQueryHandler(case_desk.case_button, pattern=r"^case:"))
    application.add_handler(CallbackQueryHandler(case_desk.list_cases, pattern=r"^cases:list:"))
    application.add_handler(
        CallbackQueryHandler(case_desk.duty_button_pressed, pattern=r"^duty:(on|off)$")
    )
    runtime = runtime_of(application)

    async def alert_lost(session: AsyncSession, case_id: int) -> None:
        await tell_requester_alerts_failed(session, case_id, runtime.settings, runtime.catalogs)

    runtime.extras.setdefault("on_alert_lost", []).append(alert_lost)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            escalation_job, interval=ESCALATION_SWEEP_SECONDS, first=5, name="case-escalation"
        )


# Every 30 seconds, one unit of work: escalations, late alerts, requesters told of lost ones.
escalation_job = sweep_job("case-escalation", escalation_sweep)


# ---- a draft in progress does not swallow another flow -------------------------------------

# The buttons of each draft's own conversation.
FLOW_BUTTONS: dict[str, str] = {report.FLOW: "rep:", urgent.FLOW: "urg:"}
# Buttons that never wait for a typed answer, so they cannot take a draft's next answer: the
# guard's own, the case desk (an operator writing a report must still be able to take an
# urgent case), the privacy notice.
INDEPENDENT_BUTTONS = ("draft:", "case:", "cases:", "duty:", "pv:")
# Commands that belong to the conversation itself.
DRAFT_COMMANDS = frozenset({"cancel"})


async def draft_gate(update: Update, context: HCContext) -> None:
    """Group -2: in a chat a report or an urgent request holds (see
    :mod:`models.conversation`), a command or another flow's button gets "continue or
    discard?" and goes no further (it is neither run nor taken as the next answer)."""
    if update.message is None and update.callback_query is None:
        return
    chat = update.effective_chat
    held = context.conversation.holding(chat.id if chat is not None else None)
    if held is None or not _leaves_the_draft(update, held.flow):
        return
    flow = held.flow
    context.scope.flow = f"draft_guard:{flow}"
    await acknowledge(update, context)
    await send(
        update, context, _in_progress_text(context, flow), reply_markup=_gate_buttons(context)
    )
    raise ApplicationHandlerStop


def _leaves_the_draft(update: Update, flow: str) -> bool:
    query = update.callback_query
    if query is not None:
        data = query.data or ""
        return not data.startswith((FLOW_BUTTONS.get(flow, "-"), *INDEPENDENT_BUTTONS))
    message = update.message
    command = _command_of(message.text or "") if message is not None else None
    return command is not None and command not in DRAFT_COMMANDS


def _command_of(text: str) -> str | None:
    """The command a message starts with (``/help@bot x`` → ``help``), or None."""
    if not text.startswith("/") or len(text) < 2:
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()


def _in_progress_text(context: HCContext, flow: str) -> str:
    _ = context._
    if flow == urgent.FLOW:
        return _("You have an urgent request in progress: continue it, or discard it?")
    return _("You have a report in progress: continue it, or discard it?")


def _gate_buttons(context: HCContext) -> InlineKeyboardMarkup:
    _ = context._
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("Continue"), callback_data="draft:continue"),
                InlineKeyboardButton(_("Discard"), callback_data="draft:discard"),
            ]
        ]
    )


@handles("draft_guard")
async def draft_button(update: Update, context: HCContext) -> None:
    """Continue: the current question again. Discard: the draft goes, nothing was sent."""
    query = update.callback_query
    assert query is not None
    _ = context._
    await acknowledge(update, context)
    await drop_buttons(update)
    draft = context.conversation.draft
    if draft is None:
        await send(update, context, _("Nothing is in progress any more."))
        return
    if query.data == "draft:discard":
        await end(context.session, context.conversation, Flow(draft.flow))
        text = _("Discarded: nothing was sent. You can send your command again now.")
        await send(update, context, text, reply_markup=ReplyKeyboardRemove())
    elif draft.flow == urgent.FLOW:
        await urgent.ask(update, context, draft)
    else:
        await report.ask(update, context, draft)


async def draft_step(update: Update, context: HCContext) -> None:
    """A plain message while a report or an urgent request is open: the next answer.

    A draft the sender's role no longer allows is dropped here; the step then refuses
    (``handles``), so the person hears why and is not held in a conversation they cannot end.
    """
    draft = context.conversation.draft
    if draft is None:  # cannot happen: the filter saw it in this very update
        return
    flow = Flow(draft.flow)
    if not may_finish(context.account.role, flow, context.settings):
        await end(context.session, context.conversation, flow)
    if flow == urgent.FLOW:
        await _urgent_step(update, context)
    else:
        await _report_step(update, context)


@handles(report.FLOW, FLOW_PERMISSIONS[report.FLOW])
async def _report_step(update: Update, context: HCContext) -> None:
    draft = context.conversation.draft
    assert draft is not None
    await report.report_step(update, context, draft)


@handles(urgent.FLOW, FLOW_PERMISSIONS[urgent.FLOW])
async def _urgent_step(update: Update, context: HCContext) -> None:
    draft = context.conversation.draft
    assert draft is not None
    await urgent.urgent_step(update, context, draft)


@handles("cancel")
async def cancel(update: Update, context: HCContext) -> None:
    draft = context.conversation.draft
    _ = context._
    if draft is None:
        await send(update, context, _("There is nothing to cancel."))
        return
    await end(context.session, context.conversation, Flow(draft.flow))
    await send(
        update, context, _("Cancelled. Nothing was sent."), reply_markup=ReplyKeyboardRemove()
    )
