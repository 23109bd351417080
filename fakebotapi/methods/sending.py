"""Sending messages: text and caption limits, ``parse_mode``, keyboards, replies, and the
full Message echoed back; ``sendMessage``, ``sendLocation``, ``sendVenue``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fakebotapi.entities import parse_entities, utf16_len
from fakebotapi.errors import bad_request
from fakebotapi.params import JSON, as_bool, as_float, as_int, as_json
from fakebotapi.state import BotState

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes


def text_content(params: Mapping[str, Any], key: str, *, limit: int, required: bool) -> JSON:
    """``text`` or ``caption`` (``key``) with its entities, after ``parse_mode``."""
    raw = params.get(key)
    if raw is None and not required:
        return {}
    entities_key = "entities" if key == "text" else "caption_entities"
    text, entities = parse_entities(str(raw or ""), params.get("parse_mode"))
    explicit = as_json(params.get(entities_key))
    entities = list(explicit) if explicit else entities
    if not text.strip():
        if required:
            raise bad_request("message text is empty")
        return {}
    if utf16_len(text) > limit:
        raise bad_request("message is too long" if key == "text" else "message caption is too long")
    content: JSON = {key: text}
    if entities:
        content[entities_key] = entities
    return content


def markup(params: Mapping[str, Any]) -> JSON | None:
    """The ``reply_markup`` parameter, checked as Telegram checks inline keyboards."""
    found = as_json(params.get("reply_markup"))
    if found is None:
        return None
    if not isinstance(found, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in found.get("inline_keyboard", []):
        for button in row:
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")
            if len(str(button.get("callback_data", "")).encode()) > CALLBACK_DATA_LIMIT:
                raise bad_request("BUTTON_DATA_INVALID")
    return found


def apply_markup(state: BotState, msg: JSON, new_markup: JSON | None) -> None:
    """Attach ``new_markup`` to ``msg``: an inline keyboard is part of the Message; a reply
    keyboard (or its removal) is not echoed but changes what the chat shows."""
    key = (int(msg["chat"]["id"]), int(msg["message_id"]))
    msg.pop("reply_markup", None)
    state.extra_markups.pop(key, None)
    if new_markup is None:
        return
    if "inline_keyboard" in new_markup:
        msg["reply_markup"] = {"inline_keyboard": new_markup["inline_keyboard"]}
        return
    state.extra_markups[key] = new_markup
    if "keyboard" in new_markup:
        state.reply_keyboards[key[0]] = new_markup
    elif new_markup.get("remove_keyboard"):
        state.reply_keyboards.pop(key[0], None)


def _reply_to(state: BotState, chat_id: int, params: Mapping[str, Any]) -> JSON:
    reply = as_json(params.get("reply_parameters")) or {}
    if "reply_to_message_id" in params:
        reply = {
            "message_id": params["reply_to_message_id"],
            "allow_sending_without_reply": params.get("allow_sending_without_reply"),
        }
    if not reply:
        return {}
    target_chat = int(reply.get("chat_id") or chat_id)
    original = state.messages.get((target_chat, as_int(reply["message_id"], "message_id")))
    if original is None:
        if as_bool(reply.get("allow_sending_without_reply")):
            return {}
        raise bad_request("message to be replied not found")
    return {"reply_to_message": {k: v for k, v in original.items() if k != "reply_to_message"}}


def send(state: BotState, params: Mapping[str, Any], content: Mapping[str, Any]) -> JSON:
    """Store a new message of the bot with ``content`` in the chat; returns the Message."""
    chat = state.chat(params)
    chat_id = int(chat["id"])
    reply = _reply_to(state, chat_id, params)
    new_markup = markup(params)
    msg: JSON = {
        "message_id": state.next_message_id(chat_id),
        "from": dict(state.bot_user),
        "chat": dict(chat),
        "date": int(time.time()),
        **reply,
        **content,
    }
    apply_markup(state, msg, new_markup)
    state.messages[(chat_id, msg["message_id"])] = msg
    return dict(msg)


def send_message(state: BotState, params: dict[str, Any]) -> JSON:
    state.chat(params)
    return send(state, params, text_content(params, "text", limit=TEXT_LIMIT, required=True))


def _location(params: Mapping[str, Any]) -> JSON:
    latitude = as_float(params.get("latitude"), "latitude")
    longitude = as_float(params.get("longitude"), "longitude")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise bad_request("wrong latitude/longitude specified")
    location: JSON = {"latitude": latitude, "longitude": longitude}
    if params.get("live_period"):
        location["live_period"] = as_int(params["live_period"], "live_period")
    return location


def send_location(state: BotState, params: dict[str, Any]) -> JSON:
    state.chat(params)
    return send(state, params, {"location": _location(params)})


def send_venue(state: BotState, params: dict[str, Any]) -> JSON:
    state.chat(params)
    location = _location(params)
    title, address = params.get("title"), params.get("address")
    if not title or not address:
        raise bad_request("venue title and address must be non-empty")
    venue = {"location": location, "title": str(title), "address": str(address)}
    return send(state, params, {"venue": venue, "location": location})


METHODS = {
    "sendMessage": send_message,
    "sendLocation": send_location,
    "sendVenue": send_venue,
}
