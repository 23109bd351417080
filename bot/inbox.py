"""Updates in: the fetch loop that stores before it confirms, and the workers that handle.

PTB's ``Updater`` confirms a batch to Telegram as soon as it asks for the next one, before
anything durable holds it. :class:`Poller` replaces it: ``getUpdates`` → insert each update
into the inbox (ignoring ones already there) → commit → only then ask again with the advanced
offset, which is what confirms the batch to Telegram. If the commit fails, the offset is not
advanced and Telegram redelivers.

:class:`InboxWorker` claims stored updates (one at a time per chat, in ``update_id`` order,
different chats in parallel), runs them through ``Application.process_update`` inside one
database session, and commits the handler's changes with the "done" mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import Update
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot import metrics
from bot.exchange_log import add_outbound_rows
from bot.runtime import Runtime, UpdateScope, current_scope
from models.exchange import (
    Exchange,
    claim_updates,
    mark_done,
    record_failure,
    release_claims,
    store_updates,
)

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# Called with (update_id, incident code, payload) when an update is parked after its last try.
ParkedCallback = Callable[[int, str, dict[str, Any]], Awaitable[None]]


class Poller:
    """Long polling that never confirms an update before the inbox holds it."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        runtime: Runtime,
        wake: asyncio.Event,
    ) -> None:
        self.application = application
        self.runtime = runtime
        self.wake = wake
        self.offset: int | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                await self.poll_once()
                backoff = 1.0
            except RetryAfter as exc:
                await self._pause(
                    float(
                        exc.retry_after
                        if isinstance(exc.retry_after, int)
                        else exc.retry_after.total_seconds()
                    )
                )
            except (NetworkError, TelegramError, SQLAlchemyError, OSError) as exc:
                log.warning("fetch loop: %s; retrying in %.0fs", type(exc).__name__, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)

    async def poll_once(self) -> int:
        """One ``getUpdates`` round; returns how many updates Telegram handed over."""
        timeout = self.runtime.settings.poll_timeout_seconds
        received = await self.application.bot.get_updates(
            offset=self.offset,
            timeout=timeout,
            allowed_updates=ALLOWED_UPDATES,
            read_timeout=timeout + 10,
        )
        updates = [update.to_dict() for update in received]
        if not updates:
            return 0
        async with self.runtime.sessionmaker() as session:
            await store_updates(session, updates)
            await session.commit()
        metrics.UPDATES_RECEIVED.inc(len(updates))
        # Only now, with the batch committed, may the next request confirm it.
        self.offset = max(int(u["update_id"]) for u in updates) + 1
        self.wake.set()
        return len(updates)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


