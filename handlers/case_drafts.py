"""The report and urgent conversations: their filter, what a person sent, how to answer.

PTB decides which handler takes an update with a synchronous ``check_update``, so it cannot
ask the database itself. The sender's conversation (:mod:`models.conversation`) is read with
their account in group -10; :class:`DraftActive` then routes the messages of a chat that a
report or an urgent request holds to its next step, and lets them through to other features
otherwise. Changes to the draft are written in the update's transaction, so a restart (or
another worker) continues exactly where the person was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Message, Update
from telegram.ext import filters

from bot.parsing import valid_coordinates
from bot.runtime import HCContext, current_scope

DRAFT_GROUP = -2
MAX_PLACE = 300
MAX_TEXT = 1000


class DraftActive(filters.MessageFilter):
    """True in a chat where the sender is in the middle of a report or an urgent request."""

    def filter(self, message: Message) -> bool:
        scope = current_scope.get()
        return scope is not None and scope.conversation.holding(message.chat.id) is not None


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
