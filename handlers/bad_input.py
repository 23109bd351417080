"""The one answer to a button this bot cannot act on: forged, garbled or from an old message.

Telegram lets a client send any callback data, so a press may name nothing that exists or
carry values no button of ours ever had. Such a press is answered in the person's language
(never with silence, never with an error that parks the update) and changes nothing.
"""

from __future__ import annotations

import logging

from telegram import Update

from bot.runtime import HCContext
from handlers.common import acknowledge

log = logging.getLogger(__name__)


async def stale_button(update: Update, context: HCContext, *, answer: bool = False) -> None:
    """Say, in the chat, that the button is no longer valid.

    The press is answered here only with ``answer=True``: handlers that already called
    ``query.answer()`` must not answer twice (Telegram refuses the second answer).
    """
    if answer:
        await acknowledge(update, context)
    log.info("a button with unusable data in flow %s", context.scope.flow)
    chat = update.effective_chat
    if chat is not None:
        text = context._("This button is no longer valid. Please start again: /help")
        await context.bot.send_message(chat.id, text)