class InboxWorker:
    """Handles stored updates: per chat in order, across chats in parallel."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        runtime: Runtime,
        wake: asyncio.Event,
        *,
        skip_locked: bool = False,
        on_parked: ParkedCallback | None = None,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self.application = application
        self.runtime = runtime
        self.wake = wake
        self.skip_locked = skip_locked
        self.on_parked = on_parked
        self.idle_poll_seconds = idle_poll_seconds
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    async def release_own_claims(self) -> None:
        async with self.runtime.sessionmaker() as session:
            await release_claims(session, self.runtime.worker_id)
            await session.commit()

    async def run(self) -> None:
        concurrency = self.runtime.settings.inbox_concurrency
        while not self._stopping.is_set():
            free = concurrency - len(self._in_flight)
            claimed = await self._claim(free) if free > 0 else []
            for row in claimed:
                task = asyncio.create_task(self._handle(row.id, row.update_id or 0))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if not claimed:
                await self._wait_for_work()
        # Graceful shutdown: updates already being handled finish.
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def drain(self, within_seconds: float = 10.0) -> None:
        """Handle everything due now, then return (tests and the console use this)."""
        deadline = time.monotonic() + within_seconds
        concurrency = self.runtime.settings.inbox_concurrency
        while time.monotonic() < deadline:
            claimed = await self._claim(concurrency)
            if not claimed:
                if not self._in_flight:
                    return
                await asyncio.gather(*list(self._in_flight), return_exceptions=True)
                continue
            tasks = [asyncio.create_task(self._handle(r.id, r.update_id or 0)) for r in claimed]
            await asyncio.gather(*tasks)
        raise TimeoutError("inbox not drained in time")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()
        self.wake.set()

    async def _wait_for_work(self) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.idle_poll_seconds)

    async def _claim(self, limit: int) -> list[Exchange]:
        lease = timedelta(seconds=self.runtime.settings.inbox_lease_seconds)
        try:
            async with self.runtime.sessionmaker() as session:
                rows = await claim_updates(
                    session,
                    self.runtime.worker_id,
                    limit=limit,
                    lease=lease,
                    skip_locked=self.skip_locked,
                )
                await session.commit()
                return rows
        except SQLAlchemyError as exc:
            log.warning("inbox claim failed: %s", type(exc).__name__)
            await asyncio.sleep(1.0)
            return []

    async def _handle(self, row_id: int, update_id: int) -> None:
        started = time.perf_counter()
        try:
            await self._handle_in_scope(row_id, update_id)
        except Exception as exc:  # database gone mid-update, or a bug outside handlers
            await self._failed(update_id, exc, incident=None, outbound=[])
        metrics.HANDLING_SECONDS.observe(time.perf_counter() - started)

    async def _handle_in_scope(self, row_id: int, update_id: int) -> None:
        async with self.runtime.sessionmaker() as session:
            row = await session.get(Exchange, row_id)
            if row is None or row.payload is None:
                return
            scope = UpdateScope(session=session, update_id=update_id)
            token = current_scope.set(scope)
            try:
                update = Update.de_json(row.payload, self.application.bot)
                await self.application.process_update(update)
            finally:
                current_scope.reset(token)
            if scope.error is not None:
                await session.rollback()
                await self._failed(update_id, scope.error, scope.incident, scope.outbound)
                return
            self._complete(session, row, scope)
            await session.commit()
        metrics.UPDATES_HANDLED.labels(outcome="done").inc()

    @staticmethod
    def _complete(session: Any, row: Exchange, scope: UpdateScope) -> None:
        account = scope.account
        row.account_id = account.id if account else None
        row.role = account.role.value if account else None
        row.flow = scope.flow
        row.subject_type, row.subject_id = scope.subject_type, scope.subject_id
        mark_done(row)
        add_outbound_rows(
            session,
            scope.outbound,
            account_id=row.account_id,
            role=row.role,
            flow=scope.flow,
            subject_type=scope.subject_type,
            subject_id=scope.subject_id,
            in_reply_to=row.update_id,
        )

    async def _failed(
        self,
        update_id: int,
        error: BaseException,
        incident: str | None,
        outbound: list[dict[str, Any]],
    ) -> None:
        summary = f"{incident or '-'} {type(error).__name__}\n" + "".join(
            traceback.format_tb(error.__traceback__)
        )
        max_attempts = self.runtime.settings.inbox_max_attempts
        try:
            async with self.runtime.sessionmaker() as session:
                parked = await record_failure(
                    session, update_id, summary, max_attempts=max_attempts
                )
                add_outbound_rows(session, outbound, in_reply_to=update_id)
                row_payload = await _payload(session, update_id)
                await session.commit()
        except SQLAlchemyError:
            log.warning("could not record failure of update %s; its lease will expire", update_id)
            return
        metrics.UPDATES_HANDLED.labels(outcome="parked" if parked else "retry").inc()
        if parked and self.on_parked is not None and row_payload is not None:
            await self.on_parked(update_id, incident or "-", row_payload)


async def _payload(session: Any, update_id: int) -> dict[str, Any] | None:
    from sqlalchemy import select

    payload: dict[str, Any] | None = await session.scalar(
        select(Exchange.payload).where(Exchange.update_id == update_id)
    )
    return payload
