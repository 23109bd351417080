"""An in-memory fake of the Telegram Bot API, for offline tests and the offline console.

What it fakes, at the HTTP boundary (status codes and the exact JSON envelope
``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code": ..., "description": ...}``):

* one bot (``getMe``), its update queue with Telegram's offset confirmation, redelivery of
  unconfirmed updates, ``allowed_updates``, long polling and the 409 conflicts (webhook active,
  a second concurrent ``getUpdates``);
* sending and editing messages (text, photo, document, location, venue, media groups) with
  per-chat increasing ``message_id`` and full Message objects echoed back; HTML / MarkdownV2 /
  Markdown ``parse_mode`` parsing into plain text + entities, with the usual 400 errors;
* the validations bots trip on: empty / too long text, unknown chat, blocked or deactivated
  user, message to edit/delete not found, "message is not modified", callback_data > 64 bytes,
  stale callback query ids, invalid file ids, bot command menus per scope and language;
* fault injection (any status / description / retry_after, slow answers, dropped connections,
  optional flood control) and recording of every call for assertions.

Three ways to reach it: :class:`FakeTelegram` directly (``await fake.handle(method, params)``),
:class:`FakeRequest` (a PTB ``BaseRequest`` transport, in-process), and
:class:`FakeTelegramServer` (real HTTP via aiohttp, for a bot in another process; also
``python -m bot.fakeapi --port 8081``).

What it does NOT fake: groups' member management and permissions, channels, inline mode,
payments, stickers sets, games, business accounts, webhooks delivery (setWebhook is only
stored), real file contents, Telegram's auto-detection of URLs/mentions in bot texts, entities
for blockquotes in MarkdownV2, and Telegram's own flood limits unless :meth:`flood_limit` is set.
Error descriptions are Telegram's for the common cases; rarer ones are plausible, not verbatim.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

JSON = dict[str, Any]
FaultRule = Callable[[str, dict[str, Any]], tuple[int, str, int | None] | None]

# --------------------------------------------------------------------------------------------
# Constructors of Telegram-shaped dicts (used by tests and by the offline console)
# --------------------------------------------------------------------------------------------

_standalone_message_ids = itertools.count(1)
_callback_query_ids = itertools.count(1)
_file_counter = itertools.count(1)
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


class AutoMessageId(int):
    """A message_id picked by a builder; :meth:`FakeTelegram.push_update` renumbers it so that
    ids stay consecutive in that chat. It serialises as a plain int."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


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


# --------------------------------------------------------------------------------------------
# Errors, records, parameter coercion
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class ApiCall:
    """One request received by the fake and its answer."""

    method: str
    params: dict[str, Any]
    status: int
    response: JSON
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return self.response.get("result")


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded with multipart/form-data (only its metadata is kept)."""

    field: str
    filename: str
    size: int
    mime_type: str | None = None


@dataclass
class _Fault:
    method: str | None
    status: int
    description: str
    retry_after: int | None
    times: int


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad_request("can't parse JSON object") from exc
    return value


def _as_int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid {what} specified") from exc


def _as_float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"wrong {what} specified") from exc


def _as_bool(value: Any) -> bool:
    return value is True or value == 1 or str(value).lower() in ("true", "1")


def jsonable(value: Any) -> Any:
    """``value`` with dataclasses (e.g. :class:`UploadedFile`) turned into dicts."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# parse_mode: HTML, MarkdownV2, Markdown -> (plain text, entities)
# --------------------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_HTML_ATTR_RE = re.compile(r"""([a-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+))""")


def _parse_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode())


def _html_entity(tag: str, attrs: str, offset: int, length: int) -> JSON:
    entity: JSON = {"type": _HTML_TAGS[tag], "offset": offset, "length": length}
    found = {
        m.group(1): m.group(2) or m.group(3) or m.group(4) or ""
        for m in _HTML_ATTR_RE.finditer(attrs)
    }
    if tag == "a":
        entity["url"] = html.unescape(found.get("href", ""))
    if tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(src: str) -> tuple[str, list[JSON]]:
    """Telegram's HTML parse mode: plain text and entities, or a 400 ``ApiError``."""
    out: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, attrs, utf16 start, source index
    length = 0
    pos = 0
    while pos < len(src):
        lt = src.find("<", pos)
        chunk = html.unescape(src[pos:] if lt == -1 else src[pos:lt])
        out.append(chunk)
        length += utf16_len(chunk)
        if lt == -1:
            break
        match = _HTML_TAG_RE.match(src, lt)
        if not match:
            raise _parse_error(
                f'Unsupported start tag "{src[lt + 1 : lt + 6]}" at byte offset '
                f"{_byte_offset(src, lt)}"
            )
        closing, tag, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if tag not in _HTML_TAGS:
            raise _parse_error(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, lt)}'
            )
        if not closing:
            stack.append((tag, attrs, length, lt))
        elif not stack or stack[-1][0] != tag:
            raise _parse_error(
                f"Unmatched end tag at byte offset {_byte_offset(src, lt)}, "
                f'expected "</{stack[-1][0] if stack else tag}>", found "</{tag}>"'
            )
        else:
            open_tag, open_attrs, start, _ = stack.pop()
            if length > start:
                entities.append(_html_entity(open_tag, open_attrs, start, length - start))
        pos = match.end()
    if stack:
        tag = stack[-1][0]
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{tag}"')
    return "".join(out), sorted(entities, key=lambda e: e["offset"])


_MD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
}
_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


