"""The global error handler: an incident code for the person, a traceback for the log.

The log line carries the code, the exception type and the frames, never message texts or
names. The person's apology is sent when the inbox gives up on the update (see
``InboxWorker``), so a retried update does not apologise three times.

A reply refused with 403 (the person blocked the bot, perhaps a second after writing) is not
a failure of the update: what the handler changed is committed, nothing is retried or
parked, no apology is queued for a chat that cannot receive it, and the person is marked
unreachable until heard from again.
"""

from __future__ import annotations

import logging
import secrets
import traceback

from telegram import Update
from telegram.error import Forbidden

from bot.runtime import HCContext, current_scope
from models.accounts import mark_unreachable

log = logging.getLogger("helpcenter.errors")


def new_incident_code() -> str:
    return secrets.token_hex(3).upper()


async def on_error(update: object, context: HCContext) -> None:
    error = context.error
    if isinstance(error, Forbidden) and isinstance(update, Update):
        await reply_refused(update, error)
        return
    code = new_incident_code()
    frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    log.error("incident %s: %s\n%s", code, type(error).__name__, frames)
    scope = current_scope.get()
    if scope is not None and isinstance(update, Update) and error is not None:
        scope.error = error
        scope.incident = code


async def reply_refused(update: Update, error: Forbidden) -> None:
    """Telegram refused a reply for good: note it, keep the handling (see the module's note).

    Handlers write directly only to the chat of their update; in a private chat that is the
    sender, who is marked unreachable. The reason is Telegram's, never the message.
    """
    log.info("a reply was refused by Telegram (403); the update is handled all the same")
    scope = current_scope.get()
    chat = update.effective_chat
    if scope is not None and chat is not None and chat.type == "private":
        await mark_unreachable(scope.session, chat.id, str(error))
