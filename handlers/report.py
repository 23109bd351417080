"""``/report``: a volunteer (or an operator, or the public if enabled) reports a sighting.

Steps, each a state of the draft: location → category → urgency → what was seen (and an
optional photo) → a rough description of the person → summary to confirm or correct. Every
step accepts ``/cancel``. Confirming opens a case with a short reference and alerts the team.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)

from bot.runtime import HCContext
from handlers.case_drafts import MAX_PLACE, MAX_TEXT, Incoming, send
from handlers.case_notify import (
    CATEGORY_LABELS,
    EMERGENCY_NUMBER,
    URGENCY_LABELS,
    Reach,
    alert_new_case,
    escalation_intervals,
    nobody_reachable_text,
)
from handlers.common import acknowledge, drop_buttons, handles
from models.cases import Case, CaseKind, Category, NewCase, Urgency, open_case
from models.conversation import FLOW_PERMISSIONS, Flow, OpenFlow, advance, begin, end

FLOW = Flow.REPORT
LOCATION, CATEGORY, URGENCY, SEEN, PERSON, CONFIRM = (
    "location",
    "category",
    "urgency",
    "seen",
    "person",
    "confirm",
)


# Volunteers and staff; the public too when ``public_reports_enabled`` (``handles`` asks
# ``models.roles`` with the settings, like the menu, so the menu shows /report exactly when
# it works). Every step asks again: a role taken away stops the report where it is.
@handles(FLOW, FLOW_PERMISSIONS[FLOW], private_only=True)
async def start_report(update: Update, context: HCContext) -> None:
    chat = update.effective_chat
    assert chat is not None
    await begin(context.session, context.conversation, FLOW, chat_id=chat.id, step=LOCATION)
    _ = context._
    await send(
        update,
        context,
        _(
            "Let's report a sighting. You can stop at any time with /cancel.\n\n"
            "Where is the person? Press the button to share your location, "
            "or describe the place (street, landmark, platform)."
        ),
        reply_markup=location_keyboard(context),
    )


def location_keyboard(context: HCContext) -> ReplyKeyboardMarkup:
    _ = context._
    return ReplyKeyboardMarkup(
        [[KeyboardButton(_("📍 Share my location"), request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


async def report_step(update: Update, context: HCContext, draft: OpenFlow) -> None:
    """A message arrived while a report is being written: it answers the current step."""
    message = update.message
    assert message is not None
    got = Incoming.of(message)
    steps = {
        LOCATION: _got_location,
        SEEN: _got_seen,
        PERSON: _got_person,
    }
    step = steps.get(draft.step)
    if step is None:  # a step answered with buttons: say so, show them again
        await send(update, context, context._("Please use the buttons above."))
        await ask(update, context, draft)
        return
    await step(update, context, draft, got)


async def _got_location(update: Update, context: HCContext, draft: OpenFlow, got: Incoming) -> None:
    _ = context._
    if got.location is not None:
        lat, lon = got.location
        advance(draft, _after(draft, CATEGORY), lat=lat, lon=lon, place=None)
    elif got.text is not None and not got.bad_location:
        if len(got.text) > MAX_PLACE:
            await send(update, context, too_long(context, MAX_PLACE))
            return
        advance(draft, _after(draft, CATEGORY), place=got.text, lat=None, lon=None)
    else:
        text = (
            _("That location does not look right. Please share it again or describe the place.")
            if got.bad_location
            else _("I need the place: press the button to share your location, or describe it.")
        )
        await send(update, context, text, reply_markup=location_keyboard(context))
        return
    await send(update, context, _("Place noted."), reply_markup=ReplyKeyboardRemove())
    await ask(update, context, draft)


async def _got_seen(update: Update, context: HCContext, draft: OpenFlow, got: Incoming) -> None:
    _ = context._
    if got.photo is not None:
        advance(draft, SEEN, photo=got.photo)
    if got.text is None:
        text = (
            _("Photo saved. Now tell me in a few words what you saw.")
            if got.photo is not None
            else _("Please tell me in words what you saw (you can add a photo).")
        )
        await send(update, context, text)
        return
    if len(got.text) > MAX_TEXT:
        await send(update, context, too_long(context, MAX_TEXT))
        return
    advance(draft, _after(draft, PERSON), seen=got.text)
    await ask(update, context, draft)


async def _got_person(update: Update, context: HCContext, draft: OpenFlow, got: Incoming) -> None:
    if got.text is None:
        await send(
            update, context, context._("Please describe the person in words, or press Skip.")
        )
        return
    if len(got.text) > MAX_TEXT:
        await send(update, context, too_long(context, MAX_TEXT))
        return
    advance(draft, CONFIRM, person=got.text, editing=None)
    await ask(update, context, draft)


def too_long(context: HCContext, limit: int) -> str:
    return context._("That is a bit long: please keep it under {limit} characters.").format(
        limit=limit
    )


def _after(draft: OpenFlow, following: str) -> str:
    """The next step, or back to the summary when the person is correcting one answer."""
    return CONFIRM if draft.data.get("editing") else following


async def ask(update: Update, context: HCContext, draft: OpenFlow) -> None:
    """Ask the question of the draft's current step."""
    _ = context._
    step = draft.step
    if step == LOCATION:
        await send(
            update,
            context,
            _("Where is the person? Share your location or describe the place."),
            reply_markup=location_keyboard(context),
        )
    elif step == CATEGORY:
        await send(
            update, context, _("What kind of situation is it?"), reply_markup=category_buttons(_)
        )
    elif step == URGENCY:
        await send(update, context, _("How urgent is it?"), reply_markup=urgency_buttons(_))
    elif step == SEEN:
        await send(
            update,
            context,
            _("What did you see? A few words are enough. You can add a photo."),
        )
    elif step == PERSON:
        await send(
            update,
            context,
            _(
                "Describe the person roughly: age, clothes, anything that helps to find them. "
                "No names, unless you know them and they are needed."
            ),
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("Skip"), callback_data="rep:skip")]]
            ),
        )
    else:
        await send(update, context, summary(context, draft.data), reply_markup=confirm_buttons(_))


