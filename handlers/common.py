"""What every handler module shares: the ``handles`` decorator (flow + role check) and menus.

Role checks are decided in :mod:`models.roles`; this decorator is where handlers ask. A
denied person gets a polite answer in their language and the denial is written to the audit
log, never a silent drop. ``private_only`` keeps privileged answers (people, exports,
statistics, invite links, one's own data) out of groups: typed in a group, the command gets
a short "write to me privately" with a link to the bot, and nothing else happens.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram import Chat, Update

from bot.i18n import ROLE_NAMES, Translator
from bot.menus import Command as Command  # each feature declares its menu with it
from bot.runtime import HCContext
from models.accounts import audit
from models.roles import GRANTS, RANK, Permission, Role, can, inviters_of, raises

log = logging.getLogger(__name__)

Callback = Callable[[Update, HCContext], Awaitable[Any]]
F = TypeVar("F", bound=Callback)


def handles(
    flow: str,
    permission: Permission | None = None,
    *,
    private_only: bool = False,
    refusal: Callable[[HCContext], Awaitable[str]] | None = None,
) -> Callable[[F], F]:
    """Name the flow an update belongs to and, if given, require a permission (with the
    grants settings switch on); ``private_only``: answered only in a private chat;
    ``refusal``: what someone without the permission is told instead of the usual words."""

    def decorate(callback: F) -> F:
        @functools.wraps(callback)
        async def wrapper(update: Update, context: HCContext) -> Any:
            scope = context.scope
            scope.flow = flow
            if permission is not None and not can(
                context.account.role, permission, context.settings
            ):
                text = await refusal(context) if refusal else None
                await deny(update, context, permission, text)
                return None
            if private_only and not in_private_chat(update):
                await ask_to_write_privately(update, context)
                return None
            return await callback(update, context)

        return wrapper  # type: ignore[return-value]

    return decorate


def in_private_chat(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == Chat.PRIVATE


async def ask_to_write_privately(update: Update, context: HCContext) -> None:
    """In a group: say where to ask instead, with a link that opens the private chat."""
    scope = context.scope
    scope.flow = f"private_only:{scope.flow}"
    _ = context._
    text = _("I answer this only in a private chat. Write to me privately: {link}").format(
        link=f"https://t.me/{context.bot.username}"
    )
    await reply(update, context, text)


async def deny(
    update: Update, context: HCContext, permission: Permission, text: str | None = None
) -> None:
    scope = context.scope
    scope.flow = f"denied:{scope.flow or permission.value}"
    audit(context.session, context.account, "denied", detail=permission.value)
    log.info("denied %s to role %s", permission.value, context.account.role.value)
    await reply(update, context, text or refusal_text(context._, context.account.role, permission))


def refusal_text(_: Translator, role: Role, permission: Permission) -> str:
    """A refusal that is true for the person's role: which roles have this, and whom to ask.

    Derived from ``GRANTS`` and ``INVITABLE``: the people who could give a role that has the
    permission (a coordinator or an administrator), or, when no role above theirs has it
    (an administrator does not edit services, merge people or export), that it is kept apart.
    """
    if role is Role.PUBLIC:
        return _(
            "Sorry, this is reserved for Help Center staff. If you think you should have "
            "access, ask a coordinator for an invite."
        )
    holders = sorted(GRANTS[permission], key=lambda r: RANK[r])
    text = _("Sorry, this is reserved for: {roles}.").format(
        roles=", ".join(_(ROLE_NAMES[r]) for r in holders)
    )
    mine = _(ROLE_NAMES[role])
    givers = {g for r in holders if raises(role, r) for g in inviters_of(r)}
    if Role.COORDINATOR in givers:
        step = _("You are registered as {role}: if your work needs it, ask a coordinator.")
    elif givers:
        step = _("You are registered as {role}: if your work needs it, ask an administrator.")
    else:
        step = _("You are registered as {role}: this is kept apart from your role on purpose.")
    return text + " " + step.format(role=mine)


async def acknowledge(
    update: Update, context: HCContext, text: str | None = None, *, show_alert: bool = False
) -> None:
    """Choose the answer to a button press (a short text, or none: the spinner just stops).

    The answer is sent once, by the inbox worker, after the handling has committed (or failed):
    see ``bot.inbox.InboxWorker._answer_button``. The first choice of a handling stands.
    """
    scope = context.scope
    if update.callback_query is not None and scope.callback_answer is None:
        scope.callback_answer = (text, show_alert)


async def edit_text(update: Update, text: str, **kwargs: Any) -> None:
    """Edit the message of the pressed button. Queued in the outbox like every message; the
    dispatcher takes Telegram's "message is not modified" (a double tap) as done."""
    query = update.callback_query
    assert query is not None
    await query.edit_message_text(text, **kwargs)


async def drop_buttons(update: Update) -> None:
    """Remove the buttons of the pressed button's message (already gone: done, as above)."""
    query = update.callback_query
    assert query is not None
    await query.edit_message_reply_markup(reply_markup=None)


async def reply(update: Update, context: HCContext, text: str, **kwargs: Any) -> None:
    """Answer in the chat the update came from (a message, or a button's message)."""
    await acknowledge(update, context)
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_message(chat.id, text, **kwargs)
