"""Where to sleep, eat, wash: the services menu, "near me", the list by area, a bed tonight.

Buttons first, typing optional. A person picks a category; the bot asks for the location
with Telegram's location button (or a typed place name, or an area) and answers with the
nearest services, open now or when they open, and a venue message per service so the phone
can navigate. ``register`` also wires shelter staff's ``/beds`` (:mod:`handlers.beds`) and
the operators' editing (:mod:`handlers.services_edit`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.i18n import N_, distance
from bot.parsing import callback_data, parse_coordinates, parse_index, valid_coordinates
from bot.rendering import html_format
from bot.runtime import HCContext
from handlers import beds, services_edit
from handlers.bad_input import stale_button
from handlers.common import Command, acknowledge, handles
from handlers.directory_common import (
    DIRECTORY_PREFIX,
    Waiting,
    button_rows,
    category_label,
    help_center_line,
    html_kwargs,
    needs_keyboard,
    pending,
    say,
    send_cards,
    service_card,
    service_status,
    stop_waiting,
    wait_for,
)
from models.base import clock
from models.directory import (
    Category,
    Freshness,
    Nearby,
    Service,
    by_area,
    freshness,
    help_center,
    nearest,
    resolve_place,
    services_in,
    shelters,
)
from models.roles import Permission

COMMANDS = [
    Command(
        "services", N_("Where to sleep, eat, wash: services near you"), Permission.USE_DIRECTORY
    ),
    Command("tonight", N_("A bed tonight: shelters with free beds"), Permission.USE_DIRECTORY),
    *beds.COMMANDS,
    *services_edit.COMMANDS,
]

PREFIX = DIRECTORY_PREFIX
CATEGORY_VALUES = frozenset(c.value for c in Category)
TONIGHT = timedelta(hours=24)  # a shelter opening within a day counts for tonight


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add the directory's handlers and the bed-count reminder job."""
    waiting = Waiting()
    application.add_handler(CommandHandler("services", services_menu))
    application.add_handler(CommandHandler("tonight", bed_tonight))
    application.add_handler(CommandHandler("cancel", cancel, filters=waiting))
    application.add_handler(CallbackQueryHandler(on_button, pattern=f"^{PREFIX}"))
    application.add_handler(MessageHandler(filters.LOCATION & ~filters.UpdateType.EDITED, location))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & waiting, typed_text))
    beds.register(application)
    services_edit.register(application)


# ---- the menu --------------------------------------------------------------------------------


def categories_keyboard(
    context: HCContext, near: tuple[float, float] | None = None
) -> InlineKeyboardMarkup:
    """The categories; with ``near``, each button carries the shared location too."""
    _ = context._
    buttons = [
        InlineKeyboardButton(
            category_label(category, _), callback_data=_category_data(category, near)
        )
        for category in Category
    ]
    bed = [InlineKeyboardButton(_("🛏 A bed tonight"), callback_data=callback_data("dir", "bed"))]
    return InlineKeyboardMarkup([bed, *button_rows(buttons)])


def _category_data(category: Category, near: tuple[float, float] | None) -> str:
    if near is None:
        return callback_data("dir", "cat", category.value)
    return callback_data("dir", "near", category.value, f"{near[0]:.5f}", f"{near[1]:.5f}")


@handles("directory", Permission.USE_DIRECTORY)
async def services_menu(update: Update, context: HCContext) -> None:
    _ = context._
    await say(
        update,
        context,
        _("What do you need? Choose, and I will show what is near you and open now."),
        reply_markup=categories_keyboard(context),
    )


