"""Shelter staff keep tonight's free beds fresh: ``/beds``, a few taps, and a daily reminder.

Shelter staff see and change only the shelters assigned to them (``/staffof``); Help Center
staff see all. Every change is kept in the history with who and when. The reminder is a
sweep of the database at or after ``bed_reminder_time`` (local): it runs once a day whatever
the number of workers (``claim_job_run``), survives restarts (a late start still sends it),
and goes through the outbox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.i18n import N_
from bot.jobs import sweep_job
from bot.parsing import callback_data, parse_id, parse_number
from bot.rendering import bold
from bot.runtime import HCContext, Runtime
from handlers.bad_input import stale_button
from handlers.common import Command, acknowledge, edit_text, handles
from handlers.directory_common import (
    beds_line,
    html_kwargs,
    pending,
    say,
    stop_waiting,
    wait_for,
)
from models.accounts import audit
from models.base import clock
from models.directory import Service as ServiceRow
from models.directory import (
    local_midnight,
    may_update_beds,
    service_by_id,
    set_beds,
    shelters_of,
    staff_with_stale_counts,
)
from models.jobs import claim_job_run
from models.outbox import enqueue
from models.roles import Permission

COMMANDS = [
    Command("beds", N_("Update your shelter's free beds for tonight"), Permission.UPDATE_BEDS)
]
PREFIX = "beds:"
MAX_BEDS = 5000
REMINDER_JOB = "bed-reminder"
SWEEP_SECONDS = 300


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    application.add_handler(CommandHandler("beds", my_shelters))
    application.add_handler(CallbackQueryHandler(on_button, pattern=f"^{PREFIX}"))
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            reminder_job, interval=SWEEP_SECONDS, first=30, name=REMINDER_JOB
        )


def shelter_text(service: ServiceRow, context: HCContext) -> str:
    _ = context._
    line = beds_line(service, clock.now(), context.settings.bed_count_stale_hours, _)
    return f"{bold(service.name_in(_.language))}\n{line}"


def shelter_keyboard(service: ServiceRow, context: HCContext) -> InlineKeyboardMarkup:
    _ = context._
    sid = service.id
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("➖ 1", callback_data=callback_data("beds", "-", sid)),
                InlineKeyboardButton("➕ 1", callback_data=callback_data("beds", "+", sid)),
            ],
            [
                InlineKeyboardButton(
                    _("✏️ Type the number"), callback_data=callback_data("beds", "set", sid)
                ),
                InlineKeyboardButton(
                    _("✅ Still right"), callback_data=callback_data("beds", "ok", sid)
                ),
            ],
        ]
    )


@handles("beds", Permission.UPDATE_BEDS)
async def my_shelters(update: Update, context: HCContext) -> None:
    _ = context._
    mine = await shelters_of(context.session, context.account)
    if not mine:
        await say(
            update,
            context,
            _("No shelter is assigned to you yet. Ask the Help Center to add you with /staffof."),
        )
        return
    await say(update, context, _("Your shelters. Tap to change tonight's free beds:"))
    for service in mine:
        await say(
            update,
            context,
            shelter_text(service, context),
            reply_markup=shelter_keyboard(service, context),
            **html_kwargs(),
        )


async def _shelter_for(update: Update, context: HCContext, raw_id: str) -> ServiceRow | None:
    """The shelter a button names, if this person may update it; a denial is audited."""
    service_id = parse_id(raw_id)
    service = await service_by_id(context.session, service_id) if service_id else None
    if service is not None and await may_update_beds(context.session, context.account, service):
        context.scope.concerns("service", service.id)
        return service
    audit(
        context.session,
        context.account,
        "denied",
        subject_type="service",
        subject_id=service.id if service else None,
        detail="update_beds: not their shelter",
    )
    await say(update, context, context._("You can update only the shelters you manage."))
    return None


@handles("beds", Permission.UPDATE_BEDS)
async def on_button(update: Update, context: HCContext) -> None:
    _ = context._
    query = update.callback_query
    assert query is not None and query.data is not None
    action, _sep, raw_id = query.data.removeprefix(PREFIX).partition(":")
    await acknowledge(update, context)
    service = await _shelter_for(update, context, raw_id)
    if service is None:
        return
    if action == "set":
        question = _("How many beds are free tonight at {name}? Send a number.")
        await _ask_for_count(update, context, service, question)
        return
    change = {"+": 1, "-": -1, "ok": 0}.get(action)
    if change is None:
        await stale_button(update, context)
        return
    if service.beds is None or service.beds.free is None:
        # Nothing to confirm or to change by one: a guess here would show up in /tonight.
        question = _(
            "There is no count for tonight yet: how many beds are free at {name}? Send a number."
        )
        await _ask_for_count(update, context, service, question)
        return
    await set_beds(context.session, service, free=service.beds.free + change, by=context.account)
    await edit_text(
        update,
        shelter_text(service, context),
        reply_markup=shelter_keyboard(service, context),
        **html_kwargs(),
    )


async def _ask_for_count(
    update: Update, context: HCContext, service: ServiceRow, question: str
) -> None:
    """Wait for the typed number of free beds (``question`` names the shelter as {name})."""
    chat = update.effective_chat
    assert chat is not None
    await wait_for(context, chat.id, "beds", str(service.id))
    await say(update, context, question.format(name=service.name_in(context._.language)))


async def typed_number(update: Update, context: HCContext) -> None:
    """The number of free beds, typed after "Type the number"."""
    _ = context._
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.text is not None and chat is not None
    asked = pending(context, chat.id)
    assert asked is not None
    context.scope.flow = "beds"
    free = parse_number(message.text, low=0, high=MAX_BEDS)
    if free is None:
        await say(update, context, _("Please send only a number, for example 4."))
        return
    service = await _shelter_for(update, context, asked.value)
    total = service.beds.total if service is not None and service.beds else 0
    if service is not None and total and free > total:  # a slip, not a number to cap
        refusal = _(
            "That is more than all the beds of {name} ({total}). Send a number from 0 to {total}."
        )
        await say(update, context, refusal.format(name=service.name_in(_.language), total=total))
        return  # still waiting for the number
    await stop_waiting(context, chat.id)
    if service is None:
        return
    await set_beds(context.session, service, free=free, by=context.account)
    await say(
        update,
        context,
        _("Saved.") + "\n" + shelter_text(service, context),
        reply_markup=shelter_keyboard(service, context),
        **html_kwargs(),
    )


# ---- the daily reminder ----------------------------------------------------------------------


async def send_bed_reminders(session: AsyncSession, runtime: Runtime) -> int:
    """Once a day, at or after the reminder time, remind staff whose counts are not updated.

    Returns the number of reminders enqueued (0 when it is too early or already done today).
    """
    settings = runtime.settings
    zone = settings.tz
    now = runtime.clock.now()
    local = now.astimezone(zone)
    if local.time() < settings.bed_reminder_time:
        return 0
    day = local.date().isoformat()
    if not await claim_job_run(session, REMINDER_JOB, day):
        return 0
    catalogs = runtime.catalogs
    sent = 0
    for account, services in await staff_with_stale_counts(session, local_midnight(now, zone)):
        _ = catalogs.translator(catalogs.pick(account.language, None))
        names = "\n".join(f"• {s.name_in(_.language)}" for s in services)
        text = _(
            "Good evening! The free beds for tonight are not updated yet for:\n{names}\n\n"
            "Send /beds to update them: people in the street are looking at these numbers."
        ).format(names=names)
        enqueue(
            session,
            chat_id=account.telegram_id,
            kind="bed_reminder",
            params={"text": text},
            account_id=account.id,
            dedupe_key=f"{REMINDER_JOB}:{day}:{account.id}",
        )
        sent += 1
    return sent


# The sweep every few minutes, one unit of work each (the next one tries again on failure).
reminder_job = sweep_job(REMINDER_JOB, send_bed_reminders)
