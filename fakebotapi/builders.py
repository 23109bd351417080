"""Constructors of Telegram-shaped dicts: users, chats, messages and the updates a person's
actions produce (used by the tests' builders, the console and the demo)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from fakebotapi.entities import utf16_len
from fakebotapi.params import JSON

_standalone_message_ids = itertools.count(1)
_callback_query_ids = itertools.count(1)
_file_counter = itertools.count(1)
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


class AutoMessageId(int):
    """A message_id picked by a builder; :meth:`FakeTelegram.push_update` renumbers it so that
    ids stay consecutive in that chat. It serialises as a plain int."""


def user_dict(
    user_id: int,
    first_name: str = "Ada",
    language_code: str | None = "it",
    username: str | None = None,
    *,
    last_name: str | None = None,
) -> JSON:
    """A Telegram ``User`` object for a human user."""
    user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    if language_code:
        user["language_code"] = language_code
    return user


def private_chat_dict(user: Mapping[str, Any]) -> JSON:
    """The private ``Chat`` between the bot and ``user``."""
    chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    for key in ("last_name", "username"):
        if key in user:
            chat[key] = user[key]
    return chat


def group_chat_dict(chat_id: int, title: str = "Volunteers", *, supergroup: bool = True) -> JSON:
    """A group ``Chat`` (ids of groups are negative)."""
    return {"id": chat_id, "type": "supergroup" if supergroup else "group", "title": title}


def command_entities(text: str) -> list[JSON]:
    """The ``bot_command`` entity Telegram adds for a leading ``/command[@bot]``."""
    match = _COMMAND_RE.match(text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


def new_file_ids(prefix: str = "file") -> tuple[str, str]:
    """A fresh ``(file_id, file_unique_id)`` pair."""
    number = next(_file_counter)
    return f"fake-{prefix}-{number:06d}", f"uq-{prefix}-{number:06d}"


def photo_sizes(file_id: str, unique_id: str, size: int = 123_456) -> list[JSON]:
    """Two ``PhotoSize`` objects (thumbnail and full size) as Telegram sends them."""
    return [
        {
            "file_id": f"{file_id}-s",
            "file_unique_id": f"{unique_id}-s",
            "width": 90,
            "height": 67,
            "file_size": max(size // 50, 1),
        },
        {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "width": 1280,
            "height": 960,
            "file_size": size,
        },
    ]


def _timestamp(date: int | float | datetime | None) -> int:
    if date is None:
        return int(time.time())
    if isinstance(date, datetime):
        return int(date.timestamp())
    return int(date)


def _contact_dict(user: Mapping[str, Any], contact: str | Mapping[str, Any]) -> JSON:
    if isinstance(contact, str):
        return {"phone_number": contact, "first_name": user["first_name"], "user_id": user["id"]}
    return dict(contact)


def message_dict(
    user: Mapping[str, Any],
    text: str | None = None,
    *,
    chat: Mapping[str, Any] | None = None,
    location: tuple[float, float] | None = None,
    photo: bool = False,
    document: bool = False,
    sticker: bool = False,
    contact: str | Mapping[str, Any] | None = None,
    caption: str | None = None,
    reply_to: Mapping[str, Any] | None = None,
    date: int | float | datetime | None = None,
    message_id: int | None = None,
) -> JSON:
    """A ``Message`` object written by ``user`` (see :func:`message_update`)."""
    msg: JSON = {
        "message_id": (
            message_id if message_id is not None else AutoMessageId(next(_standalone_message_ids))
        ),
        "from": dict(user),
        "chat": dict(chat) if chat is not None else private_chat_dict(user),
        "date": _timestamp(date),
    }
    if text is not None:
        msg["text"] = text
        if entities := command_entities(text):
            msg["entities"] = entities
    if location is not None:
        msg["location"] = {"latitude": float(location[0]), "longitude": float(location[1])}
    if photo:
        msg["photo"] = photo_sizes(*new_file_ids("photo"))
    if document:
        file_id, unique_id = new_file_ids("doc")
        msg["document"] = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "file_name": "document.pdf",
            "mime_type": "application/pdf",
            "file_size": 23_456,
        }
    if sticker:
        file_id, unique_id = new_file_ids("sticker")
        msg["sticker"] = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }
    if contact is not None:
        msg["contact"] = _contact_dict(user, contact)
    if caption is not None:
        msg["caption"] = caption
    if reply_to is not None:
        msg["reply_to_message"] = dict(reply_to)
    return msg


def message_update(user: Mapping[str, Any], text: str | None = None, **kwargs: Any) -> JSON:
    """An ``Update`` with a ``message`` from ``user`` (no ``update_id``: the fake assigns it).

    Keyword arguments are those of :func:`message_dict`: ``chat``, ``location=(lat, lon)``,
    ``photo``, ``document``, ``sticker``, ``contact`` (phone or dict), ``caption``,
    ``reply_to`` (a message dict), ``date``, ``message_id``. A leading ``/command`` gets its
    ``bot_command`` entity.
    """
    return {"message": message_dict(user, text, **kwargs)}


def edited_message_update(
    user: Mapping[str, Any],
    message: Mapping[str, Any],
    text: str,
    *,
    edit_date: int | float | datetime | None = None,
) -> JSON:
    """An ``Update`` with ``edited_message``: ``user`` changed ``message``'s text to ``text``."""
    edited = {k: v for k, v in message.items() if k not in ("text", "entities")}
    edited["from"] = dict(user)
    edited["text"] = text
    if entities := command_entities(text):
        edited["entities"] = entities
    edited["edit_date"] = _timestamp(edit_date)
    return {"edited_message": edited}


