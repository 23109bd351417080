"""Operators and coordinators edit a service's hours, closures and notes; staff assignment.

Every edit is a ``service_edit`` row (who, when, before, after) and an audit entry; the
shelter's staff are told through the outbox, in their language. ``/staffof`` links a shelter
staff account to the shelters it may update.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, MessageOriginUser, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.i18n import N_, Translator
from bot.parsing import callback_data, parse_id, parse_telegram_id, shown
from bot.rendering import fit_html, html_format
from bot.runtime import HCContext
from handlers.bad_input import stale_button
from handlers.common import Command, acknowledge, handles
from handlers.directory_common import (
    category_label,
    html_kwargs,
    note_line,
    pending,
    say,
    service_card,
    stop_waiting,
    wait_for,
)
from models.accounts import Account, account_by_id, account_by_telegram_id, account_by_username
from models.base import clock
from models.directory import (
    Category,
    Service,
    add_closure,
    assign_staff,
    notes_of,
    remove_closure,
    service_by_id,
    service_by_key,
    services_in,
    set_hours,
    set_notes,
    shelters,
    shelters_of,
    staff_of,
    unassign_staff,
)
from models.outbox import enqueue
from models.roles import Permission, Role
from models.schedule import format_hours, parse_date, parse_hours

COMMANDS = [
    Command(
        "editservice", N_("Edit a service's hours, closures and notes"), Permission.EDIT_SERVICES
    ),
    Command(
        "staffof", N_("Let a shelter's staff update its beds"), Permission.ASSIGN_SHELTER_STAFF
    ),
]
PREFIX = "edit:"
MAX_NOTE = 1000  # a note is shown in every card of the service
MAX_CLOSURE_NOTE = 200  # the column's size
CATEGORY_VALUES = frozenset(c.value for c in Category)
FIELD_NAMES = {
    "hours": N_("the opening hours"),
    "closure": N_("the closure dates"),
    "notes": N_("the notes"),
}


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    application.add_handler(CommandHandler("editservice", edit_menu))
    application.add_handler(CommandHandler("staffof", staff_command))
    application.add_handler(CallbackQueryHandler(staff_button, pattern=f"^{STAFF_PREFIX}"))
    application.add_handler(CallbackQueryHandler(on_button, pattern=f"^{PREFIX}"))


@handles("services-edit", Permission.EDIT_SERVICES)
async def edit_menu(update: Update, context: HCContext) -> None:
    _ = context._
    buttons = [
        [InlineKeyboardButton(category_label(c, _), callback_data=callback_data("edit", "cat", c))]
        for c in Category
    ]
    await say(
        update, context, _("Which kind of service?"), reply_markup=InlineKeyboardMarkup(buttons)
    )


def _card_keyboard(service: Service, context: HCContext) -> InlineKeyboardMarkup:
    _ = context._
    sid = service.id
    rows = [
        [
            InlineKeyboardButton(_("🕒 Hours"), callback_data=callback_data("edit", "hours", sid)),
            InlineKeyboardButton(
                _("🚫 Add a closure"), callback_data=callback_data("edit", "closure", sid)
            ),
            InlineKeyboardButton(_("📝 Notes"), callback_data=callback_data("edit", "notes", sid)),
        ]
    ]
    today = clock.now().astimezone(context.settings.tz).date()
    for closure in service.closures:
        if closure.day >= today:
            label = _("↩️ Reopen on {date}").format(date=f"{closure.day:%d/%m/%Y}")
            data = callback_data("edit", "reopen", sid, closure.day.isoformat())
            rows.append([InlineKeyboardButton(label, callback_data=data)])
    return InlineKeyboardMarkup(rows)


def _editor_card(service: Service, context: HCContext) -> str:
    _ = context._
    today = clock.now().astimezone(context.settings.tz).date()
    closures = [f"{c.day:%d/%m/%Y}" for c in service.closures if c.day >= today]
    lines = [
        service_card(service, context),
        _("Hours: {hours}").format(hours=hours_text(service, _)),
        _("Closed on: {dates}").format(dates=", ".join(closures) or "—"),
    ]
    # Every language's note, so the editor sees which ones an edit left older.
    lines += [f"📝 {note.language}: {note_line(note, _)}" for note in notes_of(service)]
    return "\n".join(lines)


def hours_text(service: Service, _: Translator) -> str:
    """The weekly hours with the reader's day names (``lun-ven 09:00-13:00``)."""
    text = format_hours((s.as_slot() for s in service.slots), _.language)
    return text or _("closed all week")


