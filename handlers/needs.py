"""The way in for people in need: buttons for what people come for, words understood, the desk.

``/start``, ``/help`` and every answer that would otherwise end the conversation carry the
same buttons (:func:`needs_keyboard`): a bed tonight, a meal, showers, a doctor, "near me"
and the Help Center. A free-text message nobody else took is read for a need
(:mod:`bot.understand`, words kept in the catalogues) and answered as if the matching button
had been pressed; when nothing is recognised, the buttons are offered, never "I did not
understand" alone.

"Talk to the Help Center" waits for one typed message (a prompt, like the directory's typed
answers, see :mod:`models.conversation`), which becomes a case of kind ``help_request``: the desk
is alerted and the case escalates like any other. Outside opening hours the person is told
when the desk opens and its phone.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from telegram import (
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.runtime import HCContext, current_scope
from bot.understand import Need, understand
from handlers import directory
from handlers.case_drafts import MAX_TEXT
from handlers.case_notify import alert_new_case, escalation_intervals
from handlers.common import acknowledge, handles
from handlers.directory_common import (
    NEEDS_PREFIX,
    help_center_line,
    needs_keyboard,
    service_status,
    status_line,
    stop_waiting,
    wait_for,
)
from models.base import clock
from models.cases import CaseKind, Category, NewCase, Urgency, open_case
from models.directory import Category as ServiceCategory
from models.directory import Service, help_center
from models.roles import Role

PREFIX = NEEDS_PREFIX
DESK_PROMPT = "desk_request"
EMERGENCY_NUMBER = "112"

# A need typed in words -> the directory category its button opens.
NEED_CATEGORIES = {
    Need.MEAL: ServiceCategory.MEALS,
    Need.SHOWER: ServiceCategory.SHOWERS,
    Need.DOCTOR: ServiceCategory.HEALTH,
    Need.CLOTHES: ServiceCategory.CLOTHING,
    Need.LUGGAGE: ServiceCategory.LEFT_LUGGAGE,
    Need.DOCUMENTS: ServiceCategory.LEGAL,
}


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Added by :mod:`handlers.fallback` just before its catch-alls: every other flow's
    typed answers and conversations come first."""
    waiting = DeskWaiting()
    application.add_handler(CallbackQueryHandler(on_button, pattern=f"^{PREFIX}"))
    application.add_handler(CommandHandler("cancel", cancel_request, filters=waiting))
    typed = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND & Readable()
    application.add_handler(MessageHandler(typed & waiting, desk_request_text))
    application.add_handler(MessageHandler(typed, free_text))


class DeskWaiting(filters.MessageFilter):
    """Passes the messages of a person asked to write their request to the Help Center."""

    def __init__(self) -> None:
        super().__init__(name="needs.DeskWaiting")

    def filter(self, message: Message) -> bool:
        scope = current_scope.get()
        asked = scope.conversation.question(message.chat.id) if scope is not None else None
        return asked is not None and asked.step == DESK_PROMPT


class Readable(filters.MessageFilter):
    """Text a person can have meant (see :func:`readable`); the rest goes to the fallback."""

    def __init__(self) -> None:
        super().__init__(name="needs.Readable")

    def filter(self, message: Message) -> bool:
        """From a person (a channel post or a message without a sender goes to the fallback)."""
        sender = message.from_user
        if sender is None or sender.is_bot:
            return False
        return message.text is not None and readable(message.text)


# ---- the buttons -----------------------------------------------------------------------------


def public_help_text(context: HCContext, more: list[str]) -> str:
    """For the public: what to press or write; ``more`` are command lines the buttons do
    not cover (a language change, a report when public reports are on)."""
    _ = context._
    text = _(
        'Choose what you need, or write it in your own words (for example "a bed '
        'tonight" or "where can I eat"). You can also send your location.'
    )
    return "\n\n".join([text, *(["\n".join(more)] if more else [])])


async def send_needs(update: Update, context: HCContext, text: str, **kwargs: Any) -> None:
    """``text`` with the needs buttons under it, in the update's chat."""
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_message(
            chat.id, text, reply_markup=needs_keyboard(context), **kwargs
        )