@handles("directory", Permission.USE_DIRECTORY)
async def on_button(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    parts = query.data.removeprefix(PREFIX).split(":")
    await acknowledge(update, context)
    action, category = parts[0], parts[1] if len(parts) > 1 else ""
    where = parse_coordinates(*parts[2:]) if len(parts) == 4 else None
    if action == "bed":
        await bed_tonight(update, context)
    elif category not in CATEGORY_VALUES:
        await stale_button(update, context)
    elif action == "cat" and len(parts) == 2:
        await ask_where(update, context, category)
    elif action == "area" and len(parts) == 3:
        await list_area(update, context, category, parts[2])
    elif action == "near" and where is not None:
        await answer_near(update, context, category, *where)
    else:
        await stale_button(update, context)


def _categories(category: str) -> list[str]:
    """A category lists what its name says: night shelters are not the winter plan's beds
    (and the reverse); "A bed tonight" (:func:`bed_tonight`) is the one answer for both."""
    return [category]


async def ask_where(update: Update, context: HCContext, category: str) -> None:
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    await wait_for(context, chat.id, "place", category)
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton(_("📍 Send my location"), request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
    await context.bot.send_message(
        chat.id,
        _(
            "{category}: send your location with the button below and I will list the "
            "nearest. Or type an address or a station or square name."
        ).format(category=category_label(category, _)),
        reply_markup=keyboard,
    )
    areas = list(by_area(await services_in(context.session, _categories(category))))
    if areas:
        buttons = [
            [InlineKeyboardButton(area, callback_data=callback_data("dir", "area", category, n))]
            for n, area in enumerate(areas)
        ]
        await context.bot.send_message(
            chat.id, _("Or choose an area:"), reply_markup=InlineKeyboardMarkup(buttons)
        )


async def list_area(update: Update, context: HCContext, category: str, index: str) -> None:
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    areas = list(by_area(await services_in(context.session, _categories(category))).items())
    position = parse_index(index, len(areas))
    if position is None:
        await context.bot.send_message(chat.id, _("That list has changed. Please choose again."))
        return
    area, services = areas[position]
    cards = [service_card(s, context, number=n, with_beds=True) for n, s in enumerate(services, 1)]
    text = html_format(_("{category} — {area}:"), category=category_label(category, _), area=area)
    await send_cards(context, chat.id, [text, *cards], reply_markup=ReplyKeyboardRemove())


# ---- near me ---------------------------------------------------------------------------------


@handles("directory", Permission.USE_DIRECTORY)
async def location(update: Update, context: HCContext) -> None:
    """A shared location: answer for the category asked, or ask which one."""
    _ = context._
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.location is not None and chat is not None
    where = valid_coordinates(message.location.latitude, message.location.longitude)
    if where is None:
        await say(
            update,
            context,
            _("That location does not look right. Please share it again or describe the place."),
        )
        return
    asked = pending(context, chat.id)
    if asked is not None and asked.step == "place":
        await stop_waiting(context, chat.id)
        await answer_near(update, context, asked.value, *where)
        return
    await say(
        update,
        context,
        _("What are you looking for near there?"),
        reply_markup=categories_keyboard(context, near=where),
    )


async def answer_near(
    update: Update,
    context: HCContext,
    category: str,
    lat: float,
    lon: float,
    place: str | None = None,
) -> None:
    _ = context._
    chat = update.effective_chat
    assert chat is not None
    settings = context.settings
    found = await nearest(
        context.session,
        lat,
        lon,
        _categories(category),
        limit=settings.directory_nearest_count,
        max_distance_m=settings.directory_max_distance_km * 1000,
    )
    if not found:
        await _nothing_near(update, context, category)
        return
    label = category_label(category, _)
    header = (
        html_format(_("{category} nearest to {place}:"), category=label, place=place)
        if place
        else html_format(_("{category} nearest to you:"), category=label)
    )
    cards = [
        service_card(n.service, context, distance_m=n.distance_m, number=i, with_beds=True)
        for i, n in enumerate(found, 1)
    ]
    await send_cards(context, chat.id, [header, *cards], reply_markup=ReplyKeyboardRemove())
    for near in found:
        await _venue(context, chat.id, near)


async def _venue(context: HCContext, chat_id: int, near: Nearby) -> None:
    where = near.service.location
    if where is None:
        return
    away = distance(near.distance_m, context._)
    await context.bot.send_venue(
        chat_id,
        latitude=where.latitude,
        longitude=where.longitude,
        title=near.service.name_in(context._.language)[:200],
        address=f"{where.address} · {away}"[:200],
    )


async def _nothing_near(update: Update, context: HCContext, category: str) -> None:
    _ = context._
    text = html_format(
        _(
            "I know no {category} within {km} km of there: the directory covers the city only. "
            "The Help Center can help you find something:"
        ),
        category=category_label(category, _),
        km=f"{context.settings.directory_max_distance_km:g}",
    )
    center = await help_center(context.session)
    await say(
        update,
        context,
        text + "\n\n" + help_center_line(center, context),
        reply_markup=needs_keyboard(context),  # the location button was a one-time keyboard
        **html_kwargs(),
    )


@handles("directory", Permission.USE_DIRECTORY)
async def typed_text(update: Update, context: HCContext) -> None:
    """A typed answer the directory asked for: a place name, a number of beds, new hours."""
    chat = update.effective_chat
    assert chat is not None
    asked = pending(context, chat.id)
    if asked is None:
        return
    if asked.step == "place":
        await typed_place(update, context, asked.value)
    elif asked.step == "beds":
        await beds.typed_number(update, context)
    elif asked.step == "staff":
        await services_edit.typed_staff(update, context)
    else:
        await services_edit.typed_edit(update, context)


async def typed_place(update: Update, context: HCContext, category: str) -> None:
    _ = context._
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None and message.text is not None and chat is not None
    place = await resolve_place(context.session, message.text)
    if place is None:
        await say(
            update,
            context,
            _(
                "I do not know that place. Try a station, a square or a street name, or "
                "send your location with the button."
            ),
        )
        return
    await stop_waiting(context, chat.id)
    await answer_near(update, context, category, place.latitude, place.longitude, place.name)


@handles("directory")
async def cancel(update: Update, context: HCContext) -> None:
    chat = update.effective_chat
    assert chat is not None
    await stop_waiting(context, chat.id)
    await say(update, context, context._("Cancelled."), reply_markup=ReplyKeyboardRemove())


# ---- a bed tonight ---------------------------------------------------------------------------


def _bed_order(service: Service, stale_hours: float) -> tuple[int, int]:
    fresh = freshness(service.beds, clock.now(), stale_hours)
    free = service.beds.free if service.beds and service.beds.free is not None else 0
    rank = {Freshness.FRESH: 0, Freshness.UNCONFIRMED: 1, Freshness.UNKNOWN: 2}[fresh]
    return (0 if free > 0 else 1) * 3 + rank, -free


@handles("directory", Permission.USE_DIRECTORY)
async def bed_tonight(update: Update, context: HCContext) -> None:
    """Shelters opening tonight: free beds first, each count with its age; how to get a place."""
    _ = context._
    now = clock.now()
    zone = context.settings.tz
    stale = context.settings.bed_count_stale_hours
    tonight = []
    for service in await shelters(context.session):
        state = service_status(service, now, zone)
        if state.is_open or (state.opens_at is not None and state.opens_at - now < TONIGHT):
            tonight.append(service)
    tonight.sort(key=lambda s: _bed_order(s, stale))
    with_beds = [s for s in tonight if s.beds and s.beds.free]
    full = [s for s in tonight if s not in with_beds]
    lines = [
        _("🛏 Beds tonight, as the shelters reported them:")
        if with_beds
        else _("No shelter has reported free beds tonight.")
    ]
    lines.extend(service_card(s, context, with_beds=True) for s in with_beds)
    if full:
        lines.append(_("Full or no count yet:"))
        lines.extend(service_card(s, context, with_beds=True) for s in full)
    lines.append(
        _("Most places are given through the Help Center: call or come by.")
        + "\n"
        + help_center_line(await help_center(context.session), context)
    )
    chat = update.effective_chat
    assert chat is not None
    await send_cards(context, chat.id, lines, reply_markup=needs_keyboard(context))
