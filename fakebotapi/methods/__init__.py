"""The Bot API methods the fake answers, one module per family. Each method is a function
``(state, params) -> result`` that raises :class:`~fakebotapi.errors.ApiError` to answer
an error; ``getUpdates`` is answered by :class:`~fakebotapi.updates.UpdateQueue` (it waits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakebotapi.methods import callbacks, chats, commands, editing, files, sending, webhook
from fakebotapi.state import BotState

Method = Callable[[BotState, dict[str, Any]], Any]

METHODS: dict[str, Method] = {
    **chats.METHODS,
    **webhook.METHODS,
    **commands.METHODS,
    **sending.METHODS,
    **files.METHODS,
    **editing.METHODS,
    **callbacks.METHODS,
}
CANONICAL = {name.lower(): name for name in [*METHODS, "getUpdates"]}
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendLocation", "sendVenue", "sendDocument", "sendMediaGroup"}
)
EDIT_METHODS = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})


def canonical_method(method: str) -> str:
    """``sendmessage`` -> ``sendMessage`` (Telegram's method names are case-insensitive)."""
    return CANONICAL.get(method.lower(), method)
