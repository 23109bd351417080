"""What the directory's handlers share: the "waiting for a typed answer" marker and rendering.

Buttons carry their own data, so most taps need no memory. Three steps wait for typed text
(a place name, a number of beds, new hours): the bot remembers, per person (answered in the
chat where it asked) and for ``WAIT_MINUTES``, what it asked, as the question flow of their
conversation (:mod:`models.conversation`), so a typed answer reaches this module only when it
was asked for, other features' text handlers are untouched, and a restart forgets nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import filters

from bot.i18n import N_, Translator, ago, day_month, distance, weekday_day_month
from bot.rendering import MESSAGE_LIMIT, bold, escape, fit_html
from bot.runtime import HCContext, current_scope
from models.base import clock
from models.conversation import Flow, OpenFlow, begin, end
from models.directory import (
    Admits,
    Category,
    Fee,
    Freshness,
    Note,
    Service,
    freshness,
    localized,
    note_for,
)
from models.schedule import OpenStatus, status

WAIT_MINUTES = 30
KINDS = frozenset({"place", "beds", "hours", "closure", "notes", "staff"})

CATEGORY_LABELS = {
    Category.NIGHT_SHELTER: N_("🛏 Night shelters"),
    Category.COLD_WEATHER_BEDS: N_("❄️ Winter emergency beds"),
    Category.MEALS: N_("🍲 Meals and food"),
    Category.SHOWERS: N_("🚿 Showers and hygiene"),
    Category.CLOTHING: N_("👕 Clothes"),
    Category.HEALTH: N_("🩺 Doctor and pharmacy"),
    Category.DAY_CENTER: N_("☕ Day centres"),
    Category.LEFT_LUGGAGE: N_("🧳 Left luggage"),
    Category.LEGAL: N_("📄 Documents and legal help"),
    Category.HELP_CENTER: N_("🆘 Help Center"),
}
WEEKDAY_NAMES = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)


async def wait_for(context: HCContext, chat_id: int, kind: str, value: str) -> None:
    """The sender's next plain message in this chat answers ``kind`` ("place", "beds"…)."""
    until = clock.now() + timedelta(minutes=WAIT_MINUTES)
    await begin(
        context.session,
        context.conversation,
        Flow.QUESTION,
        chat_id=chat_id,
        step=kind,
        data={"value": value},
        until=until,
    )


def pending(context: HCContext, chat_id: int) -> OpenFlow | None:
    """The question a message in this chat answers (its ``step`` says what was asked)."""
    return context.conversation.question(chat_id)


async def stop_waiting(context: HCContext, chat_id: int) -> None:
    await end(context.session, context.conversation, Flow.QUESTION)


class Waiting(filters.MessageFilter):
    """Passes messages of people the directory asked, in that chat, to type something (see
    models.conversation)."""

    def __init__(self) -> None:
        super().__init__(name="directory.Waiting")

    def filter(self, message: Message) -> bool:
        scope = current_scope.get()
        asked = scope.conversation.question(message.chat.id) if scope is not None else None
        return asked is not None and asked.step in KINDS


# ---- rendering ------------------------------------------------------------------------------


def category_label(category: str, _: Translator) -> str:
    try:
        return _(CATEGORY_LABELS[Category(category)])
    except ValueError:
        return category


def _when(moment: datetime, now: datetime, zone: ZoneInfo, _: Translator) -> str:
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    clock_time = f"{local:%H:%M}"
    days = (local.date() - today).days
    if days == 0:
        return _("today at {time}").format(time=clock_time)
    if days == 1:
        return _("tomorrow at {time}").format(time=clock_time)
    if days < 7:
        return _("{weekday} at {time}").format(
            weekday=_(WEEKDAY_NAMES[local.weekday()]), time=clock_time
        )
    return _("on {date}").format(date=f"{local:%d/%m/%Y}")


