"""The global error handler: an incident code for the person, a traceback for the log.

The log line carries the code, the exception type and the frames, never message texts or
names. The person's apology is sent when the inbox gives up on the update (see
``InboxWorker``), so a retried update does not apologise three times.
"""

from __future__ import annotations

import logging
import secrets
import traceback

from telegram import Update

from bot.runtime import HCContext, current_scope

log = logging.getLogger("helpcenter.errors")


def new_incident_code() -> str:
    return secrets.token_hex(3).upper()


async def on_error(update: object, context: HCContext) -> None:
    error = context.error
    code = new_incident_code()
    frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    log.error("incident %s: %s\n%s", code, type(error).__name__, frames)
    scope = current_scope.get()
    if scope is not None and isinstance(update, Update) and error is not None:
        scope.error = error
        scope.incident = code
