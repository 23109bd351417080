"""Reports, urgent requests and cases: wiring of the flows and the conversation steps.

The flows live in :mod:`handlers.report`, :mod:`handlers.urgent` and
:mod:`handlers.case_desk`; conversation state is a database draft (see
:mod:`handlers.case_drafts`). The escalation sweep runs every 30 seconds on the JobQueue.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import ReplyKeyboardRemove, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.i18n import N_
from bot.runtime import HCContext, runtime_of
from handlers import case_desk, report, urgent
from handlers.case_drafts import DRAFT_GROUP, DraftActive, load_draft, send
from handlers.case_notify import (
    ESCALATION_SWEEP_SECONDS,
    escalate_due_cases,
    tell_requester_alerts_failed,
)
from handlers.common import Command, handles
from models.cases import DRAFT_PERMISSIONS, draft_of, drop_draft, may_finish
from models.roles import Permission

COMMANDS = [
    Command("report", N_("Report a person who may need help"), Permission.REPORT_SIGHTING),
    Command("urgent", N_("Ask the Help Center to come now"), Permission.REQUEST_URGENT),
    Command("cases", N_("Open cases"), Permission.HANDLE_CASES),
    Command("duty", N_("Go on or off duty"), Permission.HANDLE_CASES),
    Command("cancel", N_("Stop what you are writing")),
]


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add this feature's handlers and its escalation job."""
    application.add_handler(TypeHandler(Update, load_draft), group=DRAFT_GROUP)
    in_draft = DraftActive()
    application.add_handler(CommandHandler("cancel", cancel, filters=in_draft))
    application.add_handler(CommandHandler("report", report.start_report))
    application.add_handler(CommandHandler("urgent", urgent.start_urgent))
    application.add_handler(CommandHandler("cases", case_desk.list_cases))
    application.add_handler(CommandHandler("duty", case_desk.duty))
    application.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE & ~filters.COMMAND & in_draft,
            draft_step,
        )
    )
    application.add_handler(CallbackQueryHandler(report.report_button, pattern=r"^rep:"))
    application.add_handler(CallbackQueryHandler(urgent.urgent_button, pattern=r"^urg:"))
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


async def escalation_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    runtime = runtime_of(context.application)
    await escalate_due_cases(runtime.sessionmaker, runtime.settings, runtime.catalogs)


async def draft_step(update: Update, context: HCContext) -> None:
    """A plain message while a report or an urgent request is open: the next answer.

    A draft the sender's role no longer allows is dropped here; the step then refuses
    (``handles``), so the person hears why and is not held in a conversation they cannot end.
    """
    draft = await draft_of(context.session, context.account.id)
    if draft is None:  # cannot happen: the filter saw it in this very transaction
        return
    flow = draft.flow
    if not may_finish(context.account.role, flow, context.settings):
        await drop_draft(context.session, draft)
    if flow == urgent.FLOW:
        await _urgent_step(update, context)
    else:
        await _report_step(update, context)


@handles(report.FLOW, DRAFT_PERMISSIONS[report.FLOW])
async def _report_step(update: Update, context: HCContext) -> None:
    draft = await draft_of(context.session, context.account.id)
    assert draft is not None
    await report.report_step(update, context, draft)


@handles(urgent.FLOW, DRAFT_PERMISSIONS[urgent.FLOW])
async def _urgent_step(update: Update, context: HCContext) -> None:
    draft = await draft_of(context.session, context.account.id)
    assert draft is not None
    await urgent.urgent_step(update, context, draft)


@handles("cancel")
async def cancel(update: Update, context: HCContext) -> None:
    draft = await draft_of(context.session, context.account.id)
    _ = context._
    if draft is None:
        await send(update, context, _("There is nothing to cancel."))
        return
    await drop_draft(context.session, draft)
    await send(
        update, context, _("Cancelled. Nothing was sent."), reply_markup=ReplyKeyboardRemove()
    )
