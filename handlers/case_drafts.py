"""Conversations whose state lives in the database (a :class:`models.cases.CaseDraft`).

PTB decides which handler takes an update with a synchronous ``check_update``, so it cannot
ask the database itself. A handler in group -2 (before anything else) loads the sender's
draft through the update's own session and remembers it for this update only; in group 0 the
:class:`DraftActive` filter then routes plain messages to the conversation step while a draft
is open, and lets them through to other features otherwise. Changes to the draft are written
in the update's transaction, so a restart (or another worker) continues exactly where the
person was.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from telegram import Message, Update
from telegram.ext import filters

from bot.parsing import valid_coordinates
from bot.runtime import HCContext, current_scope
from models.cases import draft_of_telegram_user

DRAFT_GROUP = -2
MAX_PLACE = 300
MAX_TEXT = 1000

_loaded: ContextVar[tuple[int, str] | None] = ContextVar("case_draft_loaded", default=None)


async def load_draft(update: Update, context: HCContext) -> None:
    """Group -2: note whether the sender has a conversation open (its flow name), for a
    message or a button pressed in their private chat."""
    chat = update.effective_chat
    user = update.effective_user
    scope = current_scope.get()
    if update.message is None and update.callback_query is None:
        return
    if chat is None or user is None or scope is None or chat.type != "private":
        return
    if scope.draft_read:  # read with the account, in the same statement
        flow = scope.draft_flow
    else:
        draft = await draft_of_telegram_user(context.session, user.id)
        flow = draft.flow if draft is not None else None
    _loaded.set((scope.update_id, flow) if flow is not None else None)


def active_flow() -> str | None:
    loaded = _loaded.get()
    scope = current_scope.get()
    if loaded is None or scope is None or loaded[0] != scope.update_id:
        return None
    return loaded[1]


class DraftActive(filters.MessageFilter):
    """True while the sender is in the middle of a report or an urgent request."""

    def filter(self, message: Message) -> bool:
        return active_flow() is not None


@dataclass
class Incoming:
    """What a person sent at a conversation step, whatever its shape."""

    text: str | None = None
    location: tuple[float, float] | None = None
    bad_location: bool = False
    photo: str | None = None

    @classmethod
    def of(cls, message: Message) -> Incoming:
        found = cls()
        text = message.text if message.text is not None else message.caption
        if text is not None and text.strip():
            found.text = text.strip()
        point = message.location or (message.venue.location if message.venue else None)
        if point is not None:
            found.location = valid_coordinates(point.latitude, point.longitude)
            found.bad_location = found.location is None
        if message.photo:
            found.photo = message.photo[-1].file_id  # the largest size; never downloaded
        return found


async def send(update: Update, context: HCContext, text: str, **kwargs: Any) -> None:
    """Write to the chat of the update. Unlike ``reply``, it does not answer the button
    press: the cases flows answer each press once, first, with a short toast when useful."""
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_message(chat.id, text, **kwargs)
