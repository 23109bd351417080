"""Telegram's refusals that mean "nothing to do", told apart from real errors.

Telegram words these in its 400 descriptions only (there is no error code to match), so the
match is on the description, lower-cased, as the Bot API has worded them for years.
"""

from __future__ import annotations

from telegram.error import BadRequest, TelegramError

NOT_MODIFIED = "message is not modified"
# "query is too old and response timeout expired or query ID is invalid"
STALE_QUERY = ("query is too old", "query id is invalid")
UNKNOWN_FILE = ("wrong file identifier", "wrong remote file identifier")


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