class _MarkdownParser:
    """Telegram's MarkdownV2 (``legacy=False``) or legacy Markdown parse mode."""

    def __init__(self, src: str, *, legacy: bool) -> None:
        self.src = src
        self.legacy = legacy
        self.out: list[str] = []
        self.length = 0
        self.entities: list[JSON] = []
        self.stack: list[tuple[str, int, int]] = []  # type, utf16 start, source index
        self.pos = 0

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.length += utf16_len(text)

    def toggle(self, kind: str, width: int) -> None:
        if self.stack and self.stack[-1][0] == kind:
            _, start, _ = self.stack.pop()
            if self.length > start:
                self.entities.append({"type": kind, "offset": start, "length": self.length - start})
        elif self.legacy and self.stack:
            self.emit(self.src[self.pos : self.pos + width])
        else:
            self.stack.append((kind, self.length, self.pos))
        self.pos += width

    def marker(self) -> tuple[str, int] | None:
        src, pos = self.src, self.pos
        if src.startswith("```", pos):
            return "pre", 3
        simple = {"`": "code", "*": "bold", "_": "italic"}
        if not self.legacy:
            if src.startswith("||", pos):
                return "spoiler", 2
            if src.startswith("__", pos):
                return "underline", 2
            simple["~"] = "strikethrough"
        kind = simple.get(src[pos])
        return (kind, 1) if kind else None

    def in_code(self) -> bool:
        return bool(self.stack) and self.stack[-1][0] in ("code", "pre")

    def link_end(self) -> None:
        close = self.src.find(")", self.pos + 2)
        if not self.src.startswith("(", self.pos + 1) or close == -1:
            raise _parse_error(
                f"Can't find end of TextUrl entity at byte offset "
                f"{_byte_offset(self.src, self.stack[-1][2])}"
            )
        _, start, _ = self.stack.pop()
        url = self.src[self.pos + 2 : close].replace("\\)", ")").replace("\\\\", "\\")
        if self.length > start:
            self.entities.append(
                {"type": "text_link", "offset": start, "length": self.length - start, "url": url}
            )
        self.pos = close + 1

    def step(self) -> None:
        char = self.src[self.pos]
        if (
            char == "\\"
            and self.pos + 1 < len(self.src)
            and (not self.legacy or self.src[self.pos + 1] in "_*`[")
        ):
            self.emit(self.src[self.pos + 1])
            self.pos += 2
        elif self.in_code() and char != "`":
            self.emit(char)
            self.pos += 1
        elif (found := self.marker()) is not None:
            self.toggle(*found)
        elif char == "[" and not (self.legacy and self.stack):
            self.stack.append(("text_link", self.length, self.pos))
            self.pos += 1
        elif char == "]" and self.stack and self.stack[-1][0] == "text_link":
            self.link_end()
        elif not self.legacy and char in _MDV2_RESERVED and not self.at_quote():
            raise _parse_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            self.emit("" if char == ">" and not self.legacy else char)
            self.pos += 1

    def at_quote(self) -> bool:
        return self.src[self.pos] == ">" and (self.pos == 0 or self.src[self.pos - 1] == "\n")

    def parse(self) -> tuple[str, list[JSON]]:
        while self.pos < len(self.src):
            self.step()
        if self.stack:
            kind, _, index = self.stack[-1]
            raise _parse_error(
                f"Can't find end of {_MD_NAMES.get(kind, kind)} entity at byte "
                f"offset {_byte_offset(self.src, index)}"
            )
        return "".join(self.out), sorted(self.entities, key=lambda e: e["offset"])


