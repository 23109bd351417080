"""The application: wiring of handlers in order, and the running bot (fetch, handle, send).

Order matters: group -10 loads the account and language for every update; an edited message
is acknowledged in group -5 and goes no further (no feature acts on an edit); in group 0 the
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
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.dispatcher import Dispatcher
from bot.errors import on_error
from bot.exchange_log import LoggingRequest
from bot.health import refresh_gauges
from bot.i18n import Catalogs
from bot.inbox import InboxWorker, Poller
from bot.menus import Command, set_default_menus
from bot.middleware import ACCOUNT_GROUP, EDITS_GROUP, load_account
from bot.process_lock import Release, try_lock
from bot.ratelimit import MemoryRateLimiter
from bot.runtime import HCContext, Runtime
from bot.startup import CliError
from config.settings import Settings
from handlers import cases, contacts, directory, fallback, start
from models.base import Clock
from models.base import clock as default_clock
from models.db import make_engine, make_sessionmaker
from models.exchange import describe_update

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
    updates_request = updates_request or request or HTTPXRequest()
    builder = (
        ApplicationBuilder()
        .token(settings.token.get_secret_value())
        .base_url(settings.api_base_url)
        .request(LoggingRequest(transport, sessionmaker))
        .get_updates_request(updates_request)
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
        commands=features_commands(),
        updates_request=updates_request,
    )
    application.add_handler(TypeHandler(Update, load_account), group=ACCOUNT_GROUP)
    application.add_handler(
        MessageHandler(filters.UpdateType.EDITED, fallback.edited), group=EDITS_GROUP
    )
    for module in FEATURES:
        module.register(application)
    application.add_error_handler(on_error)
    return application


SENDER_REFUSAL = (
    "another helpcenter process is sending for this bot on this database (a second "
    "`helpcenter run`, or webhook workers beside long polling): stop it first, or each would "
    "send up to Telegram's limit"
)


class AnotherSenderRuns(CliError):
    """Another process sends for this database, and the two cannot share Telegram's limits."""


class HelpCenterBot:
    """A running bot: the application (with its job queue), the inbox worker, the outbox
    dispatcher, a health refresher, and (in polling mode) the fetch loop.

    ``skip_locked`` (default: on for PostgreSQL) makes the worker and the dispatcher claim rows
    with ``FOR UPDATE SKIP LOCKED``, which is what lets several processes share one database.
    ``sole_sender``: no other process sends for this bot (long polling), so Telegram's limits
    are kept in memory rather than in a store the workers share (``bot.ratelimit``).
    """

    def __init__(
        self,
        application: HelpCenterApp,
        *,
        skip_locked: bool | None = None,
        sole_sender: bool = False,
    ) -> None:
        self.application = application
        self.runtime: Runtime = application.bot_data["runtime"]
        if skip_locked is None:
            skip_locked = not self.runtime.settings.is_sqlite
        self.wake = asyncio.Event()
        self.dispatcher = Dispatcher(
            application, skip_locked=skip_locked, shared_limits=False if sole_sender else None
        )
        self.runtime.extras["dispatcher"] = self.dispatcher
        self.worker = InboxWorker(
            application,
            self.runtime,
            self.wake,
            skip_locked=skip_locked,
            apology_for=self.apology_for,
            after_commit=self.dispatcher.note_queued,
            send_now=self.dispatcher.send_now,
            send_claimed=self.dispatcher.send_claimed,
        )
        self.poller = Poller(
            application, self.runtime, self.worker.note_stored, claim_in=self.worker.claim_in
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._release_lock: Release | None = None

    async def __aenter__(self) -> HelpCenterBot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start handling: job queue (with ``application.start``), inbox worker, dispatcher.
        Refused (:class:`AnotherSenderRuns`) while another process sends for this database in
        a way this one cannot share (``bot.process_lock``)."""
        self._release_lock = await self._take_sender_lock()
        await self.application.initialize()
        if self.runtime.settings.is_sqlite:
            # SQLite means one process: whatever is "processing" was cut short by a crash of
            # this very bot, so it is handled again now rather than after its lease.
            await self.worker.release_all_claims()
        await self.application.start()
        self._tasks.append(asyncio.create_task(self.worker.run(), name="inbox-worker"))
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="outbox-dispatcher"))
        self._tasks.append(asyncio.create_task(refresh_gauges(self.runtime), name="gauges"))

    async def publish_default_menus(self) -> None:
        """The public command menu in every language (once per start, by one process)."""
        await set_default_menus(
            self.application.bot,
            self.runtime.catalogs,
            self.runtime.commands,
            self.runtime.settings,
        )

    async def start_polling(self) -> None:
        await self.application.bot.delete_webhook()
        self._tasks.append(asyncio.create_task(self.poller.run(), name="fetch-loop"))

    async def stop(self) -> None:
        """Graceful: stop fetching, let in-flight updates finish and send what they committed,
        then stop sending (the rest waits in the outbox for the next start)."""
        self.poller.stop()
        self.worker.stop()
        for task in self._tasks:
            if task.get_name() == "gauges":
                task.cancel()
        await asyncio.gather(
            *(task for task in self._tasks if task.get_name() != "outbox-dispatcher"),
            return_exceptions=True,
        )
        self.dispatcher.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        if self._release_lock is not None:
            await self._release_lock()
            self._release_lock = None

    async def _take_sender_lock(self) -> Release:
        """A bot with its limits in memory sends alone; workers sharing theirs, together."""
        engine = self.runtime.engine
        shared = not isinstance(self.dispatcher.limiter, MemoryRateLimiter)
        url = engine.url.render_as_string(hide_password=False)
        release = await try_lock(url, engine, "sender", shared=shared)
        if release is None:
            raise AnotherSenderRuns(SENDER_REFUSAL)
        return release

    def apology_for(
        self, payload: dict[str, Any], incident: str, language: str | None
    ) -> tuple[int, str] | None:
        """The last try failed: what to tell the person, in their language (enqueued in the
        outbox by the worker in the same transaction that parks the update).

        Read from the plain JSON (``describe_update``), not through PTB: the update being
        parked may be one PTB cannot parse, and this must never raise.
        """
        facts = describe_update(payload)
        if facts.chat_id is None:
            return None
        catalogs = self.runtime.catalogs
        _ = catalogs.translator(catalogs.pick(language, facts.language_code))
        text = _(
            "Sorry, something went wrong on our side and I could not handle your message. "
            "Our team has been notified. Incident code: {code}"
        ).format(code=incident)
        return facts.chat_id, text
