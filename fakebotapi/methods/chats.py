"""The bot itself and its chats: ``getMe``, ``getChat``, ``sendChatAction``, ``logOut`` and
``close``."""

from __future__ import annotations

from typing import Any

from fakebotapi.errors import bad_request
from fakebotapi.params import JSON
from fakebotapi.state import BotState

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


def get_me(state: BotState, params: dict[str, Any]) -> JSON:
    return {
        **state.bot_user,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def log_out(state: BotState, params: dict[str, Any]) -> bool:
    return True


def close(state: BotState, params: dict[str, Any]) -> bool:
    return True


def get_chat(state: BotState, params: dict[str, Any]) -> JSON:
    chat = state.chat(params, sending=False)
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


def send_chat_action(state: BotState, params: dict[str, Any]) -> bool:
    state.chat(params)
    if params.get("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


METHODS = {
    "getMe": get_me,
    "logOut": log_out,
    "close": close,
    "getChat": get_chat,
    "sendChatAction": send_chat_action,
}
