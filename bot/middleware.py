"""Group -10: before any feature handler, know who is writing, in which language, and what
they are in the middle of (their conversation, read with the account)."""

from __future__ import annotations

from telegram import Update

from bot.runtime import HCContext
from models.accounts import bot_blocked_or_unblocked, heard_from
from models.roles import Role
from models.senders import load_sender

ACCOUNT_GROUP = -10  # first of all; features may add groups between this and 0
EDITS_GROUP = -5  # an edited message is acknowledged there and handled no further


async def load_account(update: Update, context: HCContext) -> None:
    """Find or create the sender's account and pick their language for this update."""
    scope = context.scope
    if update.callback_query is not None:
        scope.callback_query_id = update.callback_query.id
    user = update.effective_user
    runtime = context.runtime
    if user is None or user.is_bot:
        scope.translator = runtime.catalogs.translator(runtime.catalogs.default_language)
        return
    if update.my_chat_member is not None:
        await chat_member_changed(update, context)
        return
    sender = await load_sender(
        context.session, user.id, admin_ids=frozenset(runtime.settings.admin_ids)
    )
    account, created = sender.account, sender.created
    if update.effective_chat is not None and update.effective_chat.type == "private":
        # Heard from in their own chat: messages reach them there again. (A message in a
        # group says nothing about a private chat they may have blocked.)
        scope.was_unreachable_since = heard_from(account)
    if account.role is not Role.PUBLIC:
        # Staff are told apart by name when they take a case; the public are not named.
        account.display_name = (user.first_name or "")[:64] or None
        account.username = (user.username or "").lower()[:32] or None
    scope.account = account
    language = runtime.catalogs.pick(account.language, user.language_code)
    scope.translator = runtime.catalogs.translator(language)
    scope.first_contact = created
    scope.conversation = sender.conversation


async def chat_member_changed(update: Update, context: HCContext) -> None:
    """The person blocked the bot (``kicked``) or unblocked it (``member``) in their private
    chat. Nothing is sent (a blocked chat cannot receive it) and no account is created."""
    scope = context.scope
    runtime = context.runtime
    scope.translator = runtime.catalogs.translator(runtime.catalogs.default_language)
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    blocked = change.new_chat_member.status == "kicked"
    scope.flow = "blocked" if blocked else "unblocked"
    account = await bot_blocked_or_unblocked(context.session, change.from_user.id, blocked=blocked)
    scope.account = account