def callback_update(
    user: Mapping[str, Any],
    message: Mapping[str, Any],
    data: str,
    *,
    query_id: str | None = None,
) -> JSON:
    """An ``Update`` with a ``callback_query``: ``user`` pressed a button on ``message``
    (``message`` is the bot's message dict as returned by sendMessage)."""
    return {
        "callback_query": {
            "id": query_id or f"{next(_callback_query_ids)}{int(user['id']) % 10_000:04d}",
            "from": dict(user),
            "message": dict(message),
            "chat_instance": f"-{abs(int(message['chat']['id'])) * 7919 % 10**12}",
            "data": data,
        }
    }


def my_chat_member_update(
    user: Mapping[str, Any],
    bot_user: Mapping[str, Any],
    *,
    blocked: bool,
    date: int | float | datetime | None = None,
) -> JSON:
    """An ``Update`` with ``my_chat_member``: ``user`` blocked the bot in their private chat
    (the bot's new status ``kicked``) or unblocked it (``member``), as Telegram sends it."""
    kicked = {"user": dict(bot_user), "status": "kicked", "until_date": 0}
    member = {"user": dict(bot_user), "status": "member"}
    return {
        "my_chat_member": {
            "chat": private_chat_dict(user),
            "from": dict(user),
            "date": _timestamp(date),
            "old_chat_member": member if blocked else kicked,
            "new_chat_member": kicked if blocked else member,
        }
    }


def inline_callback_data(message: Mapping[str, Any], button_text: str) -> str:
    """The callback_data of the inline button labelled ``button_text`` on ``message``."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    for row in rows:
        for button in row:
            if button.get("text") == button_text and "callback_data" in button:
                return str(button["callback_data"])
    texts = [[str(b.get("text")) for b in row] for row in rows]
    raise LookupError(f"no callback button {button_text!r}; buttons: {texts}")


def update_type(update: Mapping[str, Any]) -> str:
    """The kind of an update dict (``message``, ``callback_query``, ...)."""
    return next((key for key in update if key != "update_id"), "")


def button_texts(rows: Iterable[Iterable[Any]]) -> list[list[str]]:
    """The labels of a keyboard's rows (reply keyboards may hold plain strings)."""
    return [[b if isinstance(b, str) else str(b.get("text", "")) for b in row] for row in rows]
