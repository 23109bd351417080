"""The application: wiring of handlers in order, and the running bot (fetch, handle, send).

Order matters: group -1 loads the account and language for every update; in group 0 the
feature modules are registered in ``FEATURES`` order (conversations before plain commands),
and ``handlers.fallback`` is last, so whatever no flow understood gets a polite answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import ModuleType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.request import BaseRequest, HTTPXRequest

from bot.errors import on_error
from bot.exchange_log import LoggingRequest
from bot.i18n import Catalogs
from bot.inbox import InboxWorker, Poller
from bot.menus import set_default_menus
from bot.middleware import ACCOUNT_GROUP, load_account
from bot.runtime import HCContext, Runtime
from config.settings import Settings
from handlers import cases, contacts, directory, fallback, start
from handlers.common import Command
from models.accounts import account_by_telegram_id
from models.base import Clock
from models.base import clock as default_clock
from models.db import make_engine, make_sessionmaker

log = logging.getLogger(__name__)

FEATURES: list[ModuleType] = [start, cases, directory, contacts, fallback]

HelpCenterApp = Application[Any, HCContext, Any, Any, Any, Any]


def features_commands() -> list[list[Command]]:
    return [list(module.COMMANDS) for module in FEATURES]


def build_application(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    request: BaseRequest | None = None,
    updates_request: BaseRequest | None = None,
    clock: Clock = default_clock,
    worker_id: str | None = None,
) -> HelpCenterApp:
    """Build the PTB ``Application`` without PTB's ``Updater`` (see ``bot.inbox``)."""
    if sessionmaker is None:
        sessionmaker = make_sessionmaker(make_engine(settings.database_url))
    transport = request or HTTPXRequest(connection_pool_size=32)
    builder = (
        ApplicationBuilder()
        .token(settings.token.get_secret_value())
        .base_url(settings.api_base_url)
        .request(LoggingRequest(transport, sessionmaker))
        .get_updates_request(updates_request or request or HTTPXRequest())
        .context_types(ContextTypes(context=HCContext))
        .updater(None)
    )
    application: HelpCenterApp = builder.build()
    application.bot_data["runtime"] = Runtime(
        settings=settings,
        sessionmaker=sessionmaker,
        catalogs=Catalogs(settings.default_language),
        clock=clock,
        worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
    )
    application.add_handler(TypeHandler(Update, load_account), group=ACCOUNT_GROUP)
    for module in FEATURES:
        module.register(application)
    application.add_error_handler(on_error)
    return application


class HelpCenterBot:
    """A running bot: the application, its inbox worker, and (in polling mode) the fetch loop."""

    def __init__(self, application: HelpCenterApp, *, skip_locked: bool = False) -> None:
        self.application = application
        self.runtime: Runtime = application.bot_data["runtime"]
        self.wake = asyncio.Event()
        self.worker = InboxWorker(
            application,
            self.runtime,
            self.wake,
            skip_locked=skip_locked,
            on_parked=self.apologise_for_parked,
        )
        self.poller = Poller(application, self.runtime, self.wake)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> HelpCenterBot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()
        self._tasks.append(asyncio.create_task(self.worker.run(), name="inbox-worker"))
        for hook in self.runtime.extras.get("on_start", []):
            await hook(self)

    async def publish_default_menus(self) -> None:
        """The public command menu in every language (once per start, by one process)."""
        await set_default_menus(self.application.bot, self.runtime.catalogs, features_commands())

    async def start_polling(self) -> None:
        await self.application.bot.delete_webhook()
        self._tasks.append(asyncio.create_task(self.poller.run(), name="fetch-loop"))

    async def stop(self) -> None:
        self.poller.stop()
        self.worker.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def _chosen_language(self, telegram_id: int) -> str | None:
        async with self.runtime.sessionmaker() as session:
            account = await account_by_telegram_id(session, telegram_id)
            return account.language if account else None

    async def apologise_for_parked(
        self, update_id: int, incident: str, payload: dict[str, Any]
    ) -> None:
        """The last try failed: tell the person, in their language, with the incident code."""
        update = Update.de_json(payload, self.application.bot)
        chat = update.effective_chat
        if chat is None:
            return
        catalogs = self.runtime.catalogs
        user = update.effective_user
        chosen = await self._chosen_language(user.id) if user else None
        _ = catalogs.translator(catalogs.pick(chosen, user.language_code if user else None))
        text = _(
            "Sorry, something went wrong on our side and I could not handle your message. "
            "Our team has been notified. Incident code: {code}"
        ).format(code=incident)
        try:
            await self.application.bot.send_message(chat.id, text)
        except Exception as exc:  # the apology is best effort; the update stays parked
            log.warning("could not apologise for update %s: %s", update_id, type(exc).__name__)
