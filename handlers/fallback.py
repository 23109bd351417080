"""Registered last: whatever no flow understood gets a polite answer, never silence."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.runtime import HCContext
from handlers import needs
from handlers.common import Command, acknowledge, handles, reply

COMMANDS: list[Command] = []
MAX_TEXT = 4096


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    needs.register(application)
    application.add_handler(CommandHandler("cancel", nothing_to_cancel))
    application.add_handler(MessageHandler(filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(filters.ALL, anything_else))


@handles("fallback")
async def nothing_to_cancel(update: Update, context: HCContext) -> None:
    """``/cancel`` when no conversation is open (a flow with one open answers it first)."""
    _ = context._
    await answer_with_needs(
        update, context, _("There is nothing to cancel. Send /help to see what I can do.")
    )


@handles("fallback")
async def unknown_command(update: Update, context: HCContext) -> None:
    _ = context._
    await answer_with_needs(
        update, context, _("Sorry, I do not know that command. Send /help to see what I can do.")
    )


@handles("edited")
async def edited(update: Update, context: HCContext) -> None:
    """An edit is logged and acknowledged, never acted on: no command runs again, no
    question is answered by it (``bot.app`` puts this before every feature and stops there).

    A live location moving on the map arrives as an edit too: it is not something the
    person typed again, so it gets no answer.
    """
    message = update.effective_message
    if message is None or message.location is None:
        _ = context._
        await reply(
            update,
            context,
            _(
                "I saw that you edited a message. If something changed, "
                "please send it again as a new message."
            ),
        )
    raise ApplicationHandlerStop


@handles("fallback")
async def anything_else(update: Update, context: HCContext) -> None:
    _ = context._
    message = update.effective_message
    if message is not None and message.text is not None and not needs.readable(message.text):
        text = needs.unreadable_text(context)
    elif message is not None and message.text is not None:
        text = needs.unclear_text(context)
    else:
        text = _(
            "Sorry, I cannot use this kind of message here. Please write a text message, "
            "or send /help to see what I can do."
        )
    await answer_with_needs(update, context, text)


async def answer_with_needs(update: Update, context: HCContext, text: str) -> None:
    """No dead end: whatever the answer, the buttons for what people come for follow it."""
    await acknowledge(update, context)
    await needs.send_needs(update, context, text)
