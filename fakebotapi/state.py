"""What Telegram knows for one bot: its users and chats (and who can't be written to), the
messages in each chat with their per-chat ``message_id``, files, callback queries, command
menus, and the update queue."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from fakebotapi.builders import (
    AutoMessageId,
    new_file_ids,
    private_chat_dict,
    update_type,
    user_dict,
)
from fakebotapi.errors import bad_request, forbidden
from fakebotapi.params import JSON
from fakebotapi.updates import UpdateQueue

MessageKey = tuple[int, int]  # (chat_id, message_id)


class BotState:
    """The server-side state the Bot API methods read and change."""

    def __init__(self, bot_user: JSON) -> None:
        self.bot_user = bot_user
        self.updates = UpdateQueue()
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, JSON] = {}
        self.blocked: set[int] = set()
        self.deactivated: set[int] = set()
        self.kicked: set[int] = set()
        self.messages: dict[MessageKey, JSON] = {}
        # Reply keyboards and keyboard removals are not echoed in the Message: kept aside.
        self.extra_markups: dict[MessageKey, JSON] = {}
        self.reply_keyboards: dict[int, JSON] = {}
        self.files: dict[str, JSON] = {}
        self.callback_queries: set[str] = set()
        self.answered_queries: set[str] = set()
        self.callback_answers: dict[str, dict[str, Any]] = {}  # a record: cleared by clear()
        self.commands: dict[tuple[tuple[Any, ...], str], list[JSON]] = {}
        self.media_groups = itertools.count(13_000_000_000_000_000)
        self._last_message_id: dict[int, int] = {}

    # ---- users and chats ----------------------------------------------------------------

    def add_user(self, user: JSON) -> JSON:
        self.users[int(user["id"])] = user
        self.chats.setdefault(int(user["id"]), private_chat_dict(user))
        return user

    def user(self, user_id: int) -> JSON:
        """The registered user, or a default one registered on the fly."""
        return self.users.get(user_id) or self.add_user(user_dict(user_id))

    def chat(self, params: Mapping[str, Any], *, sending: bool = True) -> JSON:
        """The chat named by ``chat_id`` (an id or ``@username``); when ``sending``, one the
        bot may write to."""
        raw = params.get("chat_id")
        if raw in (None, ""):
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (c for c in self.chats.values() if c.get("username", "").lower() == name), None
            )
        else:
            try:
                chat = self.chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise bad_request("chat not found")
        if sending:
            self._check_reachable(int(chat["id"]))
        return chat

    def _check_reachable(self, chat_id: int) -> None:
        if chat_id in self.blocked:
            raise forbidden("bot was blocked by the user")
        if chat_id in self.deactivated:
            raise forbidden("user is deactivated")
        if chat_id in self.kicked:
            raise forbidden("bot was kicked from the group chat")

    # ---- messages -----------------------------------------------------------------------

    def next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def continue_message_ids(self, chat_id: int, last_seen: int) -> None:
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), last_seen)

    def numbered(self, update: Mapping[str, Any]) -> JSON:
        """A copy of ``update`` whose ``message``, if its id was left to the builder (or is
        absent), gets the chat's next message_id: ids stay consecutive per chat."""
        upd = dict(update)
        msg = upd.get("message")
        if isinstance(msg, Mapping) and (
            msg.get("message_id") is None or isinstance(msg["message_id"], AutoMessageId)
        ):
            upd["message"] = {**msg, "message_id": self.next_message_id(int(msg["chat"]["id"]))}
        return upd

    def learn(self, update: Mapping[str, Any]) -> None:
        """What an incoming update tells Telegram: its user, chat, message, files, query."""
        kind = update_type(update)
        payload = update.get(kind)
        if not isinstance(payload, Mapping):
            return
        if "from" in payload:
            self.users.setdefault(int(payload["from"]["id"]), dict(payload["from"]))
        if kind == "callback_query":
            self.callback_queries.add(str(payload["id"]))
            payload = payload.get("message") or {}
        if "chat" in payload and "message_id" in payload:
            self._learn_message(payload)

    def _learn_message(self, msg: Mapping[str, Any]) -> None:
        chat_id = int(msg["chat"]["id"])
        self.chats.setdefault(chat_id, dict(msg["chat"]))
        if msg.get("date") == 0:  # an InaccessibleMessage: nothing the bot can edit or see
            return
        key = (chat_id, int(msg["message_id"]))
        self.messages.setdefault(key, dict(msg))
        self.continue_message_ids(chat_id, key[1])
        for kind in ("document", "sticker", "video", "audio", "voice"):
            if isinstance(msg.get(kind), Mapping):
                self.files.setdefault(msg[kind]["file_id"], {**msg[kind], "kind": kind})
        for size in msg.get("photo") or []:
            self.files.setdefault(size["file_id"], {**size, "kind": "photo"})

    # ---- files --------------------------------------------------------------------------

    def new_file(self, kind: str, size: int, **extra: Any) -> JSON:
        """A file Telegram stores now (an upload or a URL): its data as sent back."""
        file_id, unique_id = new_file_ids(kind)
        data = {"file_id": file_id, "file_unique_id": unique_id, "file_size": size, **extra}
        self.files[file_id] = {**data, "kind": kind}
        return data