@handles("services-edit", Permission.EDIT_SERVICES)
async def on_button(update: Update, context: HCContext) -> None:
    _ = context._
    query = update.callback_query
    chat = update.effective_chat
    assert query is not None and query.data is not None and chat is not None
    action, *args = query.data.removeprefix(PREFIX).split(":")
    await acknowledge(update, context)
    if action == "cat" and args and args[0] in CATEGORY_VALUES:
        services = await services_in(context.session, [args[0]])
        buttons = [
            [
                InlineKeyboardButton(
                    s.name_in(_.language)[:60], callback_data=callback_data("edit", "svc", s.id)
                )
            ]
            for s in services
        ]
        text = _("Which service?") if buttons else _("No service of this kind yet.")
        await say(update, context, text, reply_markup=InlineKeyboardMarkup(buttons))
        return
    if action == "cat":
        await stale_button(update, context)
        return
    service_id = parse_id(args[0]) if args else None
    service = await service_by_id(context.session, service_id) if service_id else None
    if service is None:
        await say(update, context, _("That service no longer exists."))
        return
    context.scope.concerns("service", service.id)
    if action == "svc":
        await say(
            update,
            context,
            fit_html(_editor_card(service, context)),
            reply_markup=_card_keyboard(service, context),
            **html_kwargs(),
        )
    elif action == "reopen" and len(args) == 2 and (day := _iso_day(args[1])) is not None:
        if await remove_closure(context.session, service, day, by=context.account):
            await _edited(update, context, service, "closure")
    elif action in FIELD_NAMES and len(args) == 1:
        await wait_for(context, chat.id, action, str(service.id))
        await say(update, context, _prompt(action, service, context), **html_kwargs())
    else:
        await stale_button(update, context)


def _iso_day(text: str) -> date | None:
    """A closure day as the reopen button writes it (``2026-12-25``), or None."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _prompt(action: str, service: Service, context: HCContext) -> str:
    _ = context._
    name = service.name_in(_.language)
    if action == "hours":
        return html_format(
            _(
                "Send the new weekly hours of {name}, for example:\n"
                "<code>mon-fri 09:00-13:00 14:00-17:30; sat 09:00-12:00</code>\n"
                "<code>daily 20:00-08:00</code> (past midnight is fine)\n"
                "<code>closed</code>\nOr /cancel."
            ),
            name=name,
        )
    if action == "closure":
        return html_format(
            _(
                "Send the date {name} is closed, like 25/12 or 2026-12-25, and a note if you "
                "like (25/12 Christmas). Or /cancel."
            ),
            name=name,
        )
    return html_format(
        _(
            "Send the new note for {name} in your language: the notes in other languages are "
            "kept and shown as older. Send - to remove yours. Or /cancel."
        ),
        name=name,
    )


@handles("services-edit", Permission.EDIT_SERVICES)
async def typed_edit(update: Update, context: HCContext) -> None:
    """The typed answer to "send the new hours / closure date / note" (a role taken away
    since the question: refused aloud, like any step)."""
    _ = context._
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.text is not None and chat is not None
    asked = pending(context, chat.id)
    assert asked is not None
    service_id = parse_id(asked.value)
    service = await service_by_id(context.session, service_id) if service_id else None
    if service is None:
        await stop_waiting(context, chat.id)
        await say(update, context, _("That service no longer exists."))
        return
    context.scope.concerns("service", service.id)
    text = message.text.strip()
    limit = MAX_NOTE if asked.step == "notes" else MAX_CLOSURE_NOTE
    if asked.step != "hours" and len(text) > limit:
        await say(update, context, _too_long(_, limit))
        return
    try:
        if asked.step == "hours":
            slots = parse_hours(text.lower(), languages=(_.language,))
            await set_hours(context.session, service, slots, by=context.account)
        elif asked.step == "closure":
            first, _sep, note = text.partition(" ")
            today = clock.now().astimezone(context.settings.tz).date()
            day = parse_date(first, today)
            await add_closure(
                context.session, service, day, note.strip() or None, by=context.account
            )
        else:
            await set_notes(
                context.session,
                service,
                "" if text == "-" else text,
                _.language,
                by=context.account,
            )
    except ValueError:
        await say(
            update,
            context,
            _("I could not read that. Please try again like the example, or /cancel."),
        )
        return
    await stop_waiting(context, chat.id)
    await _edited(update, context, service, asked.step)


async def _edited(update: Update, context: HCContext, service: Service, field: str) -> None:
    """Confirm to the editor and tell the shelter's staff, through the outbox."""
    _ = context._
    await say(
        update,
        context,
        fit_html(_("Saved.") + "\n\n" + _editor_card(service, context)),
        reply_markup=_card_keyboard(service, context),
        **html_kwargs(),
    )
    editor = context.account.display_name or context.account.operator_code or "Help Center"
    for staff in await staff_of(context.session, service):
        if staff.id == context.account.id:
            continue
        text = _edit_notice(context.translator_for(staff), editor, field, service)
        enqueue(
            context.session,
            chat_id=staff.telegram_id,
            kind="service_edited",
            params={"text": text},
            account_id=staff.id,
            subject_type="service",
            subject_id=service.id,
        )


