"""An in-memory fake of the Telegram Bot API, for offline tests, the console and the demo.

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
:class:`fakebotapi.server.FakeTelegramServer` (real HTTP via aiohttp, for a bot in another
process; also ``python -m fakebotapi --port 8081``). Only that last one needs aiohttp (the
``fake-server`` extra): importing this package does not import it.

What it does NOT fake: groups' member management and permissions, channels, inline mode,
payments, stickers sets, games, business accounts, webhooks delivery (setWebhook is only
stored), real file contents, Telegram's auto-detection of URLs/mentions in bot texts, entities
for blockquotes in MarkdownV2, and Telegram's own flood limits unless
:meth:`FakeTelegram.flood_limit` is set. Error descriptions are Telegram's for the common cases;
rarer ones are plausible, not verbatim.
"""

from fakebotapi.builders import (
    AutoMessageId,
    button_texts,
    callback_update,
    command_entities,
    edited_message_update,
    group_chat_dict,
    inline_callback_data,
    message_dict,
    message_update,
    my_chat_member_update,
    new_file_ids,
    photo_sizes,
    private_chat_dict,
    update_type,
    user_dict,
)
from fakebotapi.calls import ApiCall
from fakebotapi.entities import parse_entities, utf16_len
from fakebotapi.errors import NOT_MODIFIED, ApiError
from fakebotapi.fake import FakeTelegram
from fakebotapi.faults import FaultRule
from fakebotapi.methods import EDIT_METHODS, SEND_METHODS, canonical_method
from fakebotapi.methods.chats import CHAT_ACTIONS
from fakebotapi.params import JSON, UploadedFile, jsonable
from fakebotapi.request import FakeRequest
from fakebotapi.updates import DEFAULT_ALLOWED

__all__ = [
    "CHAT_ACTIONS",
    "DEFAULT_ALLOWED",
    "EDIT_METHODS",
    "JSON",
    "NOT_MODIFIED",
    "SEND_METHODS",
    "ApiCall",
    "ApiError",
    "AutoMessageId",
    "FakeRequest",
    "FakeTelegram",
    "FaultRule",
    "UploadedFile",
    "button_texts",
    "callback_update",
    "canonical_method",
    "command_entities",
    "edited_message_update",
    "group_chat_dict",
    "inline_callback_data",
    "jsonable",
    "message_dict",
    "message_update",
    "my_chat_member_update",
    "new_file_ids",
    "parse_entities",
    "photo_sizes",
    "private_chat_dict",
    "update_type",
    "user_dict",
    "utf16_len",
]
