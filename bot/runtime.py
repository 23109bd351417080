"""What a handler can reach: the per-update unit of work, and the application's runtime.

The inbox worker opens one database session per update and publishes it, with the account
and the translator, through a context variable; :class:`HCContext` (the ``context`` every
handler receives) reads it. The worker commits the session, together with the update's
"done" mark, after the last handler; handlers never commit.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import Application, CallbackContext, ExtBot
from telegram.request import BaseRequest

from bot.i18n import Catalogs, Translator
from bot.menus import Command
from config.settings import Settings
from models.accounts import Account
from models.base import Clock
from models.base import clock as default_clock
from models.conversation import Conversation


@dataclass
class Runtime:
    """Long-lived things, one per application, kept in ``application.bot_data["runtime"]``."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    catalogs: Catalogs
    clock: Clock = default_clock
    worker_id: str = "worker"
    extras: dict[str, Any] = field(default_factory=dict)
    # Each feature's commands, in the order of ``bot.app.FEATURES``: /help and the menus.
    commands: list[list[Command]] = field(default_factory=list)
    # The request object PTB uses for ``getUpdates`` (the fetch loop calls it directly).
    updates_request: BaseRequest | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The engine behind the sessions: its URL names the database, and disposing it
        closes every connection (on SQLite the last one folds the write-ahead log)."""
        engine: AsyncEngine = self.sessionmaker.kw["bind"]
        return engine


@dataclass
class UpdateScope:
    """The unit of work of one update."""

    session: AsyncSession
    update_id: int
    account: Account | None = None
    translator: Translator | None = None
    flow: str | None = None
    subject_type: str | None = None
    subject_id: int | None = None
    error: BaseException | None = None
    incident: str | None = None
    first_contact: bool = False
    # The sender had been unreachable since then (their flag cleared by this very update).
    was_unreachable_since: datetime | None = None
    # The button press of this update, and the answer a handler chose for it (sent once,
    # after the commit: see ``bot.inbox``).
    callback_query_id: str | None = None
    callback_answer: tuple[str | None, bool] | None = None
    # What the sender is in the middle of, read with the account (group -10); every filter,
    # the draft gate and the steps read it here.
    conversation: Conversation = field(default_factory=Conversation)
    outbound: list[dict[str, Any]] = field(default_factory=list)
    # Outbox rows this handling queued (its replies), sent once it has committed.
    replies: list[Any] = field(default_factory=list)

    def concerns(self, subject_type: str, subject_id: int) -> None:
        """Link this exchange (in and out) to the case or record it is about."""
        self.subject_type = subject_type
        self.subject_id = subject_id


current_scope: ContextVar[UpdateScope | None] = ContextVar("current_scope", default=None)
# Outside an update (the outbox dispatcher), outbound log rows are collected here instead.
outbound_sink: ContextVar[list[dict[str, Any]] | None] = ContextVar("outbound_sink", default=None)


class HCContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's context plus the Help Center's unit of work."""

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.application.bot_data["runtime"]
        return runtime

    @property
    def scope(self) -> UpdateScope:
        scope = current_scope.get()
        if scope is None:
            raise RuntimeError("no update scope: handlers run only from the inbox worker")
        return scope

    @property
    def session(self) -> AsyncSession:
        return self.scope.session

    @property
    def account(self) -> Account:
        account = self.scope.account
        if account is None:
            raise RuntimeError("this update has no sender")
        return account

    @property
    def conversation(self) -> Conversation:
        return self.scope.conversation

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def _(self) -> Translator:  # the conventional gettext name
        scope = current_scope.get()
        if scope is not None and scope.translator is not None:
            return scope.translator
        return self.runtime.catalogs.translator(self.runtime.catalogs.default_language)

    def translator_for(self, account: Account) -> Translator:
        """The translator for another person (an operator being alerted, a reporter)."""
        catalogs = self.runtime.catalogs
        return catalogs.translator(catalogs.pick(account.language, None))


def runtime_of(application: Application[Any, Any, Any, Any, Any, Any]) -> Runtime:
    runtime: Runtime = application.bot_data["runtime"]
    return runtime