def category_buttons(_: Any) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(_(label), callback_data=f"rep:cat:{category.value}")
        for category, label in CATEGORY_LABELS.items()
    ]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def urgency_buttons(_: Any) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_(label), callback_data=f"rep:urg:{urgency.value}")]
            for urgency, label in URGENCY_LABELS.items()
        ]
    )


def confirm_buttons(_: Any) -> InlineKeyboardMarkup:
    def button(text: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, callback_data=data)

    send = [button(_("✅ Send the report"), "rep:send")]
    changes = [
        button(_("Change place"), "rep:edit:location"),
        button(_("Change type"), "rep:edit:category"),
        button(_("Change urgency"), "rep:edit:urgency"),
        button(_("Change what you saw"), "rep:edit:seen"),
        button(_("Change description"), "rep:edit:person"),
        button(_("✖ Cancel"), "rep:cancel"),
    ]
    return InlineKeyboardMarkup([send] + [changes[i : i + 2] for i in range(0, len(changes), 2)])


def summary(context: HCContext, data: dict[str, Any]) -> str:
    _ = context._
    place = data.get("place") or (_("location pin shared") if "lat" in data else _("not given"))
    lines = [
        _("Please check your report:"),
        "",
        _("📍 Where: {place}").format(place=place),
        _("Type: {category}").format(category=_(CATEGORY_LABELS[Category(data["category"])])),
        _("Urgency: {urgency}").format(urgency=_(URGENCY_LABELS[Urgency(data["urgency"])])),
        _("What you saw: {text}").format(text=data.get("seen", "")),
        _("Photo: {answer}").format(answer=_("yes") if data.get("photo") else _("no")),
        _("Person: {text}").format(text=data.get("person") or _("no description")),
        "",
        _("Is everything right? Send it, or change what needs changing."),
    ]
    return "\n".join(lines)


