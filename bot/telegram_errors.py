"""Telegram's refusals that mean "nothing to do", told apart from real errors, and the one
that means someone else takes this bot's updates (409 Conflict), explained for the operator.

Telegram words these in its descriptions only (there is no finer error code to match), so the
match is on the description, lower-cased, as the Bot API has worded them for years.
"""

from __future__ import annotations

from telegram.error import BadRequest, Conflict, TelegramError

NOT_MODIFIED = "message is not modified"
# "query is too old and response timeout expired or query ID is invalid"
STALE_QUERY = ("query is too old", "query id is invalid")
UNKNOWN_FILE = ("wrong file identifier", "wrong remote file identifier")
# "can't use getUpdates method while webhook is active; use deleteWebhook to delete the
# webhook first"; the other 409 is "terminated by other getUpdates request; make sure that
# only one bot instance is running"
WEBHOOK_ACTIVE = "webhook is active"
WEBHOOK_SET_ELSEWHERE = (
    "Telegram refuses getUpdates (409 Conflict): a webhook is set for this bot's token, so "
    "Telegram sends every update there and none to this bot. If this bot is the one that "
    "should run, remove the webhook (Bot API deleteWebhook; `helpcenter run` removes it only "
    "when it starts); otherwise stop this bot. It keeps asking meanwhile"
)
ANOTHER_POLLER = (
    "Telegram refuses getUpdates (409 Conflict): another process is fetching this bot's "
    "updates with the same token, and each update goes to whichever asks, so the other one "
    "takes some of them (and keeps them in its own database). Run only one `helpcenter run` "
    "per bot token: look for a second deployment, or a copy started with this token. This "
    "bot keeps asking meanwhile"
)


def _says(error: TelegramError, phrases: tuple[str, ...]) -> bool:
    return isinstance(error, BadRequest) and any(p in error.message.lower() for p in phrases)


def is_not_modified(error: TelegramError) -> bool:
    """An edit that would leave the message exactly as it is: the wanted state is there."""
    return _says(error, (NOT_MODIFIED,))


def is_stale_query(error: TelegramError) -> bool:
    """A button press already answered (an earlier try of this handling) or too old to answer."""
    return _says(error, STALE_QUERY)


def is_unknown_file(error: TelegramError) -> bool:
    """A file id Telegram no longer knows (or never knew): the file cannot be sent again."""
    return _says(error, UNKNOWN_FILE)


def conflict_explained(error: Conflict) -> str:
    """What a 409 on ``getUpdates`` means and what to do, in one line for the log."""
    return WEBHOOK_SET_ELSEWHERE if WEBHOOK_ACTIVE in error.message.lower() else ANOTHER_POLLER
