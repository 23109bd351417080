"""Telegram's refusals that mean "nothing to do", told apart from real errors; and the ones
that stop the whole bot rather than one message (409 Conflict: someone else takes its updates;
401 Unauthorized: its token was revoked), explained for the operator.

Telegram words these in its descriptions only (there is no finer error code to match), so the
match is on the description, lower-cased, as the Bot API has worded them for years.
"""

from __future__ import annotations

import time

from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, TelegramError

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
TOKEN_REVOKED = (
    "Telegram refuses this bot's token (401 Unauthorized): it was revoked (@BotFather /revoke) "
    "or the bot was deleted. Nothing is received or sent until HELPCENTER_TOKEN holds the "
    "bot's current token and the bot is restarted; updates wait at Telegram and messages in "
    "the outbox, none of them counted as a failed try"
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


def is_token_refused(error: TelegramError) -> bool:
    """401 Unauthorized: the token that worked at start is refused now. PTB raises
    ``InvalidToken`` for it, and ``EndPointNotFound`` (caused by that ``InvalidToken``) from
    ``Bot.do_api_request`` once the bot is initialised; a 404 (an unknown method) is not this."""
    cause = error.__cause__ if isinstance(error, EndPointNotFound) else error
    return isinstance(cause, InvalidToken) and "unauthorized" in cause.message.lower()


REMINDER_SECONDS = 600.0  # a refusal that lasts is said again this often


class Reminder:
    """Says when a line about a lasting condition is due: the first time, then once every
    ``every`` seconds while it lasts (a refusal repeats at every try; its line must not)."""

    def __init__(self, every: float = REMINDER_SECONDS) -> None:
        self.every = every
        self._said_at: dict[str, float] = {}

    def due(self, about: str) -> bool:
        now = time.monotonic()
        said = self._said_at.get(about)
        if said is not None and now - said < self.every:
            return False
        self._said_at[about] = now
        return True


def bot_wide_refusal(error: TelegramError) -> tuple[str, str] | None:
    """(the metric's reason, the operator's line) for a refusal about the whole bot rather
    than one message or one try: someone else takes its updates, or its token is revoked."""
    if isinstance(error, Conflict):
        if WEBHOOK_ACTIVE in error.message.lower():
            return "webhook", WEBHOOK_SET_ELSEWHERE
        return "another_poller", ANOTHER_POLLER
    if is_token_refused(error):
        return "token", TOKEN_REVOKED
    return None
