"""The command menu each person sees, fitted to their role and language."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.i18n import Catalogs, Translator
from models.roles import Permission, Role, can


@dataclass(frozen=True)
class Command:
    """A command for the menu: shown to the roles that have ``permission``."""

    name: str
    description: str  # an N_() marked English source string
    permission: Permission | None = None


def commands_for(
    role: Role, features: Iterable[Iterable[Command]], settings: Any = None
) -> list[Command]:
    """The commands ``role`` may use, in feature order; ``settings`` switches on the grants
    that depend on configuration (e.g. public reports, see ``models.roles.SETTING_GRANTS``)."""
    seen: set[str] = set()
    chosen = []
    for commands in features:
        for command in commands:
            allowed = command.permission is None or can(role, command.permission, settings)
            if allowed and command.name not in seen:
                seen.add(command.name)
                chosen.append(command)
    return chosen


def bot_commands(commands: list[Command], translator: Translator) -> list[BotCommand]:
    return [BotCommand(c.name, translator(c.description)[:256]) for c in commands]


async def set_default_menus(
    bot: Bot, catalogs: Catalogs, features: list[list[Command]], settings: Any = None
) -> None:
    """The public menu, once per language (Telegram picks it by the app's language)."""
    public = commands_for(Role.PUBLIC, features, settings)
    default = catalogs.translator(catalogs.default_language)
    await bot.set_my_commands(bot_commands(public, default), scope=BotCommandScopeDefault())
    for language in catalogs.languages:
        translator = catalogs.translator(language)
        await bot.set_my_commands(
            bot_commands(public, translator), scope=BotCommandScopeDefault(), language_code=language
        )


def chat_menu_params(
    chat_id: int,
    role: Role,
    translator: Translator,
    features: list[list[Command]],
    settings: Any = None,
) -> dict[str, object]:
    """``setMyCommands`` parameters for one chat, JSON-ready (for the outbox)."""
    commands = bot_commands(commands_for(role, features, settings), translator)
    return {
        "commands": [c.to_dict() for c in commands],
        "scope": BotCommandScopeChat(chat_id).to_dict(),
    }


async def set_chat_menu(
    bot: Bot,
    chat_id: int,
    role: Role,
    translator: Translator,
    features: list[list[Command]],
    settings: Any = None,
) -> None:
    """This person's menu: their role's commands in their chosen language."""
    commands = bot_commands(commands_for(role, features, settings), translator)
    await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))
