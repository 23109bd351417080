"""``/urgent``: police or railway staff ask for an operator to come, in at most three steps.

Location → one line of what is needed (a photo with a caption answers both) → an optional
photo or "Send now". The on-duty operators are alerted in the same transaction that opens
the case; the requester is told who is coming as soon as someone takes it.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardRemove, Update

from bot.runtime import HCContext
from handlers.case_drafts import MAX_PLACE, Incoming, send
from handlers.case_notify import Reach
from handlers.common import acknowledge, drop_buttons, handles
from handlers.needs import urgent_refused_text
from handlers.report import location_keyboard, open_from_draft, send_nobody_reachable, too_long
from models.cases import CaseKind, Category, NewCase, Urgency
from models.conversation import FLOW_PERMISSIONS, Flow, OpenFlow, advance, begin

FLOW = Flow.URGENT
LOCATION, NEED, PHOTO = "location", "need", "photo"
MAX_NEED = 300


@handles(FLOW, FLOW_PERMISSIONS[FLOW], private_only=True, refusal=urgent_refused_text)
async def start_urgent(update: Update, context: HCContext) -> None:
    chat = update.effective_chat
    assert chat is not None
    await begin(context.session, context.conversation, FLOW, chat_id=chat.id, step=LOCATION)
    _ = context._
    await send(
        update,
        context,
        _(
            "Urgent request to the Help Center (3 quick steps, /cancel to stop).\n"
            "1/3 Where? Share your location or write the place."
        ),
        reply_markup=location_keyboard(context),
    )


async def ask(update: Update, context: HCContext, draft: OpenFlow) -> None:
    """Ask again the question of the draft's current step (after "continue")."""
    _ = context._
    if draft.step == LOCATION:
        text = _("I need the place: share your location with the button, or write it in words.")
        await send(update, context, text, reply_markup=location_keyboard(context))
    elif draft.step == NEED:
        await send(update, context, _("2/3 In one line: what do you need from us?"))
    else:
        await send(
            update,
            context,
            _("3/3 Send a photo if it helps, or send the request now."),
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("🚨 Send now"), callback_data="urg:send")]]
            ),
        )


async def urgent_step(update: Update, context: HCContext, draft: OpenFlow) -> None:
    message = update.message
    assert message is not None
    got = Incoming.of(message)
    _ = context._
    if draft.step == LOCATION:
        await _got_location(update, context, draft, got)
    elif draft.step == NEED:
        if got.photo is not None:
            advance(draft, NEED, photo=got.photo)
        if got.text is None:
            await send(update, context, _("2/3 In one line: what do you need from us?"))
            return
        if len(got.text) > MAX_NEED:
            await send(update, context, too_long(context, MAX_NEED))
            return
        advance(draft, PHOTO, need=got.text)
        if got.photo is not None:  # the photo came with the need: nothing left to ask
            await submit(update, context, draft)
            return
        await send(
            update,
            context,
            _("3/3 Send a photo if it helps, or send the request now."),
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("🚨 Send now"), callback_data="urg:send")]]
            ),
        )
    elif got.photo is not None:
        advance(draft, PHOTO, photo=got.photo)
        await submit(update, context, draft)
    else:
        await send(update, context, _("Send a photo, or press the button to send the request."))


async def _got_location(update: Update, context: HCContext, draft: OpenFlow, got: Incoming) -> None:
    _ = context._
    if got.location is not None:
        advance(draft, NEED, lat=got.location[0], lon=got.location[1])
    elif got.text is not None and not got.bad_location and len(got.text) <= MAX_PLACE:
        advance(draft, NEED, place=got.text)
    else:
        await send(
            update,
            context,
            _("I need the place: share your location with the button, or write it in words."),
            reply_markup=location_keyboard(context),
        )
        return
    await send(
        update,
        context,
        _("2/3 In one line: what do you need from us?"),
        reply_markup=ReplyKeyboardRemove(),
    )


@handles(FLOW, FLOW_PERMISSIONS[FLOW], private_only=True)
async def urgent_button(update: Update, context: HCContext) -> None:
    await acknowledge(update, context)
    draft = context.conversation.draft
    if draft is None or draft.flow != FLOW or draft.step != PHOTO:
        await send(update, context, context._("This request was already sent or cancelled."))
        return
    await drop_buttons(update)
    await submit(update, context, draft)


async def submit(update: Update, context: HCContext, draft: OpenFlow) -> None:
    data = draft.data
    facts = NewCase(
        kind=CaseKind.URGENT,
        category=Category.OTHER,
        urgency=Urgency.TODAY,
        latitude=data.get("lat"),
        longitude=data.get("lon"),
        place=data.get("place"),
        seen=data.get("need"),
        photo_file_id=data.get("photo"),
    )
    case, reach = await open_from_draft(context, draft, facts)
    _ = context._
    if reach is Reach.NOBODY:
        registered = _("Request {ref} registered.").format(ref=case.reference)
        await send_nobody_reachable(update, context, registered)
        return
    if reach is Reach.COORDINATORS:
        text = _(
            "Request {ref} sent. No operator is on duty right now: the coordinators have "
            "been alerted; I will tell you who is coming."
        )
    else:
        text = _(
            "Request {ref} sent. The operators have been alerted; I will tell you who is coming."
        )
    await send(update, context, text.format(ref=case.reference))