def _too_long(_: Translator, limit: int) -> str:
    return _("That is a bit long: please keep it under {limit} characters.").format(limit=limit)


def _edit_notice(_: Translator, editor: str, field: str, service: Service) -> str:
    return _("{editor} (Help Center) changed {what} of {name}.").format(
        editor=editor, what=_(FIELD_NAMES[field]), name=service.name_in(_.language)
    )


def _assigned_notice(_: Translator, service: Service) -> str:
    return _("You can now update the free beds of {name}: send /beds.").format(
        name=service.name_in(_.language)
    )


# ---- staff assignment ------------------------------------------------------------------------


STAFF_PREFIX = "staff:"


@handles("services-edit", Permission.ASSIGN_SHELTER_STAFF)
async def staff_command(update: Update, context: HCContext) -> None:
    """``/staffof``: who? (a forwarded message of theirs, or their @username), then the
    shelters as buttons. ``/staffof @name`` goes straight to the shelters. The older
    ``/staffof [remove] TELEGRAM_ID SHELTER_ID`` still works, for scripts."""
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    args = list(context.args or [])
    if len(args) == 1 and args[0].startswith("@"):
        await _show_shelters_for(
            update, context, await account_by_username(context.session, args[0])
        )
        return
    if args:
        await _staff_by_ids(update, context, args)
        return
    await wait_for(context, chat.id, "staff", "")
    await say(update, context, _ask_who(_))


def _ask_who(_: Translator) -> str:
    return _(
        "Whose shelters? Forward me a message they wrote, or send their @username (they "
        "must have written to me once). Or /cancel."
    )


async def typed_staff(update: Update, context: HCContext) -> None:
    """The answer to "whose shelters?": a forwarded message or an @username."""
    _ = context._
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and chat is not None
    origin = message.forward_origin
    if isinstance(origin, MessageOriginUser):
        account = await account_by_telegram_id(context.session, origin.sender_user.id)
    elif origin is not None:  # their privacy settings hide who wrote it
        await say(
            update,
            context,
            _(
                "Their privacy settings hide who wrote that message. Send their @username "
                "instead (they must have written to me once). Or /cancel."
            ),
        )
        return
    elif (message.text or "").strip().startswith("@"):
        account = await account_by_username(context.session, message.text or "")
    else:
        await say(update, context, _ask_who(_))
        return
    if account is not None and account.role is Role.SHELTER_STAFF:
        await stop_waiting(context, chat.id)
    await _show_shelters_for(update, context, account)