def status_line(open_status: OpenStatus, now: datetime, zone: ZoneInfo, _: Translator) -> str:
    if open_status.is_open:
        closes = open_status.closes_at
        if closes is None or closes - now > timedelta(days=7):
            return _("🟢 Open now, day and night")
        if closes.astimezone(zone).date() == now.astimezone(zone).date():
            return _("🟢 Open now, until {time}").format(time=f"{closes.astimezone(zone):%H:%M}")
        return _("🟢 Open now, until {when}").format(when=_when(closes, now, zone, _))
    if open_status.opens_at is None:
        return _("🔴 Closed (no opening hours known)")
    return _("🔴 Closed, opens {when}").format(when=_when(open_status.opens_at, now, zone, _))


def service_status(service: Service, now: datetime, zone: ZoneInfo) -> OpenStatus:
    return status(service.schedule(), now, zone)


def age(updated_at: datetime, now: datetime, _: Translator) -> str:
    return ago(max(int((now - updated_at).total_seconds() // 60), 0), _)


def beds_line(service: Service, now: datetime, stale_hours: float, _: Translator) -> str:
    beds = service.beds
    fresh = freshness(beds, now, stale_hours)
    if fresh is Freshness.UNKNOWN or beds is None or beds.updated_at is None:
        return _("❔ Free beds: no count from the shelter yet")
    count = _.ngettext("{free} free of {total}", "{free} free of {total}", beds.free or 0).format(
        free=beds.free, total=beds.total
    )
    when = age(beds.updated_at, now, _)
    if fresh is Freshness.FRESH:
        return _("🛏 {count} (updated {age})").format(count=count, age=when)
    return _("⚠️ Unconfirmed: {count} was the count {age}").format(count=count, age=when)


def conditions(service: Service, _: Translator) -> list[str]:
    """Who is admitted and what is needed, as short tags and the service's own words."""
    tags = []
    if service.admits == Admits.MEN:
        tags.append(_("men only"))
    elif service.admits == Admits.WOMEN:
        tags.append(_("women only"))
    if service.referral_required:
        tags.append(_("through the Help Center or a desk"))
    tags.append(_("documents needed") if service.documents_required else _("no documents needed"))
    if service.pets_allowed:
        tags.append(_("dogs welcome"))
    tags.append(_("small fee") if service.fee == Fee.SMALL_FEE else _("free"))
    lines = [" · ".join(tags)]
    language = _.language
    for texts in (service.eligibility, service.application_process):
        text = localized(texts, language)
        if text:
            lines.append(escape(text))
    note = note_for(service, language)
    if note is not None:
        lines.append(note_line(note, _))
    return lines


def note_line(note: Note, _: Translator) -> str:
    """A service's note, marked when a note in another language was written after it."""
    text = escape(note.text)
    return _("(older note) {text}").format(text=text) if note.older else text


def service_card(
    service: Service,
    context: HCContext,
    *,
    distance_m: float | None = None,
    number: int | None = None,
    with_beds: bool = False,
) -> str:
    _ = context._
    now = clock.now()
    zone = context.settings.tz
    title = bold(service.name_in(_.language))
    if number is not None:
        title = f"{number}. {title}"
    if distance_m is not None:
        title += " — " + distance(distance_m, _)
    lines = [title, status_line(service_status(service, now, zone), now, zone, _)]
    lines += season_lines(service, _) + closure_lines(service, now, zone, _)
    if with_beds and service.is_shelter:
        lines.append(beds_line(service, now, context.settings.bed_count_stale_hours, _))
    if service.location is not None:
        lines.append("📍 " + escape(service.location.address))
    if service.phone:
        lines.append("☎️ " + escape(service.phone))
    lines.extend(conditions(service, _))
    return "\n".join(lines)


def season_lines(service: Service, _: Translator) -> list[str]:
    """The season a seasonal service opens in (the winter plan's beds), in words."""
    seasons = {slot.as_slot().season for slot in service.slots}
    if len(seasons) != 1 or (season := seasons.pop()) is None:
        return []
    start, end = (date(2000, d.month, d.day) for d in (season.start, season.end))
    return [
        _("📅 Open in season, from {start} to {end}").format(
            start=day_month(start, _.language), end=day_month(end, _.language)
        )
    ]


CLOSURE_NOTICE_DAYS = 14


def closure_lines(service: Service, now: datetime, zone: ZoneInfo, _: Translator) -> list[str]:
    """Coming closure dates (the next two weeks), with their note ("Christmas")."""
    today = now.astimezone(zone).date()
    lines = []
    for closure in service.closures:
        if not 0 <= (closure.day - today).days <= CLOSURE_NOTICE_DAYS:
            continue
        day = weekday_day_month(closure.day, _.language)
        if closure.note:
            line = _("⛔ Closed on {day}: {note}").format(day=day, note=escape(closure.note))
        else:
            line = _("⛔ Closed on {day}").format(day=day)
        lines.append(line)
    return lines


def help_center_line(service: Service | None, context: HCContext) -> str:
    return help_center_text(service, context._, context.settings.tz)


def help_center_text(service: Service | None, _: Translator, zone: ZoneInfo) -> str:
    """The Help Center's name, open now or when it opens, address and phone (HTML); for a
    message rendered outside an update too (an alert that reached nobody)."""
    if service is None:
        return _("Ask the Help Center at the railway station.")
    now = clock.now()
    parts = [
        _("Help Center: {name}").format(name=escape(service.name_in(_.language))),
        status_line(service_status(service, now, zone), now, zone, _),
        *closure_lines(service, now, zone, _),
    ]
    if service.location is not None:
        parts.append("📍 " + escape(service.location.address))
    if service.phone:
        parts.append("☎️ " + escape(service.phone))
    return "\n".join(parts)


MAX_PAIRED_LABEL = 16  # longer labels get a row of their own: a phone cuts them off in pairs


def button_rows(buttons: list[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    """Two buttons a row when both labels are short, else one: no label is cut off."""
    rows: list[list[InlineKeyboardButton]] = []
    waiting: InlineKeyboardButton | None = None
    for button in buttons:
        if len(button.text) > MAX_PAIRED_LABEL:
            rows.append([button])
        elif waiting is None:
            waiting = button
        else:
            rows.append([waiting, button])
            waiting = None
    if waiting is not None:
        rows.append([waiting])
    return rows


DIRECTORY_PREFIX = "dir:"  # the directory's buttons (handlers.directory)
NEEDS_PREFIX = "need:"  # "near me" and the Help Center (handlers.needs)


def needs_keyboard(context: HCContext) -> InlineKeyboardMarkup:
    """What people come for: under /start, /help and every answer that would end there."""
    _ = context._

    def button(label: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=data)

    def category(label: str, which: Category) -> InlineKeyboardButton:
        return button(label, f"{DIRECTORY_PREFIX}cat:{which.value}")

    middle = [
        category(_("🍲 A meal"), Category.MEALS),
        category(_("🚿 Showers"), Category.SHOWERS),
        category(_("🩺 A doctor"), Category.HEALTH),
        button(_("📍 Near me"), f"{NEEDS_PREFIX}near"),
    ]
    return InlineKeyboardMarkup(
        [
            [button(_("🛏 A bed tonight"), f"{DIRECTORY_PREFIX}bed")],
            *button_rows(middle),
            [button(_("🆘 Talk to the Help Center"), f"{NEEDS_PREFIX}desk")],
            [button(_("📋 All services"), f"{NEEDS_PREFIX}all")],
        ]
    )


def html_kwargs() -> dict[str, Any]:
    return {"parse_mode": "HTML"}


async def send_cards(context: HCContext, chat_id: int, blocks: list[str], **kwargs: Any) -> None:
    """Send blocks separated by blank lines, as few messages as Telegram's length allows."""
    messages: list[str] = []
    for block in blocks:
        if messages and len(messages[-1]) + len(block) + 2 <= MESSAGE_LIMIT:
            messages[-1] += "\n\n" + block
        else:
            messages.append(fit_html(block))
    for n, text in enumerate(messages):
        extra = kwargs if n == len(messages) - 1 else {}
        await context.bot.send_message(chat_id, text, **html_kwargs(), **extra)


async def say(update: Update, context: HCContext, text: str, **kwargs: Any) -> None:
    """Send to the update's chat. Unlike ``reply`` it never answers a button press: the
    directory's button callbacks answer once, first thing (Telegram refuses a second answer).
    """
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_message(chat.id, text, **kwargs)
