"""Readable update builders for tests, on top of the constructors in :mod:`fakebotapi`.

volunteer = TelegramUser(1001, "Marta", "it")
fake.push_update(volunteer.says("/start"))
fake.push_update(volunteer.shares_location(45.53, 10.21))
fake.push_update(volunteer.presses(fake.last_message(1001), "Take it"))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fakebotapi import (
    FakeTelegram,
    callback_update,
    command_entities,
    edited_message_update,
    group_chat_dict,
    inline_callback_data,
    message_dict,
    message_update,
    private_chat_dict,
    user_dict,
)

__all__ = [
    "TelegramUser",
    "callback_update",
    "command_entities",
    "edited_message_update",
    "group_chat_dict",
    "inline_callback_data",
    "message_dict",
    "message_update",
    "private_chat_dict",
    "user_dict",
]


@dataclass(frozen=True)
class TelegramUser:
    """A human Telegram user, producing the update dicts their actions cause."""

    id: int
    first_name: str = "Ada"
    language_code: str | None = "it"
    username: str | None = None

    @property
    def as_dict(self) -> dict[str, Any]:
        return user_dict(self.id, self.first_name, self.language_code, self.username)

    @property
    def chat(self) -> dict[str, Any]:
        return private_chat_dict(self.as_dict)

    def says(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """A message update with ``text`` (kwargs as :func:`fakebotapi.message_dict`)."""
        return message_update(self.as_dict, text, **kwargs)

    def shares_location(self, latitude: float, longitude: float, **kwargs: Any) -> dict[str, Any]:
        return message_update(self.as_dict, None, location=(latitude, longitude), **kwargs)

    def sends_photo(self, caption: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return message_update(self.as_dict, None, photo=True, caption=caption, **kwargs)

    def sends_contact(self, phone: str, **kwargs: Any) -> dict[str, Any]:
        return message_update(self.as_dict, None, contact=phone, **kwargs)

    def presses(self, message: Mapping[str, Any], button_text: str) -> dict[str, Any]:
        """A callback_query update for the inline button ``button_text`` of ``message``."""
        data = inline_callback_data(message, button_text)
        return callback_update(self.as_dict, message, data)

    def edits(self, message: Mapping[str, Any], text: str) -> dict[str, Any]:
        return edited_message_update(self.as_dict, message, text)

    def register(self, fake: FakeTelegram) -> TelegramUser:
        """Make the fake know this user (so the bot may write to them first)."""
        fake.add_user(self.as_dict)
        return self