def parse_entities(text: str, parse_mode: str | None) -> tuple[str, list[JSON]]:
    """Apply ``parse_mode`` like Telegram: returns the plain text and its entities."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("markdownv2", "markdown"):
        return _MarkdownParser(text, legacy=mode == "markdown").parse()
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode}")
    return text, []


# --------------------------------------------------------------------------------------------
# FakeTelegram
# --------------------------------------------------------------------------------------------

_METHOD_NAMES = [
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendMessage",
    "sendPhoto",
    "sendLocation",
    "sendVenue",
    "sendDocument",
    "sendMediaGroup",
    "editMessageText",
    "editMessageReplyMarkup",
    "editMessageCaption",
    "deleteMessage",
    "answerCallbackQuery",
    "sendChatAction",
    "getFile",
    "getChat",
    "logOut",
    "close",
]
CANONICAL = {name.lower(): name for name in _METHOD_NAMES}
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendLocation", "sendVenue", "sendDocument", "sendMediaGroup"}
)
EDIT_METHODS = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})
# Telegram's default when allowed_updates is empty: all but these three.
DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "purchased_paid_media",
        "chat_boost",
        "removed_chat_boost",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_FILE_PATH_DIRS = {
    "photo": "photos",
    "document": "documents",
    "video": "videos",
    "audio": "music",
    "sticker": "stickers",
    "voice": "voice",
}


def canonical_method(method: str) -> str:
    """``sendmessage`` -> ``sendMessage`` (Telegram's method names are case-insensitive)."""
    return CANONICAL.get(method.lower(), method)


def _scope_key(scope: Mapping[str, Any] | None) -> tuple[Any, ...]:
    if not scope:
        return ("default",)
    kind = str(scope.get("type", "default"))
    if kind in ("chat", "chat_administrators"):
        return (kind, _as_int(scope.get("chat_id"), "chat_id"))
    if kind == "chat_member":
        return (
            kind,
            _as_int(scope.get("chat_id"), "chat_id"),
            _as_int(scope.get("user_id"), "user_id"),
        )
    return (kind,)


class FakeTelegram:
    """The in-memory state of a Telegram server for one bot."""

    def __init__(
        self,
        *,
        bot_id: int = 777000,
        bot_username: str = "helpcenter_test_bot",
        token: str = "123:TEST",
        bot_first_name: str = "Help Center",
    ) -> None:
        self.token = token
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.calls: list[ApiCall] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.webhook_url = ""
        self._users: dict[int, JSON] = {}
        self._chats: dict[int, JSON] = {}
        self._blocked: set[int] = set()
        self._deactivated: set[int] = set()
        self._kicked: set[int] = set()
        self._messages: dict[tuple[int, int], JSON] = {}
        self._extra_markups: dict[tuple[int, int], JSON] = {}
        self._reply_keyboards: dict[int, JSON] = {}
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, JSON] = {}
        self._callback_queries: set[str] = set()
        self._answered_queries: set[str] = set()  # server state: survives ``clear()``
        self._commands: dict[tuple[tuple[Any, ...], str], list[JSON]] = {}
        self._updates: list[JSON] = []
        self._next_update_id = 1
        self._confirmed_up_to = 0
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED
        self._version = 0
        self._poll_generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._faults: list[_Fault] = []
        self._rules: list[FaultRule] = []
        self._delays: dict[str | None, float] = {}
        self._disconnects: list[_Fault] = []
        self._flood: tuple[int, float, bool, int] | None = None
        self._media_groups = itertools.count(13_000_000_000_000_000)
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.lower(): getattr(self, f"_m_{name.lower()}")
            for name in _METHOD_NAMES
            if name != "getUpdates"
        }

    # ---- users and chats ----------------------------------------------------------------

    def add_user(
        self,
        user: int | Mapping[str, Any],
        first_name: str = "Ada",
        language_code: str | None = "it",
        username: str | None = None,
    ) -> JSON:
        """Register a user (and their private chat) as known to the bot; returns the user."""
        data = (
            dict(user)
            if isinstance(user, Mapping)
            else user_dict(user, first_name, language_code, username)
        )
        self._users[int(data["id"])] = data
        self._chats.setdefault(int(data["id"]), private_chat_dict(data))
        return data

    def register_chat(self, chat: Mapping[str, Any]) -> None:
        """Make a chat (e.g. :func:`group_chat_dict`) known, as if the bot had been added."""
        self._chats[int(chat["id"])] = dict(chat)

    def user(self, user_id: int) -> JSON:
        """The registered user, or a default one registered on the fly."""
        return self._users.get(user_id) or self.add_user(user_id)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them answer 403."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def user_blocks(self, user_id: int) -> int:
        """The user blocks the bot, and Telegram tells the bot (``my_chat_member``)."""
        self.block(user_id)
        return self.push_update(
            my_chat_member_update(self.user(user_id), self.bot_user, blocked=True)
        )

    def user_unblocks(self, user_id: int) -> int:
        """The user unblocks the bot, and Telegram tells the bot (``my_chat_member``)."""
        self.unblock(user_id)
        return self.push_update(
            my_chat_member_update(self.user(user_id), self.bot_user, blocked=False)
        )

    def deactivate(self, user_id: int) -> None:
        """The user deleted their account: sends to them answer 403."""
        self._deactivated.add(user_id)

    def kick_bot(self, chat_id: int) -> None:
        """The bot was removed from a group: sends there answer 403."""
        self._kicked.add(chat_id)

    # ---- updates ------------------------------------------------------------------------

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update (assigning ``update_id`` if absent) and wake long polls.

        A ``message`` without message_id, or whose id was left to the builder, gets the chat's
        next message_id (so ids stay consecutive per chat, as in Telegram)."""
        upd = dict(update)
        msg = upd.get("message")
        if isinstance(msg, Mapping) and (
            msg.get("message_id") is None or isinstance(msg["message_id"], AutoMessageId)
        ):
            upd["message"] = {**msg, "message_id": self._next_message_id(int(msg["chat"]["id"]))}
        if "update_id" not in upd:
            upd["update_id"] = self._next_update_id
        update_id = int(upd["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._learn(upd)
        self._updates.append(upd)
        self._version += 1
        self._wake()
        return update_id

    def user_writes(self, user_id: int, text: str | None = None, **kwargs: Any) -> int:
        """User ``user_id`` sends a message (kwargs as :func:`message_dict`); returns update_id."""
        return self.push_update(message_update(self.user(user_id), text, **kwargs))

    def user_edits(self, user_id: int, message: Mapping[str, Any], text: str) -> int:
        """User ``user_id`` edits their earlier ``message``; returns update_id."""
        return self.push_update(edited_message_update(self.user(user_id), message, text))

    def user_presses(self, user_id: int, message: Mapping[str, Any], button_text: str) -> int:
        """User presses an inline button of a bot message, as that message is *now*."""
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        current = self._messages.get(key)
        if current is None:
            raise LookupError(f"message {key} no longer exists")
        data = self.callback_data_for(current, button_text)
        return self.push_update(callback_update(self.user(user_id), current, data))

    def continue_update_ids(self, last_seen: int) -> None:
        """Number the next updates after ``last_seen``, as Telegram does for a bot that has
        received updates before (its ids never restart at 1)."""
        self._next_update_id = max(self._next_update_id, last_seen + 1)

    def continue_message_ids(self, chat_id: int, last_seen: int) -> None:
        """Number the chat's next messages after ``last_seen`` (a chat's ids never restart)."""
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), last_seen)

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by an offset."""
        return list(self._updates)

    @property
    def confirmed_up_to(self) -> int:
        """The highest ``update_id`` confirmed by a later ``offset`` (0 if none)."""
        return self._confirmed_up_to

    def _learn(self, update: Mapping[str, Any]) -> None:
        kind = update_type(update)
        payload = update.get(kind)
        if not isinstance(payload, Mapping):
            return
        if "from" in payload:
            self._users.setdefault(int(payload["from"]["id"]), dict(payload["from"]))
        if kind == "callback_query":
            self._callback_queries.add(str(payload["id"]))
            payload = payload.get("message") or {}
        if "chat" in payload and "message_id" in payload:
            self._learn_message(payload)

    def _learn_message(self, msg: Mapping[str, Any]) -> None:
        chat_id = int(msg["chat"]["id"])
        self._chats.setdefault(chat_id, dict(msg["chat"]))
        if msg.get("date") == 0:  # an InaccessibleMessage: nothing the bot can edit or see
            return
        key = (chat_id, int(msg["message_id"]))
        self._messages.setdefault(key, dict(msg))
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), key[1])
        for kind in ("document", "sticker", "video", "audio", "voice"):
            if isinstance(msg.get(kind), Mapping):
                self._files.setdefault(msg[kind]["file_id"], {**msg[kind], "kind": kind})
        for size in msg.get("photo") or []:
            self._files.setdefault(size["file_id"], {**size, "kind": "photo"})

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    # ---- fault injection ----------------------------------------------------------------

    def fail_next(
        self,
        method: str | None,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` (None = any, getUpdates included) fail."""
        name = canonical_method(method) if method else None
        self._faults.append(_Fault(name, status, description, retry_after, times))

    def fail_where(self, predicate: FaultRule) -> None:
        """``predicate(method, params)`` returning ``(status, description, retry_after)``
        makes that call fail; returning None lets it through."""
        self._rules.append(predicate)

    def delay(self, method: str | None, seconds: float) -> None:
        """Answers to ``method`` (None = any) arrive ``seconds`` late. The request is executed
        on arrival, so a client that times out has still sent the message (like Telegram)."""
        self._delays[canonical_method(method) if method else None] = seconds

    def disconnect_next(self, method: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests of ``method`` are dropped before reaching the server
        (the transports raise ``NetworkError`` / close the connection)."""
        name = canonical_method(method) if method else None
        self._disconnects.append(_Fault(name, 0, "connection dropped", None, times))

    def flood_limit(
        self,
        max_calls: int,
        window_s: float = 1.0,
        *,
        per_chat: bool = True,
        retry_after: int = 1,
    ) -> None:
        """Enforce a flood limit on send* calls (429 with retry_after when exceeded)."""
        self._flood = (max_calls, window_s, per_chat, retry_after)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._rules.clear()
        self._delays.clear()
        self._disconnects.clear()
        self._flood = None

    def take_disconnect(self, method: str) -> bool:
        """Transports ask this before a request; True means: drop the connection."""
        name = canonical_method(method)
        for fault in self._disconnects:
            if fault.method in (None, name):
                fault.times -= 1
                if fault.times <= 0:
                    self._disconnects.remove(fault)
                self.calls.append(ApiCall(name, {}, 0, {}, time.monotonic()))
                return True
        return False

    def _check_faults(self, name: str, params: dict[str, Any]) -> None:
        for fault in self._faults:
            if fault.method in (None, name):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                raise ApiError(fault.status, fault.description, fault.retry_after)
        for rule in self._rules:
            if (hit := rule(name, params)) is not None:
                raise ApiError(*hit)
        if self._flood and name in SEND_METHODS:
            self._check_flood(params)

    def _check_flood(self, params: Mapping[str, Any]) -> None:
        assert self._flood is not None
        max_calls, window, per_chat, retry_after = self._flood
        chat = params.get("chat_id") if per_chat else None
        since = time.monotonic() - window
        recent = [t for t in self._send_times(chat) if t > since]
        if len(recent) >= max_calls:
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    # ---- request handling ---------------------------------------------------------------

    async def handle(self, method: str, params: Mapping[str, Any]) -> tuple[int, JSON]:
        """Answer one Bot API request: ``(HTTP status, JSON body)``."""
        name = canonical_method(method)
        args = dict(params)
        at = time.monotonic()
        try:
            self._check_faults(name, args)
            if name == "getUpdates":
                result = await self._get_updates_waiting(args)
            else:
                result = self._execute(name, args)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        self.calls.append(ApiCall(name, args, status, body, at))
        if seconds := self._delays.get(name, self._delays.get(None, 0.0)):
            await asyncio.sleep(seconds)
        return status, body

    def handle_now(self, method: str, params: Mapping[str, Any]) -> tuple[int, JSON]:
        """Synchronous :meth:`handle` without delays; getUpdates never waits."""
        name = canonical_method(method)
        args = dict(params)
        at = time.monotonic()
        try:
            self._check_faults(name, args)
            if name == "getUpdates":
                result: Any = self._get_updates_now(args)
            else:
                result = self._execute(name, args)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        self.calls.append(ApiCall(name, args, status, body, at))
        return status, body

    def _execute(self, name: str, params: dict[str, Any]) -> Any:
        handler = self._handlers.get(name.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        return handler(params)

    # ---- getUpdates ---------------------------------------------------------------------

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._confirmed_up_to = max(self._confirmed_up_to, offset - 1)
        elif offset < 0:
            dropped = self._updates[:offset] if -offset < len(self._updates) else []
            if dropped:
                self._confirmed_up_to = max(self._confirmed_up_to, dropped[-1]["update_id"])
            self._updates = self._updates[len(dropped) :]

    def _get_updates_now(self, params: Mapping[str, Any]) -> list[JSON]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )
        self._confirm(_as_int(params.get("offset", 0), "offset"))
        allowed = _as_json(params.get("allowed_updates"))
        if allowed is not None:
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_ALLOWED
        self._updates = [u for u in self._updates if update_type(u) in self._allowed_updates]
        limit = min(max(_as_int(params.get("limit", 100), "limit"), 1), 100)
        return [dict(u) for u in self._updates[:limit]]

    async def _get_updates_waiting(self, params: Mapping[str, Any]) -> list[JSON]:
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an older long poll is terminated with 409
        timeout = max(_as_float(params.get("timeout", 0), "timeout"), 0.0)
        deadline = time.monotonic() + timeout
        while True:
            version = self._version
            batch = self._get_updates_now(params)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await self._wait_for_push(version, remaining)
            if self._poll_generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make "
                    "sure that only one bot instance is running",
                )

    def _wake(self) -> None:
        for fut in list(self._waiters):
            loop = fut.get_loop()
            if loop.is_closed():
                self._waiters.discard(fut)
            else:
                loop.call_soon_threadsafe(_resolve, fut)

    async def _wait_for_push(self, version: int, seconds: float) -> None:
        if self._version != version:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, seconds)
        finally:
            self._waiters.discard(fut)

    # ---- chats and messages -------------------------------------------------------------

    def _chat(self, params: Mapping[str, Any], *, sending: bool = True) -> JSON:
        raw = params.get("chat_id")
        if raw in (None, ""):
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.get("username", "").lower() == raw[1:].lower()
                ),
                None,
            )
        else:
            try:
                chat = self._chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise bad_request("chat not found")
        if sending:
            self._check_reachable(int(chat["id"]))
        return chat

    def _check_reachable(self, chat_id: int) -> None:
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self._deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if chat_id in self._kicked:
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")

    def _markup(self, params: Mapping[str, Any]) -> JSON | None:
        markup = _as_json(params.get("reply_markup"))
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                if len(str(button.get("callback_data", "")).encode()) > 64:
                    raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _text(
        self,
        params: Mapping[str, Any],
        key: str,
        *,
        limit: int,
        required: bool,
    ) -> JSON:
        raw = params.get(key)
        if raw is None and not required:
            return {}
        text, entities = parse_entities(str(raw or ""), params.get("parse_mode"))
        explicit = _as_json(params.get("entities" if key == "text" else "caption_entities"))
        entities = list(explicit) if explicit else entities
        if not text.strip():
            if required:
                raise bad_request("message text is empty")
            return {}
        if utf16_len(text) > limit:
            raise bad_request(
                "message is too long" if key == "text" else "message caption is too long"
            )
        content: JSON = {key: text}
        if entities:
            content["entities" if key == "text" else "caption_entities"] = entities
        return content

    def _reply_to(self, chat_id: int, params: Mapping[str, Any]) -> JSON:
        reply = _as_json(params.get("reply_parameters")) or {}
        if "reply_to_message_id" in params:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        if not reply:
            return {}
        target_chat = int(reply.get("chat_id") or chat_id)
        original = self._messages.get((target_chat, _as_int(reply["message_id"], "message_id")))
        if original is None:
            if _as_bool(reply.get("allow_sending_without_reply")):
                return {}
            raise bad_request("message to be replied not found")
        return {"reply_to_message": {k: v for k, v in original.items() if k != "reply_to_message"}}

    def _send(self, params: Mapping[str, Any], content: Mapping[str, Any]) -> JSON:
        chat = self._chat(params)
        chat_id = int(chat["id"])
        reply = self._reply_to(chat_id, params)
        markup = self._markup(params)
        msg: JSON = {
            "message_id": self._next_message_id(chat_id),
            "from": dict(self.bot_user),
            "chat": dict(chat),
            "date": int(time.time()),
            **reply,
            **content,
        }
        self._apply_markup(msg, markup)
        self._messages[(chat_id, msg["message_id"])] = msg
        return dict(msg)

    def _apply_markup(self, msg: JSON, markup: JSON | None) -> None:
        key = (int(msg["chat"]["id"]), int(msg["message_id"]))
        msg.pop("reply_markup", None)
        self._extra_markups.pop(key, None)
        if markup is None:
            return
        if "inline_keyboard" in markup:
            msg["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
            return
        self._extra_markups[key] = markup
        if "keyboard" in markup:
            self._reply_keyboards[key[0]] = markup
        elif markup.get("remove_keyboard"):
            self._reply_keyboards.pop(key[0], None)

    # ---- files --------------------------------------------------------------------------

    def _new_file(self, kind: str, size: int, **extra: Any) -> JSON:
        file_id, unique_id = new_file_ids(kind)
        data = {"file_id": file_id, "file_unique_id": unique_id, "file_size": size, **extra}
        self._files[file_id] = {**data, "kind": kind}
        return data

    def _file(self, params: Mapping[str, Any], key: str, kind: str) -> JSON:
        """Resolve an InputFile parameter (upload, attach://, URL or file_id) to file data."""
        ref = params.get(key)
        if isinstance(ref, str) and ref.startswith("attach://"):
            ref = params.get(ref.removeprefix("attach://"))
        if ref is None or ref == "":
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(ref, UploadedFile):
            extra = {"file_name": ref.filename} if kind != "photo" else {}
            if ref.mime_type and kind != "photo":
                extra["mime_type"] = ref.mime_type
            return self._new_file(kind, ref.size or 1, **extra)
        if isinstance(ref, str) and ref.startswith(("http://", "https://")):
            name = {"file_name": ref.rsplit("/", 1)[-1]} if kind != "photo" else {}
            return self._new_file(kind, 50_000, **name)
        known = self._files.get(str(ref))
        if known is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return {k: v for k, v in known.items() if k not in ("kind", "file_path")}

    def _media(self, params: Mapping[str, Any], key: str, kind: str) -> JSON:
        data = self._file(params, key, kind)
        if kind == "photo":
            return {
                "photo": photo_sizes(
                    data["file_id"], data["file_unique_id"], data.get("file_size", 1)
                )
            }
        return {kind: data}

    # ---- Bot API methods (``_m_<lowercase name>``) ----------------------------------------

    def _m_getme(self, params: dict[str, Any]) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logout(self, params: dict[str, Any]) -> bool:
        return True

    def _m_close(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        if _as_bool(params.get("drop_pending_updates")):
            self._drop_pending()
        self._wake()
        return True

    def _m_deletewebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        if _as_bool(params.get("drop_pending_updates")):
            self._drop_pending()
        return True

    def _drop_pending(self) -> None:
        if self._updates:
            self._confirmed_up_to = max(self._confirmed_up_to, self._updates[-1]["update_id"])
        self._updates.clear()

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> JSON:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _commands_key(self, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], str]:
        scope = _scope_key(_as_json(params.get("scope")))
        if len(scope) > 1 and int(scope[1]) not in self._chats:
            raise bad_request("chat not found")
        return scope, str(params.get("language_code") or "")

    def _m_setmycommands(self, params: dict[str, Any]) -> bool:
        commands = _as_json(params.get("commands")) or []
        for cmd in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(cmd.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", "")).strip()) <= 256:
                raise bad_request("command description is empty")
        key = self._commands_key(params)
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    def _m_getmycommands(self, params: dict[str, Any]) -> list[JSON]:
        return list(self._commands.get(self._commands_key(params), []))

    def _m_deletemycommands(self, params: dict[str, Any]) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _m_sendmessage(self, params: dict[str, Any]) -> JSON:
        self._chat(params)
        return self._send(params, self._text(params, "text", limit=4096, required=True))

    def _m_sendphoto(self, params: dict[str, Any]) -> JSON:
        self._chat(params)
        content = self._media(params, "photo", "photo")
        content.update(self._text(params, "caption", limit=1024, required=False))
        return self._send(params, content)

    def _m_senddocument(self, params: dict[str, Any]) -> JSON:
        self._chat(params)
        content = self._media(params, "document", "document")
        content.update(self._text(params, "caption", limit=1024, required=False))
        return self._send(params, content)

    def _location(self, params: Mapping[str, Any]) -> JSON:
        latitude = _as_float(params.get("latitude"), "latitude")
        longitude = _as_float(params.get("longitude"), "longitude")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise bad_request("wrong latitude/longitude specified")
        location: JSON = {"latitude": latitude, "longitude": longitude}
        if params.get("live_period"):
            location["live_period"] = _as_int(params["live_period"], "live_period")
        return location

    def _m_sendlocation(self, params: dict[str, Any]) -> JSON:
        self._chat(params)
        return self._send(params, {"location": self._location(params)})

    def _m_sendvenue(self, params: dict[str, Any]) -> JSON:
        self._chat(params)
        location = self._location(params)
        title, address = params.get("title"), params.get("address")
        if not title or not address:
            raise bad_request("venue title and address must be non-empty")
        venue = {"location": location, "title": str(title), "address": str(address)}
        return self._send(params, {"venue": venue, "location": location})

    def _m_sendmediagroup(self, params: dict[str, Any]) -> list[JSON]:
        self._chat(params)
        media = _as_json(params.get("media")) or []
        if not 2 <= len(media) <= 10:
            raise bad_request("wrong number of media specified (must be 2-10)")
        group_id = str(next(self._media_groups))
        contents = []
        for item in media:
            kind = str(item.get("type", "photo"))
            content = self._media({**params, "media": item.get("media")}, "media", kind)
            content.update(self._text(item, "caption", limit=1024, required=False))
            contents.append(content)
        return [
            self._send({**params, "reply_markup": None}, {**content, "media_group_id": group_id})
            for content in contents
        ]

    def _editable(self, params: Mapping[str, Any]) -> JSON:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake")
        chat = self._chat(params)
        key = (int(chat["id"]), _as_int(params.get("message_id"), "message_id"))
        msg = self._messages.get(key)
        if msg is None:
            raise bad_request("message to edit not found")
        if msg["from"]["id"] != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return msg

    def _finish_edit(self, msg: JSON, content: Mapping[str, Any], markup: JSON | None) -> JSON:
        keys = _content_keys(msg)
        new = {k: content.get(k) for k in keys}
        inline = (
            {"inline_keyboard": markup["inline_keyboard"]}
            if markup and ("inline_keyboard" in markup)
            else None
        )
        if ({k: msg.get(k) for k in keys}, msg.get("reply_markup")) == (new, inline):
            raise bad_request(NOT_MODIFIED)
        for key in keys:
            msg.pop(key, None)
        msg.update({k: v for k, v in new.items() if v is not None})
        self._apply_markup(msg, markup)
        msg["edit_date"] = int(time.time())
        return dict(msg)

    def _m_editmessagetext(self, params: dict[str, Any]) -> JSON:
        msg = self._editable(params)
        content = self._text(params, "text", limit=4096, required=True)
        if "text" not in msg:
            raise bad_request("there is no text in the message to edit")
        return self._finish_edit(msg, content, self._markup(params))

    def _m_editmessagecaption(self, params: dict[str, Any]) -> JSON:
        msg = self._editable(params)
        if "text" in msg:
            raise bad_request("there is no caption in the message to edit")
        content = self._text(params, "caption", limit=1024, required=False)
        return self._finish_edit(msg, content, self._markup(params))

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> JSON:
        msg = self._editable(params)
        return self._finish_edit(msg, msg, self._markup(params))

    def _m_deletemessage(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params, sending=False)
        key = (int(chat["id"]), _as_int(params.get("message_id"), "message_id"))
        if self._messages.pop(key, None) is None:
            raise bad_request("message to delete not found")
        self._extra_markups.pop(key, None)
        return True

    def _m_answercallbackquery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callback_queries or query_id in self._answered_queries:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._answered_queries.add(query_id)
        self.callback_answers[query_id] = dict(params)
        return True

    def _m_sendchataction(self, params: dict[str, Any]) -> bool:
        self._chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _m_getfile(self, params: dict[str, Any]) -> JSON:
        data = self._files.get(str(params.get("file_id") or ""))
        if data is None:
            raise bad_request("invalid file_id")
        kind = data["kind"]
        data.setdefault(
            "file_path",
            f"{_FILE_PATH_DIRS.get(kind, 'files')}/file_{len(self._files)}.{_extension(kind)}",
        )
        return {
            k: data[k] for k in ("file_id", "file_unique_id", "file_size", "file_path") if k in data
        }

    def _m_getchat(self, params: dict[str, Any]) -> JSON:
        chat = self._chat(params, sending=False)
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    # ---- observation helpers ------------------------------------------------------------

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSON]:
        """Results of successful send*/edit* calls, in order (edits appear again)."""
        out: list[JSON] = []
        for call in self.calls:
            if not call.ok or call.method not in SEND_METHODS | EDIT_METHODS:
                continue
            results = call.result if isinstance(call.result, list) else [call.result]
            out.extend(r for r in results if isinstance(r, dict))
        if chat_id is None:
            return out
        return [m for m in out if m["chat"]["id"] == int(chat_id)]

    def last_message(self, chat_id: int | str) -> JSON | None:
        sent = self.sent_messages(chat_id)
        return sent[-1] if sent else None

    def texts(self, chat_id: int | str) -> list[str]:
        """Texts (or captions) of what the bot sent/edited in a chat, in order."""
        return [
            m.get("text") or m.get("caption") or ""
            for m in self.sent_messages(chat_id)
            if "text" in m or "caption" in m
        ]

    def last_text(self, chat_id: int | str) -> str | None:
        texts = self.texts(chat_id)
        return texts[-1] if texts else None

    def current_message(self, chat_id: int, message_id: int) -> JSON | None:
        """The message as it is now (after edits), None if deleted or unknown."""
        msg = self._messages.get((chat_id, message_id))
        return dict(msg) if msg else None

    def reply_keyboard(self, chat_id: int) -> list[list[str]] | None:
        """Button texts of the reply keyboard the chat currently shows (None if none)."""
        markup = self._reply_keyboards.get(chat_id)
        return _button_texts(markup.get("keyboard", [])) if markup else None

    def markup_of(self, message: Mapping[str, Any]) -> JSON:
        """The inline or reply keyboard markup attached to a sent message ({} if none)."""
        return dict(
            message.get("reply_markup")
            or self._extra_markups.get((int(message["chat"]["id"]), int(message["message_id"])))
            or {}
        )

    def buttons(self, message: Mapping[str, Any]) -> list[list[str]]:
        """Button texts of the inline (or reply) keyboard attached to a sent message."""
        markup = self.markup_of(message)
        return _button_texts(markup.get("inline_keyboard") or markup.get("keyboard") or [])

    def callback_data_for(self, message: Mapping[str, Any], button_text: str) -> str:
        """The callback_data of the inline button labelled ``button_text``."""
        return inline_callback_data(message, button_text)

    def commands_for(self, chat_id: int, language_code: str | None = None) -> list[JSON]:
        """The command menu a chat sees, resolving scope (chat > all_*_chats > default)
        and language (exact code, then no code) like Telegram clients do."""
        chat = self._chats.get(chat_id, {"type": "private" if chat_id > 0 else "group"})
        broad = "all_private_chats" if chat["type"] == "private" else "all_group_chats"
        for scope in (("chat", chat_id), (broad,), ("default",)):
            for lang in ([language_code] if language_code else []) + [""]:
                if (scope, lang) in self._commands:
                    return list(self._commands[(scope, lang)])
        return []

    def _send_times(self, chat_id: int | str | None = None) -> list[float]:
        return [
            c.at
            for c in self.calls
            if c.ok
            and c.method in SEND_METHODS
            and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    def max_rate(self, window_s: float = 1.0, chat_id: int | str | None = None) -> int:
        """The most successful send* calls seen in any sliding window of ``window_s``."""
        times = sorted(self._send_times(chat_id))
        best = start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def calls_of(self, method: str) -> list[ApiCall]:
        name = canonical_method(method)
        return [c for c in self.calls if c.method == name]

    def clear(self) -> None:
        """Forget recorded calls and callback answers (server state is kept)."""
        self.calls.clear()
        self.callback_answers.clear()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _content_keys(msg: Mapping[str, Any]) -> tuple[str, str]:
    return ("text", "entities") if "text" in msg else ("caption", "caption_entities")


def _extension(kind: str) -> str:
    return {"photo": "jpg", "video": "mp4", "audio": "mp3", "voice": "oga", "sticker": "webp"}.get(
        kind, "pdf"
    )


def _button_texts(rows: Iterable[Iterable[Any]]) -> list[list[str]]:
    return [[b if isinstance(b, str) else str(b.get("text", "")) for b in row] for row in rows]


# --------------------------------------------------------------------------------------------
# In-process PTB transport
# --------------------------------------------------------------------------------------------


def _upload(name: str, field_tuple: Any) -> UploadedFile:
    filename, content, mime = (*tuple(field_tuple), None, None, None)[:3]
    size = len(content) if isinstance(content, bytes | bytearray) else 0
    return UploadedFile(name, str(filename or name), size, mime)


class FakeRequest(BaseRequest):
    """A PTB transport that answers from a :class:`FakeTelegram` without any network."""

    def __init__(self, fake: FakeTelegram, *, read_timeout: float | None = 5.0) -> None:
        self.fake = fake
        self._read_timeout = read_timeout
        self.initialized = False

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        self.initialized = True

    async def shutdown(self) -> None:
        self.initialized = False

    @staticmethod
    def params_of(request_data: RequestData | None) -> dict[str, Any]:
        """The request's parameters, with uploaded files as :class:`UploadedFile`."""
        if request_data is None:
            return {}
        params: dict[str, Any] = dict(request_data.parameters)
        if request_data.contains_files:
            for name, field_tuple in request_data.multipart_data.items():
                params.setdefault(name, _upload(name, field_tuple))
        return params

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        path, _, query = url.partition("?")
        api_method = path.rstrip("/").rsplit("/", 1)[-1]
        params = dict(parse_qsl(query)) | self.params_of(request_data)  # as Telegram merges
        if self.fake.take_disconnect(api_method):
            raise NetworkError(
                "httpx.RemoteProtocolError: Server disconnected without sending a response."
            )
        timeout = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        try:
            status, body = await asyncio.wait_for(self.fake.handle(api_method, params), timeout)
        except TimeoutError as exc:
            raise TimedOut from exc
        return status, json.dumps(body).encode()


# --------------------------------------------------------------------------------------------
# HTTP server (aiohttp) for bots in another process
# --------------------------------------------------------------------------------------------


async def _http_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            content = value.file.read()
            params[name] = UploadedFile(name, value.filename, len(content), value.content_type)
        else:
            params[name] = str(value)
    return params


class FakeTelegramServer:
    """Serves a :class:`FakeTelegram` over HTTP: ``/bot{token}/{method}`` plus ``/_control``."""

    def __init__(
        self,
        fake: FakeTelegram | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transit: Callable[[str], float] | None = None,
    ) -> None:
        self.fake = fake or FakeTelegram()
        self.host = host
        self.port = port
        # Seconds a request to ``method`` spends on its way, before the fake sees it (network
        # jitter: requests sent apart can arrive together). ``FakeTelegram.delay`` is the answer.
        self.transit = transit
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """What PTB needs as ``base_url`` (it appends the token)."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_post("/_control/push_update", self._push_update)
        app.router.add_post("/_control/user_writes", self._user_writes)
        app.router.add_post("/_control/fail_next", self._fail_next)
        app.router.add_post("/_control/block", self._block)
        app.router.add_post("/_control/clear", self._clear)
        app.router.add_get("/_control/sent", self._sent)
        app.router.add_get("/_control/pending", self._pending)
        app.router.add_get("/_control/calls", self._calls)
        return app

    async def start(self) -> str:
        """Start listening; returns :attr:`base_url`."""
        # A long poll whose client went away (a bot that stopped) is not waited out on stop.
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegramServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.fake.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await _http_params(request)
        if self.transit is not None:
            await asyncio.sleep(self.transit(method))
        if self.fake.take_disconnect(method):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=204)
        status, body = await self.fake.handle(method, params)
        return web.json_response(body, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.fake.token:
            return web.Response(status=401)
        return web.Response(body=b"fake file content " + request.match_info["path"].encode())

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": jsonable(result)})

    async def _push_update(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.push_update(await request.json()))

    async def _user_writes(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = int(body.pop("user_id"))
        text = body.pop("text", None)
        if "location" in body:
            body["location"] = tuple(body["location"])
        return self._ok(self.fake.user_writes(user_id, text, **body))

    async def _fail_next(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fake.fail_next(body.pop("method", None), **body)
        return self._ok(True)

    async def _block(self, request: web.Request) -> web.Response:
        self.fake.block(int((await request.json())["user_id"]))
        return self._ok(True)

    async def _clear(self, request: web.Request) -> web.Response:
        self.fake.clear()
        return self._ok(True)

    async def _sent(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.sent_messages(request.query.get("chat_id")))

    async def _pending(self, request: web.Request) -> web.Response:
        return self._ok(self.fake.pending_updates())

    async def _calls(self, request: web.Request) -> web.Response:
        return self._ok(
            [
                {
                    "method": c.method,
                    "params": c.params,
                    "status": c.status,
                    "response": c.response,
                    "at": c.at,
                }
                for c in self.fake.calls
            ]
        )


async def serve(host: str, port: int, fake: FakeTelegram) -> None:
    """Serve until cancelled, printing the base URL on stdout."""
    server = FakeTelegramServer(fake, host=host, port=port)
    print(await server.start(), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123:TEST")
    parser.add_argument("--bot-username", default="helpcenter_test_bot")
    args = parser.parse_args(argv)
    fake = FakeTelegram(token=args.token, bot_username=args.bot_username)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, fake))


if __name__ == "__main__":
    main()
