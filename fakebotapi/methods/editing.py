"""Editing and deleting the bot's messages, with Telegram's "message is not modified" when
an edit changes neither the content nor the inline keyboard."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fakebotapi.errors import NOT_MODIFIED, bad_request
from fakebotapi.methods.sending import CAPTION_LIMIT, TEXT_LIMIT, apply_markup, markup, text_content
from fakebotapi.params import JSON, as_int
from fakebotapi.state import BotState


def _editable(state: BotState, params: Mapping[str, Any]) -> JSON:
    if params.get("inline_message_id"):
        raise bad_request("inline messages are not supported by the fake")
    chat = state.chat(params)
    key = (int(chat["id"]), as_int(params.get("message_id"), "message_id"))
    msg = state.messages.get(key)
    if msg is None:
        raise bad_request("message to edit not found")
    if msg["from"]["id"] != state.bot_user["id"]:
        raise bad_request("message can't be edited")
    return msg


def _content_keys(msg: Mapping[str, Any]) -> tuple[str, str]:
    return ("text", "entities") if "text" in msg else ("caption", "caption_entities")


def _finish_edit(
    state: BotState, msg: JSON, content: Mapping[str, Any], new_markup: JSON | None
) -> JSON:
    keys = _content_keys(msg)
    new = {k: content.get(k) for k in keys}
    inline = (
        {"inline_keyboard": new_markup["inline_keyboard"]}
        if new_markup and ("inline_keyboard" in new_markup)
        else None
    )
    if ({k: msg.get(k) for k in keys}, msg.get("reply_markup")) == (new, inline):
        raise bad_request(NOT_MODIFIED)
    for key in keys:
        msg.pop(key, None)
    msg.update({k: v for k, v in new.items() if v is not None})
    apply_markup(state, msg, new_markup)
    msg["edit_date"] = int(time.time())
    return dict(msg)


def edit_message_text(state: BotState, params: dict[str, Any]) -> JSON:
    msg = _editable(state, params)
    content = text_content(params, "text", limit=TEXT_LIMIT, required=True)
    if "text" not in msg:
        raise bad_request("there is no text in the message to edit")
    return _finish_edit(state, msg, content, markup(params))


def edit_message_caption(state: BotState, params: dict[str, Any]) -> JSON:
    msg = _editable(state, params)
    if "text" in msg:
        raise bad_request("there is no caption in the message to edit")
    content = text_content(params, "caption", limit=CAPTION_LIMIT, required=False)
    return _finish_edit(state, msg, content, markup(params))


def edit_message_reply_markup(state: BotState, params: dict[str, Any]) -> JSON:
    msg = _editable(state, params)
    return _finish_edit(state, msg, msg, markup(params))


def delete_message(state: BotState, params: dict[str, Any]) -> bool:
    chat = state.chat(params, sending=False)
    key = (int(chat["id"]), as_int(params.get("message_id"), "message_id"))
    if state.messages.pop(key, None) is None:
        raise bad_request("message to delete not found")
    state.extra_markups.pop(key, None)
    return True


METHODS = {
    "editMessageText": edit_message_text,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "editMessageCaption": edit_message_caption,
    "deleteMessage": delete_message,
}