@handles("needs")
async def on_button(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    choice = query.data.removeprefix(PREFIX)
    await acknowledge(update, context)
    if choice == "near":
        await ask_location(update, context)
    elif choice == "desk":
        await start_request(update, context)
    elif choice == "all":
        await directory.services_menu(update, context)


async def ask_location(update: Update, context: HCContext) -> None:
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton(_("📍 Send my location"), request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
    await context.bot.send_message(
        chat.id,
        _("Send your location with the button below, and I will show what is near you."),
        reply_markup=keyboard,
    )


# ---- words -----------------------------------------------------------------------------------


@handles("needs")
async def free_text(update: Update, context: HCContext) -> None:
    """A message no flow was waiting for: answer the need it names, or offer the buttons."""
    message = update.effective_message
    assert message is not None and message.text is not None
    need = understand(message.text, context.runtime.catalogs)
    context.scope.flow = f"needs:{need.value if need else 'unclear'}"
    if need is Need.BED:
        await directory.bed_tonight(update, context)
    elif need in NEED_CATEGORIES:
        await directory.ask_where(update, context, NEED_CATEGORIES[need].value)
    elif need is Need.DESK:
        await start_request(update, context)
    else:
        await send_needs(update, context, unclear_text(context, greeted=need is Need.HELP))


CONTROL = frozenset({"Cc", "Co", "Cn", "Cs"})


def readable(text: str) -> bool:
    """Something visible, and no control characters. Format characters (category Cf: the
    zero-width joiner of "👨‍👩‍👧" or "👩‍⚕️", direction marks in Arabic text) are part
    of ordinary text; only a message made of nothing but them is unreadable."""
    visible = [ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf"]
    controls = [ch for ch in text if unicodedata.category(ch) in CONTROL and ch not in "\n\t\r"]
    return bool(visible) and not controls


def unreadable_text(context: HCContext) -> str:
    return context._(
        "Sorry, I could not read that message: it contains hidden characters. Please "
        "write it again as a plain text message, or send /help."
    )


def unclear_text(context: HCContext, *, greeted: bool = False) -> str:
    _ = context._
    text = (
        _("I am here to help. What do you need?")
        if greeted
        else _("I am not sure what you need. Choose below, or write it in a few words.")
    )
    account = context.scope.account  # None: a message without a sender (a channel post)
    if account is not None and account.role is not Role.PUBLIC:
        text += "\n" + _("Send /help to see the commands of your role.")
    return text


# ---- talk to the Help Center -----------------------------------------------------------------


async def start_request(update: Update, context: HCContext) -> None:
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    await wait_for(context, chat.id, DESK_PROMPT, "")
    center = await help_center(context.session)
    lines = [
        _(
            "Write here, in one message, what you need: the Help Center team will read it "
            "and answer you here. (/cancel to stop)"
        ),
        "",
        help_center_line(center, context),
    ]
    closed = desk_closed_text(context, center)
    if closed:
        lines += ["", closed]
    await context.bot.send_message(
        chat.id, "\n".join(lines), parse_mode="HTML", reply_markup=ReplyKeyboardRemove()
    )


def desk_closed_text(context: HCContext, center: Service | None) -> str | None:
    """Outside opening hours: when the desk opens (shown in its line) and what to do now."""
    if center is None:
        return None
    if service_status(center, clock.now(), context.settings.tz).is_open:
        return None
    return context._(
        "The desk is closed now: your message will be read when it opens, and you can call "
        "its phone. In an emergency call {number}."
    ).format(number=EMERGENCY_NUMBER)


@handles("needs")
async def desk_request_text(update: Update, context: HCContext) -> None:
    """The typed request becomes a case the desk sees, alerted and escalated like the others."""
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.text is not None and chat is not None
    await stop_waiting(context, chat.id)
    settings = context.settings
    case = await open_case(
        context.session,
        context.account,
        NewCase(
            kind=CaseKind.HELP_REQUEST,
            category=Category.OTHER,
            urgency=Urgency.TODAY,
            seen=message.text[:MAX_TEXT],
        ),
        prefix=settings.case_reference_prefix,
        tz=settings.tz,
        first_escalation=escalation_intervals(settings)[0],
    )
    context.scope.concerns("case", case.id)
    await alert_new_case(context.session, case, settings, context.runtime.catalogs)
    _ = context._
    text = _(
        "Thank you. Your request {ref} has reached the Help Center team: someone will "
        "answer you here."
    ).format(ref=case.reference)
    center = await help_center(context.session)
    closed = desk_closed_text(context, center)
    if closed:
        text += "\n\n" + help_center_line(center, context) + "\n\n" + closed
    await send_needs(update, context, text, parse_mode="HTML")


@handles("needs")
async def cancel_request(update: Update, context: HCContext) -> None:
    chat = update.effective_chat
    assert chat is not None
    await stop_waiting(context, chat.id)
    await send_needs(update, context, context._("Cancelled. Nothing was sent."))


async def urgent_refused_text(context: HCContext) -> str:
    """``/urgent`` asked by someone it is not for (the public): where urgent help is."""
    _ = context._
    text = _(
        "/urgent is for police and railway staff. If someone is in danger now, call "
        '{number}. To talk to the Help Center, press "🆘 Talk to the Help Center" in /help '
        "or contact the desk:"
    ).format(number=EMERGENCY_NUMBER)
    return text + "\n\n" + desk_contact(await help_center(context.session), context)


def desk_contact(center: Service | None, context: HCContext) -> str:
    """The desk's name, whether it is open (or when it opens) and its phone, as plain text."""
    _ = context._
    if center is None:
        return _("Ask the Help Center at the railway station.")
    now, zone = clock.now(), context.settings.tz
    lines = [
        center.name_in(_.language),
        status_line(service_status(center, now, zone), now, zone, _),
    ]
    if center.phone:
        lines.append("☎️ " + center.phone)
    return "\n".join(lines)