@handles(FLOW, FLOW_PERMISSIONS[FLOW], private_only=True)
async def report_button(update: Update, context: HCContext) -> None:
    """Buttons of the report conversation: category, urgency, skip, send, change, cancel."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _ = context._
    draft = context.conversation.draft
    if draft is None or draft.flow != FLOW:
        await acknowledge(update, context)
        text = _("This report is no longer open. Send /report to start again.")
        await send(update, context, text)
        return
    parts = query.data.split(":")
    action, value = parts[1], (parts[2] if len(parts) > 2 else "")
    await acknowledge(update, context)
    await drop_buttons(update)
    if action == "cat" and draft.step == CATEGORY and value in _values(Category):
        advance(draft, _after(draft, URGENCY), category=value)
    elif action == "urg" and draft.step == URGENCY and value in _values(Urgency):
        advance(draft, _after(draft, SEEN), urgency=value)
        if value == Urgency.EMERGENCY:
            await send(update, context, emergency_warning(context))
    elif action == "skip" and draft.step == PERSON:
        advance(draft, CONFIRM, person=None, editing=None)
    elif action == "edit" and draft.step == CONFIRM and value in _EDITABLE:
        advance(draft, value, editing=True)
    elif action == "send" and draft.step == CONFIRM:
        await submit(update, context, draft)
        return
    elif action == "cancel":
        await end(context.session, context.conversation, FLOW)
        await send(update, context, _("Report cancelled. Nothing was sent."))
        return
    await ask(update, context, draft)


_EDITABLE = {LOCATION, CATEGORY, URGENCY, SEEN, PERSON}


def emergency_warning(context: HCContext) -> str:
    return context._(
        "⚠️ If someone's life may be in danger, call {number} NOW, before anything else.\n"
        "☎️ {number}\n"
        "Then finish this report so our team knows too."
    ).format(number=EMERGENCY_NUMBER)


async def submit(update: Update, context: HCContext, draft: OpenFlow) -> None:
    data = draft.data
    facts = NewCase(
        kind=CaseKind.REPORT,
        category=Category(data["category"]),
        urgency=Urgency(data["urgency"]),
        latitude=data.get("lat"),
        longitude=data.get("lon"),
        place=data.get("place"),
        seen=data.get("seen"),
        person=data.get("person"),
        photo_file_id=data.get("photo"),
    )
    case, reach = await open_from_draft(context, draft, facts)
    _ = context._
    if reach is Reach.NOBODY:
        registered = _(
            "Thank you. Your report is registered as {ref}: quote it if you contact us."
        ).format(ref=case.reference)
        await send_nobody_reachable(update, context, registered)
        return
    text = _(
        "Thank you. Your report is registered as {ref}: quote it if you contact us. "
        "I will tell you when an operator takes it in charge."
    ).format(ref=case.reference)
    if reach is Reach.COORDINATORS:
        text += "\n\n" + nobody_on_duty_text(context)
    await send(update, context, text)


async def open_from_draft(
    context: HCContext, draft: OpenFlow, facts: NewCase
) -> tuple[Case, Reach]:
    """The draft becomes a case and the on-duty team is alerted, in one transaction.

    Returns the case and who was alerted (the requester is told honestly).
    """
    settings = context.settings
    case = await open_case(
        context.session,
        context.account,
        facts,
        prefix=settings.case_reference_prefix,
        tz=settings.tz,
        first_escalation=escalation_intervals(settings)[0],
    )
    await end(context.session, context.conversation, Flow(draft.flow))
    context.scope.concerns("case", case.id)
    reach = await alert_new_case(context.session, case, settings, context.runtime.catalogs)
    return case, reach


def nobody_on_duty_text(context: HCContext) -> str:
    return context._(
        "No operator is on duty right now: the coordinators have been alerted and will "
        "follow up as soon as they can."
    )


async def send_nobody_reachable(update: Update, context: HCContext, registered: str) -> None:
    """One answer that tells the truth when nobody could be alerted (see
    :func:`handlers.case_notify.nobody_reachable_text`)."""
    text = await nobody_reachable_text(context.session, registered, context._, context.settings)
    await send(update, context, text, parse_mode="HTML")


def _values(kind: type[StrEnum]) -> set[str]:
    return {member.value for member in kind}
