"""Command menus per scope and language: ``setMyCommands``, ``getMyCommands``,
``deleteMyCommands``, and the menu a chat sees (as Telegram clients resolve it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fakebotapi.errors import bad_request
from fakebotapi.params import JSON, as_int, as_json
from fakebotapi.state import BotState

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


def _scope_key(scope: Mapping[str, Any] | None) -> tuple[Any, ...]:
    if not scope:
        return ("default",)
    kind = str(scope.get("type", "default"))
    if kind in ("chat", "chat_administrators"):
        return (kind, as_int(scope.get("chat_id"), "chat_id"))
    if kind == "chat_member":
        return (
            kind,
            as_int(scope.get("chat_id"), "chat_id"),
            as_int(scope.get("user_id"), "user_id"),
        )
    return (kind,)


def _menu_key(state: BotState, params: Mapping[str, Any]) -> tuple[tuple[Any, ...], str]:
    scope = _scope_key(as_json(params.get("scope")))
    if len(scope) > 1 and int(scope[1]) not in state.chats:
        raise bad_request("chat not found")
    return scope, str(params.get("language_code") or "")


def set_my_commands(state: BotState, params: dict[str, Any]) -> bool:
    commands = as_json(params.get("commands")) or []
    for cmd in commands:
        if not _COMMAND_RE.fullmatch(str(cmd.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(cmd.get("description", "")).strip()) <= 256:
            raise bad_request("command description is empty")
    key = _menu_key(state, params)
    if commands:
        state.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
    else:
        state.commands.pop(key, None)
    return True


def get_my_commands(state: BotState, params: dict[str, Any]) -> list[JSON]:
    return list(state.commands.get(_menu_key(state, params), []))


def delete_my_commands(state: BotState, params: dict[str, Any]) -> bool:
    state.commands.pop(_menu_key(state, params), None)
    return True


def menu_of(state: BotState, chat_id: int, language_code: str | None = None) -> list[JSON]:
    """The command menu a chat sees, resolving scope (chat > all_*_chats > default)
    and language (exact code, then no code) like Telegram clients do."""
    chat = state.chats.get(chat_id, {"type": "private" if chat_id > 0 else "group"})
    broad = "all_private_chats" if chat["type"] == "private" else "all_group_chats"
    for scope in (("chat", chat_id), (broad,), ("default",)):
        for lang in ([language_code] if language_code else []) + [""]:
            if (scope, lang) in state.commands:
                return list(state.commands[(scope, lang)])
    return []


METHODS = {
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
}
