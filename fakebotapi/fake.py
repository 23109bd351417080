""":class:`FakeTelegram`: one bot's Telegram, answering Bot API requests in memory, with the
people's side (users write, press, block the bot), fault injection and what tests observe."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import Any

from fakebotapi import calls as recorded
from fakebotapi.builders import (
    button_texts,
    callback_update,
    edited_message_update,
    inline_callback_data,
    message_update,
    my_chat_member_update,
    user_dict,
)
from fakebotapi.calls import ApiCall
from fakebotapi.errors import ApiError, not_found
from fakebotapi.faults import FaultRule, Faults
from fakebotapi.limits import FloodLimit
from fakebotapi.methods import METHODS, canonical_method
from fakebotapi.methods.commands import menu_of
from fakebotapi.params import JSON
from fakebotapi.state import BotState


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
        self.state = BotState(self.bot_user)
        self.calls: list[ApiCall] = []
        self.faults = Faults()

    def revoke_token(self) -> str:
        """What @BotFather's /revoke does: the old token is refused (401 Unauthorized) from the
        next call on, the bot and its pending updates stay; returns the new token."""
        bot_id = self.token.partition(":")[0]
        self.token = f"{bot_id}:{secrets.token_hex(16)}"
        return self.token

    @property
    def callback_answers(self) -> dict[str, dict[str, Any]]:
        """The parameters of each answered callback query, by query id."""
        return self.state.callback_answers

    @property
    def webhook_url(self) -> str:
        return self.state.updates.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str) -> None:
        self.state.updates.webhook_url = url

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
        return self.state.add_user(data)

    def register_chat(self, chat: Mapping[str, Any]) -> None:
        """Make a chat (e.g. :func:`group_chat_dict`) known, as if the bot had been added."""
        self.state.chats[int(chat["id"])] = dict(chat)

    def user(self, user_id: int) -> JSON:
        """The registered user, or a default one registered on the fly."""
        return self.state.user(user_id)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends to them answer 403."""
        self.state.blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self.state.blocked.discard(user_id)

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
        self.state.deactivated.add(user_id)

    def kick_bot(self, chat_id: int) -> None:
        """The bot was removed from a group: sends there answer 403."""
        self.state.kicked.add(chat_id)

    # ---- updates ------------------------------------------------------------------------

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update (assigning ``update_id`` if absent) and wake long polls.

        A ``message`` without message_id, or whose id was left to the builder, gets the chat's
        next message_id (so ids stay consecutive per chat, as in Telegram)."""
        upd = self.state.numbered(update)
        self.state.learn(upd)
        return self.state.updates.push(upd)

    def user_writes(self, user_id: int, text: str | None = None, **kwargs: Any) -> int:
        """User ``user_id`` sends a message (kwargs as :func:`message_dict`); returns update_id."""
        return self.push_update(message_update(self.user(user_id), text, **kwargs))

    def user_edits(self, user_id: int, message: Mapping[str, Any], text: str) -> int:
        """User ``user_id`` edits their earlier ``message``; returns update_id."""
        return self.push_update(edited_message_update(self.user(user_id), message, text))

    def user_presses(self, user_id: int, message: Mapping[str, Any], button_text: str) -> int:
        """User presses an inline button of a bot message, as that message is *now*."""
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        current = self.state.messages.get(key)
        if current is None:
            raise LookupError(f"message {key} no longer exists")
        data = self.callback_data_for(current, button_text)
        return self.push_update(callback_update(self.user(user_id), current, data))

    def continue_update_ids(self, last_seen: int) -> None:
        """Number the next updates after ``last_seen``, as Telegram does for a bot that has
        received updates before (its ids never restart at 1)."""
        self.state.updates.continue_ids(last_seen)

    def continue_message_ids(self, chat_id: int, last_seen: int) -> None:
        """Number the chat's next messages after ``last_seen`` (a chat's ids never restart)."""
        self.state.continue_message_ids(chat_id, last_seen)

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by an offset."""
        return self.state.updates.pending()

    @property
    def confirmed_up_to(self) -> int:
        """The highest ``update_id`` confirmed by a later ``offset`` (0 if none)."""
        return self.state.updates.confirmed_up_to

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
        self.faults.fail_next(name, status, description, retry_after, times)

    def fail_where(self, predicate: FaultRule) -> None:
        """``predicate(method, params)`` returning ``(status, description, retry_after)``
        makes that call fail; returning None lets it through."""
        self.faults.fail_where(predicate)

    def delay(self, method: str | None, seconds: float) -> None:
        """Answers to ``method`` (None = any) arrive ``seconds`` late. The request is executed
        on arrival, so a client that times out has still sent the message (like Telegram)."""
        self.faults.delay(canonical_method(method) if method else None, seconds)

    def disconnect_next(self, method: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` requests of ``method`` are dropped before reaching the server
        (the transports raise ``NetworkError`` / close the connection)."""
        self.faults.disconnect_next(canonical_method(method) if method else None, times)

    def flood_limit(
        self,
        max_calls: int,
        window_s: float = 1.0,
        *,
        per_chat: bool = True,
        retry_after: int = 1,
    ) -> None:
        """Enforce a flood limit on send* calls (429 with retry_after when exceeded)."""
        self.faults.flood = FloodLimit(max_calls, window_s, per_chat, retry_after)

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_disconnect(self, method: str) -> bool:
        """Transports ask this before a request; True means: drop the connection."""
        name = canonical_method(method)
        if not self.faults.take_disconnect(name):
            return False
        self.calls.append(ApiCall(name, {}, 0, {}, time.monotonic()))
        return True

    # ---- request handling ---------------------------------------------------------------

    async def handle(self, method: str, params: Mapping[str, Any]) -> tuple[int, JSON]:
        """Answer one Bot API request: ``(HTTP status, JSON body)``."""
        name = canonical_method(method)
        args = dict(params)
        at = time.monotonic()
        try:
            self.faults.check(name, args, self.calls)
            if name == "getUpdates":
                result = await self.state.updates.get_waiting(args)
            else:
                result = self._execute(name, args)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        self.calls.append(ApiCall(name, args, status, body, at))
        if seconds := self.faults.delay_of(name):
            await asyncio.sleep(seconds)
        return status, body

    def handle_now(self, method: str, params: Mapping[str, Any]) -> tuple[int, JSON]:
        """Synchronous :meth:`handle` without delays; getUpdates never waits."""
        name = canonical_method(method)
        args = dict(params)
        at = time.monotonic()
        try:
            self.faults.check(name, args, self.calls)
            if name == "getUpdates":
                result: Any = self.state.updates.get_now(args)
            else:
                result = self._execute(name, args)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        self.calls.append(ApiCall(name, args, status, body, at))
        return status, body

    def _execute(self, name: str, params: dict[str, Any]) -> Any:
        method = METHODS.get(name)
        if method is None:
            raise not_found()
        return method(self.state, params)

    # ---- observation helpers ------------------------------------------------------------

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSON]:
        """Results of successful send*/edit* calls, in order (edits appear again)."""
        return recorded.sent_messages(self.calls, chat_id)

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
        msg = self.state.messages.get((chat_id, message_id))
        return dict(msg) if msg else None

    def reply_keyboard(self, chat_id: int) -> list[list[str]] | None:
        """Button texts of the reply keyboard the chat currently shows (None if none)."""
        markup = self.state.reply_keyboards.get(chat_id)
        return button_texts(markup.get("keyboard", [])) if markup else None

    def markup_of(self, message: Mapping[str, Any]) -> JSON:
        """The inline or reply keyboard markup attached to a sent message ({} if none)."""
        if message.get("reply_markup"):
            return dict(message["reply_markup"])
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        return dict(self.state.extra_markups.get(key) or {})

    def buttons(self, message: Mapping[str, Any]) -> list[list[str]]:
        """Button texts of the inline (or reply) keyboard attached to a sent message."""
        markup = self.markup_of(message)
        return button_texts(markup.get("inline_keyboard") or markup.get("keyboard") or [])

    def callback_data_for(self, message: Mapping[str, Any], button_text: str) -> str:
        """The callback_data of the inline button labelled ``button_text``."""
        return inline_callback_data(message, button_text)

    def commands_for(self, chat_id: int, language_code: str | None = None) -> list[JSON]:
        """The command menu a chat sees, resolving scope (chat > all_*_chats > default)
        and language (exact code, then no code) like Telegram clients do."""
        return menu_of(self.state, chat_id, language_code)

    def max_rate(self, window_s: float = 1.0, chat_id: int | str | None = None) -> int:
        """The most successful send* calls seen in any sliding window of ``window_s``."""
        return recorded.max_rate(self.calls, window_s, chat_id)

    def calls_of(self, method: str) -> list[ApiCall]:
        name = canonical_method(method)
        return [c for c in self.calls if c.method == name]

    def clear(self) -> None:
        """Forget recorded calls and callback answers (server state is kept)."""
        self.calls.clear()
        self.callback_answers.clear()