async def _show_shelters_for(update: Update, context: HCContext, account: Account | None) -> None:
    """The shelters as buttons, those the person already updates ticked (a tap switches)."""
    _ = context._
    if account is None or account.role is not Role.SHELTER_STAFF:
        await say(update, context, _not_shelter_staff(_))
        return
    await say(
        update,
        context,
        _("Which shelters may they update? Tap to add or remove."),
        reply_markup=await _shelter_keyboard(context, account),
    )


def _not_shelter_staff(_: Translator) -> str:
    return _(
        "That person is not registered as shelter staff. Invite them first with "
        "/invite shelter_staff, then try again."
    )


async def _shelter_keyboard(context: HCContext, account: Account) -> InlineKeyboardMarkup:
    _ = context._
    theirs = {service.id for service in await shelters_of(context.session, account)}
    rows = [
        [
            InlineKeyboardButton(
                ("✅ " if shelter.id in theirs else "") + shelter.name_in(_.language)[:60],
                callback_data=f"{STAFF_PREFIX}{account.id}:{shelter.id}",
            )
        ]
        for shelter in await shelters(context.session)
    ]
    return InlineKeyboardMarkup(rows)


@handles("services-edit", Permission.ASSIGN_SHELTER_STAFF)
async def staff_button(update: Update, context: HCContext) -> None:
    """A shelter tapped: the person becomes its staff, or stops being it."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await acknowledge(update, context)
    account_id, _sep, service_id = query.data.removeprefix(STAFF_PREFIX).partition(":")
    account = await account_by_id(context.session, parse_id(account_id))
    shelter_id = parse_id(service_id)
    service = await service_by_id(context.session, shelter_id) if shelter_id else None
    if service is None or not service.is_shelter:
        await say(update, context, context._("That service no longer exists."))
        return
    if account is None or account.role is not Role.SHELTER_STAFF:
        await say(update, context, _not_shelter_staff(context._))
        return
    context.scope.concerns("service", service.id)
    theirs = {s.id for s in await shelters_of(context.session, account)}
    await _assign(update, context, account, service, removing=service.id in theirs)
    await query.edit_message_reply_markup(reply_markup=await _shelter_keyboard(context, account))


async def _staff_by_ids(update: Update, context: HCContext, args: list[str]) -> None:
    """``/staffof [remove] TELEGRAM_ID SHELTER_ID``: kept for scripts and old habits."""
    _ = context._
    removing = args[0].lower() == "remove"
    if removing:
        args = args[1:]
    telegram_id = parse_telegram_id(args[0]) if len(args) == 2 else None
    if telegram_id is None:
        await say(
            update,
            context,
            _(
                "Write /staffof and forward me a message of theirs, or /staffof @username; "
                "then pick the shelters."
            ),
        )
        return
    account = await account_by_telegram_id(context.session, telegram_id)
    service = await service_by_key(context.session, args[1])
    if service is None or not service.is_shelter:
        text = _("I know no shelter with the id {id}.").format(id=shown(args[1]))
        await say(update, context, text)
        return
    if account is None or account.role is not Role.SHELTER_STAFF:
        await say(update, context, _not_shelter_staff(_))
        return
    context.scope.concerns("service", service.id)
    await _assign(update, context, account, service, removing)


async def _assign(
    update: Update, context: HCContext, account: Account, service: Service, removing: bool
) -> None:
    _ = context._
    name = service.name_in(_.language)
    if removing:
        await unassign_staff(context.session, account, service, by=context.account)
        await say(update, context, _("Done: they no longer update {name}.").format(name=name))
        return
    await assign_staff(context.session, account, service, by=context.account)
    await say(update, context, _("Done: they can now update the beds of {name}.").format(name=name))
    enqueue(
        context.session,
        chat_id=account.telegram_id,
        kind="staff_assigned",
        params={"text": _assigned_notice(context.translator_for(account), service)},
        account_id=account.id,
        subject_type="service",
        subject_id=service.id,
    )
