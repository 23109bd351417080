"""Welcome, help, language choice and invites: the flows every role shares."""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.i18n import N_, Translator, language_name, role_in
from bot.menus import commands_for, set_chat_menu
from bot.runtime import HCContext
from handlers import needs
from handlers.bad_input import stale_button
from handlers.common import (
    Command,
    acknowledge,
    drop_buttons,
    edit_text,
    handles,
    reply,
)
from models.roles import INVITABLE, Permission, Role
from models.team import InviteError, create_invite, redeem_invite

COMMANDS = [
    Command("start", N_("Start and show what I can do")),
    Command("help", N_("What I can do for you")),
    Command("language", N_("Change language")),
    Command("invite", N_("Invite a team member (give a role)"), Permission.INVITE),
]

LANGUAGE_PREFIX = "lang:"
INVITE_PREFIX = "inv:"
# What the needs buttons already offer: not repeated as commands to the public.
BUTTONED = frozenset({"start", "help", "services", "tonight"})


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
    application.add_handler(CommandHandler("language", language_menu))
    application.add_handler(CallbackQueryHandler(choose_language, pattern=f"^{LANGUAGE_PREFIX}"))
    application.add_handler(CommandHandler("invite", invite))
    application.add_handler(CallbackQueryHandler(invite_button, pattern=f"^{INVITE_PREFIX}"))


def role_name(role: Role, _: Translator) -> str:
    return role_in(role.value, _)


def help_text(context: HCContext) -> str:
    """The public get a sentence and the needs buttons; the team their role's commands."""
    _ = context._
    commands = commands_for(context.account.role, context.runtime.commands, context.settings)
    listed = [f"/{c.name} — {_(c.description)}" for c in commands]
    if context.account.role is Role.PUBLIC:  # the public are not labelled: buttons, not commands
        more = [line for c, line in zip(commands, listed, strict=True) if c.name not in BUTTONED]
        return needs.public_help_text(context, more)
    role = role_name(context.account.role, _)
    lines = [_("You are registered as: {role}.").format(role=role), ""]
    lines.append(_("What you can do:"))
    lines += listed
    return "\n".join(lines)


@handles("start")
async def start(update: Update, context: HCContext) -> None:
    _ = context._
    if context.args:
        await _redeem(update, context, context.args[0])
        return
    welcome = _(
        "Hello! This is the Help Center at the railway station. I can tell you where "
        "to sleep, eat, wash and get help nearby, and I can put you in touch with our team."
    )
    await reply(
        update,
        context,
        welcome + "\n\n" + help_text(context),
        reply_markup=needs.needs_keyboard(context),
    )


@handles("help")
async def help_command(update: Update, context: HCContext) -> None:
    await reply(update, context, help_text(context), reply_markup=needs.needs_keyboard(context))


async def _redeem(update: Update, context: HCContext, code: str) -> None:
    _ = context._
    outcome = await redeem_invite(context.session, code, context.account)
    if isinstance(outcome, InviteError):
        messages = {
            InviteError.UNKNOWN: _("This invite link is not valid. Please ask for a new one."),
            InviteError.EXPIRED: _("This invite link has expired. Please ask for a new one."),
            InviteError.USED: _(
                "This invite link has already been used. Please ask for a new one."
            ),
            InviteError.REVOKED: _(
                "This invite link is no longer valid. Please ask for a new one."
            ),
            InviteError.NOT_HIGHER: _(
                "You are already registered as {role}: an invite never lowers or changes a "
                "role like yours, so this one was not used. It still works for the person it "
                "was meant for."
            ).format(role=role_name(context.account.role, _)),
        }
        await reply(update, context, messages.get(outcome, messages[InviteError.UNKNOWN]))
        return
    context.scope.concerns("invite", outcome.id)
    await refresh_menu(context)
    await reply(update, context, _("Welcome to the team!") + "\n\n" + help_text(context))


async def refresh_menu(context: HCContext) -> None:
    account = context.account
    await set_chat_menu(
        context.bot,
        account.telegram_id,
        account.role,
        context._,
        context.runtime.commands,
        context.settings,
    )


@handles("language")
async def language_menu(update: Update, context: HCContext) -> None:
    _ = context._
    buttons = [
        [InlineKeyboardButton(language_name(code), callback_data=f"{LANGUAGE_PREFIX}{code}")]
        for code in context.runtime.catalogs.languages
    ]
    await reply(
        update, context, _("Choose your language:"), reply_markup=InlineKeyboardMarkup(buttons)
    )


@handles("language")
async def choose_language(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    code = query.data.removeprefix(LANGUAGE_PREFIX)
    catalogs = context.runtime.catalogs
    if code not in catalogs.languages:
        await stale_button(update, context, answer=True)
        return
    context.account.language = code
    context.scope.translator = catalogs.translator(code)
    await refresh_menu(context)
    await acknowledge(update, context)
    await edit_text(
        update, context._("Language set: {language}.").format(language=language_name(code))
    )


@handles("invite", Permission.INVITE, private_only=True)
async def invite(update: Update, context: HCContext) -> None:
    """``/invite``: buttons for the roles this person may give; ``/invite operator`` at once."""
    _ = context._
    role = _parse_role(context.args)
    if role is None:
        text = _("Which role should the invite give? Only the roles you may give are shown.")
        await reply(update, context, text, reply_markup=invitable_buttons(context))
        return
    await _send_invite(update, context, role)


@handles("invite", Permission.INVITE, private_only=True)
async def invite_button(update: Update, context: HCContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    role = _parse_role([query.data.removeprefix(INVITE_PREFIX)])
    await acknowledge(update, context)
    if role is None:
        return
    await drop_buttons(update)
    await _send_invite(update, context, role)


def invitable_buttons(context: HCContext) -> InlineKeyboardMarkup:
    """One button per role this person may give (``models.roles.INVITABLE``), in rank order."""
    _ = context._
    roles = [r for r in Role if r in INVITABLE.get(context.account.role, frozenset())]
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(role_name(r, _), callback_data=f"{INVITE_PREFIX}{r.value}")]
            for r in roles
        ]
    )


async def _send_invite(update: Update, context: HCContext, role: Role) -> None:
    _ = context._
    try:
        created = await create_invite(context.session, context.account, role)
    except PermissionError:
        text = _("You cannot give the role {role}. These are the roles you may give:").format(
            role=role_name(role, _)
        )
        await reply(update, context, text, reply_markup=invitable_buttons(context))
        return
    context.scope.concerns("invite", created.id)
    link = f"https://t.me/{context.bot.username}?start={created.code}"
    await reply(
        update,
        context,
        _("Invite for the role {role}. It works once and expires in 48 hours:\n{link}").format(
            role=role_name(role, _), link=link
        ),
    )


def _parse_role(args: list[str] | None) -> Role | None:
    if not args:
        return None
    try:
        return Role(args[0].strip().lower())
    except ValueError:
        return None
