"""Updates in: the fetch loop that stores before it confirms, and the workers that handle.

PTB's ``Updater`` confirms a batch to Telegram as soon as it asks for the next one, before
anything durable holds it. :class:`Poller` replaces it: ``getUpdates`` → insert each update
into the inbox (ignoring ones already there) → commit → only then ask again with the advanced
offset, which is what confirms the batch to Telegram. If the commit fails, the offset is not
advanced and Telegram redelivers.

:class:`InboxWorker` claims stored updates (one at a time per chat, in ``update_id`` order,
different chats in parallel) with their senders, runs each through
``Application.process_update`` in its own database session, and commits the handler's changes
with the "done" mark. A handling that wrote nothing (most of them) has only its done mark and
replies to commit: those go to the group commit (:mod:`bot.group_commit`).

Failures are of two kinds. The update's own (a handler raised): counted, retried with
backoff, parked as failed after ``inbox_max_attempts`` with an apology to the person queued in
the outbox in the same transaction. The infrastructure's (the database or Telegram could not
be reached): not counted, the update is simply retried a few seconds later, so an outage
never parks a person's message.

Replies sent directly by a handler leave before the commit; if the process dies between the
two, the update is handled again at restart and that reply may repeat (at-least-once for
direct replies, exactly-once for the log and every state change). ``Exchange.claims`` counts
how often an update was taken, so such repeats can be traced to interrupted handlings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only
from telegram import Update
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot import metrics
from bot.errors import new_incident_code
from bot.group_commit import GroupCommit, Handed
from bot.runtime import Runtime, UpdateScope, current_scope
from models.accounts import KnownSenders, read_senders
from models.db import before_write, is_database_outage, write_gate, write_gate_lock
from models.exchange import (
    ClaimedUpdate,
    Exchange,
    FinishedUpdate,
    claim_updates,
    describe_update,
    finish_update,
    hold_claim,
    log_outbound_rows,
    record_failure,
    release_claims,
    release_rows,
    retry_later,
    store_updates,
)
from models.outbox import enqueue

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# (payload, incident code, sender's chosen language) of a parked update -> (chat id,
# apology text) to enqueue, or None.
ApologyFor = Callable[[dict[str, Any], str, str | None], tuple[int, str] | None]
# Called after an update's changes are committed (wakes the outbox dispatcher).
AfterCommit = Callable[[], None]
# Sends one committed outbox row now (the apology for a parked update).
SendNow = Callable[[int], Awaitable[None]]
TRANSIENT_RETRY = timedelta(seconds=3)
# Claimed updates held per handling slot (handling + queued): 2 → 4 took the benchmark from
# about 500 to 640 updates/s on SQLite; 8 gave nothing more and doubled the latency.
CLAIM_AHEAD = 4
# On SQLite, a claim with less than this share of its lease left is checked in the database
# before handling; a fresher one is known to be ours (PostgreSQL always checks and locks).
RECHECK_LEASE_SHARE = 0.5
# What ``_handle_in_scope`` returns for a handling handed to the group commit.
HANDED = "handed"
Failure = tuple[BaseException, str | None, list[dict[str, Any]]]


def is_transient(error: BaseException) -> bool:
    """An outage of the database or of Telegram, not a fault of the update itself."""
    if is_database_outage(error):
        return True
    if isinstance(error, DBAPIError | BadRequest):  # PTB makes BadRequest a NetworkError
        return False
    return isinstance(error, NetworkError | RetryAfter)


class UnreadableUpdate(Exception):
    """An update the library cannot parse (e.g. a poll from an older Bot API server, without a
    field PTB 22 requires): handling it again cannot help, so it is parked at its first try."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.incident = new_incident_code()


def read_update(payload: dict[str, Any], bot: Any) -> Update | UnreadableUpdate:
    """The PTB ``Update`` of a stored payload, or why it cannot be read (logged: the incident
    code, the update id and the exception type; never the content)."""
    try:
        return Update.de_json(payload, bot)
    except Exception as exc:
        unreadable = UnreadableUpdate(exc)
        log.error(
            "incident %s: update %s cannot be read (%s)",
            unreadable.incident,
            payload.get("update_id"),
            type(exc).__name__,
        )
        return unreadable


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
        self._fetching: asyncio.Task[list[dict[str, Any]]] | None = None

    def stop(self) -> None:
        """Stop fetching now: a pending long poll is given up rather than waited out."""
        self._stopping.set()
        if self._fetching is not None:
            self._fetching.cancel()

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
        updates = await self._fetch()
        if not updates:
            return 0
        async with write_gate(self.runtime.sessionmaker), self.runtime.sessionmaker() as session:
            await store_updates(session, updates)
            await session.commit()
        metrics.UPDATES_RECEIVED.inc(len(updates))
        # Only now, with the batch committed, may the next request confirm it.
        self.offset = max(int(u["update_id"]) for u in updates) + 1
        self.wake.set()
        return len(updates)

    async def _fetch(self) -> list[dict[str, Any]]:
        """``getUpdates`` that :meth:`stop` can cut short (then: no updates).

        Only the request is cancelled, never the storing: a batch Telegram handed over but
        not stored is not confirmed either (the offset did not move), so Telegram hands it
        over again at the next start.
        """
        if self._stopping.is_set():
            return []
        self._fetching = asyncio.ensure_future(self._get_updates())
        try:
            return await self._fetching
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this round itself is cancelled, not just its request
            return []
        finally:
            self._fetching = None

    async def _get_updates(self) -> list[dict[str, Any]]:
        """``getUpdates`` through the request object PTB uses for it, answer kept as JSON.

        The updates are stored as Telegram sent them: parsing them into PTB objects only to
        serialise them back cost about a seventh of the bot's CPU per update, and they are
        parsed anyway when handled. ``BaseRequest.post`` maps Telegram's errors (409, 429 …)
        to the same exceptions as ``Bot.get_updates``. The parameters go in the query string,
        which the Bot API accepts for every method.
        """
        timeout = self.runtime.settings.poll_timeout_seconds
        request = self.runtime.updates_request
        if request is None:  # built without ``build_application``: PTB's own way
            received = await self.application.bot.get_updates(
                offset=self.offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES
            )
            return [update.to_dict() for update in received]
        query = {"timeout": timeout, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
        if self.offset is not None:
            query["offset"] = self.offset
        url = f"{self.application.bot.base_url}/getUpdates?{urlencode(query)}"
        result = await request.post(url, read_timeout=timeout + 10)
        if not isinstance(result, list):
            return []
        return [
            update
            for update in result
            if isinstance(update, dict) and isinstance(update.get("update_id"), int)
        ]

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
        apology_for: ApologyFor | None = None,
        after_commit: AfterCommit | None = None,
        send_now: SendNow | None = None,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self.send_now = send_now
        self.application = application
        self.runtime = runtime
        self.wake = wake
        self.skip_locked = skip_locked
        self.apology_for = apology_for
        self.after_commit = after_commit
        self.idle_poll_seconds = idle_poll_seconds
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._handling: set[int] = set()  # row ids this process is handling right now
        self._to_release: set[int] = set()  # updates to put back once the database answers
        # Set when a database call failed: no handling starts until the database answers,
        # since a handling with its sender read at the claim could reply and then fail to
        # commit (its reply repeated when it is handled again).
        self._database_away = False
        self._slot_freed = asyncio.Event()
        # Claimed rows waiting for a free slot (each the oldest of its chat, see ``_one_round``).
        self._queued: deque[ClaimedUpdate] = deque()
        self._group = GroupCommit(
            runtime.sessionmaker,
            runtime.worker_id,
            on_committed=self._group_committed,
            on_failure=self._group_failed,
            is_outage=is_transient,
        )

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    async def release_all_claims(self) -> None:
        """Single process only (SQLite): every claim left over is from a crashed run."""
        async with self.runtime.sessionmaker() as session:
            released = await release_claims(session, None)
            await session.commit()
        if released:
            log.info("%d interrupted update(s) will be handled again", released)

    async def release_own_claims(self) -> None:
        async with self.runtime.sessionmaker() as session:
            await release_claims(session, self.runtime.worker_id)
            await session.commit()

    async def run(self) -> None:
        concurrency = self.runtime.settings.inbox_concurrency
        while not self._stopping.is_set():
            try:
                await self._one_round(concurrency)
            except Exception as exc:  # a loop that dies silently would stop all handling
                log.warning("inbox loop: %s; going on", type(exc).__name__)
                await asyncio.sleep(1.0)
        # Graceful shutdown: updates already being handled finish; claimed ones not started
        # go back to the inbox at once rather than after their lease.
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._group.settled()
        await self._release_queued()

    async def _one_round(self, concurrency: int) -> None:
        """Start queued updates in the free slots; claim more when the queue runs short.

        One claim takes up to ``CLAIM_AHEAD × concurrency`` updates (handling and queued): a
        slot that frees finds its next update already claimed, and the claim (a write
        transaction, followed by the batch's sender read) runs once per many updates. Order per chat
        holds: a claimed row is the oldest unfinished of its chat, and the chat's next update
        stays unclaimable until this one is done. The lead is short (a few slots' worth, tens
        of milliseconds against a lease of ``inbox_lease_seconds``); a row whose lease ran out
        while queued is dropped (claimable again by anyone) instead of started.
        """
        if self._database_away and not await self._database_answers():
            return
        if self._to_release:
            await self._release_after_outage()
        free = concurrency - len(self._in_flight)
        claimed: list[ClaimedUpdate] = []
        if free > len(self._queued):
            claimed = await self._claim(
                CLAIM_AHEAD * concurrency - len(self._in_flight) - len(self._queued)
            )
            self._queued.extend(claimed)
        if self._database_away:  # the claim failed: start nothing until the database answers
            return
        started = self._start_queued(free)
        if not claimed and not started:
            await self._wait_for_work()

    def _start_queued(self, free: int) -> int:
        started = 0
        now = self.runtime.clock.now()
        while free > started and self._queued:
            row = self._queued.popleft()
            if row.id in self._handling:  # our own lease ran out while still handling
                continue
            if row.locked_until is not None and row.locked_until <= now:
                continue  # lease ran out while queued: anyone may claim it again
            task = asyncio.create_task(self._handle_claimed(row))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
            started += 1
        return started

    async def _release_queued(self) -> None:
        if not self._queued:
            return
        row_ids = [row.id for row in self._queued]
        self._queued.clear()
        try:
            async with self._writing() as session:
                await release_rows(session, self.runtime.worker_id, row_ids)
                await session.commit()
        except (SQLAlchemyError, OSError):
            log.warning("%d claimed update(s) will wait for their lease", len(row_ids))

    async def drain(self, within_seconds: float = 10.0) -> None:
        """Handle everything due now, then return (tests and the console use this)."""
        deadline = time.monotonic() + within_seconds
        concurrency = self.runtime.settings.inbox_concurrency
        while time.monotonic() < deadline:
            await self._group.settled()  # a chat's next update is claimable once this commits
            claimed = await self._claim(concurrency)
            if not claimed:
                if not self._in_flight:
                    return
                await asyncio.gather(*list(self._in_flight), return_exceptions=True)
                continue
            tasks = [asyncio.create_task(self._handle_claimed(row)) for row in claimed]
            await asyncio.gather(*tasks)
        await self._group.settled()
        raise TimeoutError("inbox not drained in time")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()
        self.wake.set()

    async def _wait_for_work(self) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.idle_poll_seconds)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A session for a write transaction, behind the SQLite write gate."""
        async with write_gate(self.runtime.sessionmaker), self.runtime.sessionmaker() as session:
            yield session

    async def _claim(self, limit: int) -> list[ClaimedUpdate]:
        lease = timedelta(seconds=self.runtime.settings.inbox_lease_seconds)
        try:
            async with self._writing() as session:
                rows = await claim_updates(
                    session,
                    self.runtime.worker_id,
                    limit=limit,
                    lease=lease,
                    skip_locked=self.skip_locked,
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("inbox claim failed: %s", type(exc).__name__)
            self._database_away = True
            await asyncio.sleep(1.0)
            return []
        if rows:
            await self._read_senders(rows)
        return rows

    async def _read_senders(self, rows: list[ClaimedUpdate]) -> None:
        """Who wrote the claimed updates, read for all of them at once: handling an update
        from someone known then needs no read of its own (see ``load_sender``)."""
        user_ids: set[int] = set()
        chat_ids: set[int] = set()
        for row in rows:
            user_id = describe_update(row.payload or {}).user_id
            if user_id is not None:
                user_ids.add(user_id)
            if row.chat_id is not None:
                chat_ids.add(row.chat_id)
        try:
            async with self.runtime.sessionmaker() as session:
                known = await read_senders(session, user_ids, chat_ids)
        except (SQLAlchemyError, OSError):
            return  # each handling reads its own sender
        for row in rows:
            row.known_senders = known

    async def _handle_claimed(self, row: ClaimedUpdate) -> None:
        await self._handle(row.id, row.update_id, row.payload, row.locked_until, row.known_senders)

    async def _handle(
        self,
        row_id: int,
        update_id: int,
        payload: dict[str, Any] | None = None,
        claimed_until: datetime | None = None,
        known: KnownSenders | None = None,
    ) -> None:
        """Handle one claimed update; ``payload`` is the one the claim read (else read again)."""
        started = time.perf_counter()
        self._handling.add(row_id)
        outcome: Failure | str | None = None
        try:
            outcome = await self._handle_in_scope(
                row_id, update_id, payload, claimed_until, started, known
            )
            if isinstance(outcome, tuple):
                await self._failed(update_id, *outcome)
        except Exception as exc:  # database gone mid-update, or a bug outside handlers
            self._notice_outage(exc)
            try:
                await self._failed(update_id, exc, incident=None, outbound=[])
            except Exception:
                self._to_release.add(update_id)
        finally:
            self._handling.discard(row_id)
        if outcome != HANDED:  # a handed one is timed when its group commits
            metrics.HANDLING_SECONDS.observe(time.perf_counter() - started)

    async def _handle_in_scope(
        self,
        row_id: int,
        update_id: int,
        payload: dict[str, Any] | None,
        claimed_until: datetime | None,
        started: float,
        known: KnownSenders | None,
    ) -> Failure | str | None:
        """Handle one claimed update; the failure to record, ``HANDED``, or None.

        The payload comes with the claim (no second read). On PostgreSQL the row is locked
        (``FOR UPDATE``) as still ours for the whole handling, so another worker's claim skips
        it even if this handling outlives its lease; on SQLite (one process) a fresh claim is
        known to be ours and only one near the end of its lease is checked. The handler runs
        in its own session outside the SQLite write gate: a handling that only reads (most of
        them) ends with its session, lock released, and is handed to the group commit, which
        checks the claim again. One that writes takes the gate at its first writing statement
        (see :class:`_WriteWatch`) and commits its changes with its done mark and outbound log
        rows, in one transaction of its own.
        """
        watch = _WriteWatch(write_gate_lock(self.runtime.sessionmaker))
        handed: Handed | None = None
        try:
            async with self.runtime.sessionmaker() as session:
                if self._must_recheck(payload, claimed_until):
                    if not await hold_claim(
                        session, row_id, self.runtime.worker_id, skip_locked=self.skip_locked
                    ):
                        return None
                    payload = payload or await _payload(session, update_id)
                if payload is None:  # erased by /forget before its turn: nothing to act on
                    payload = {"update_id": update_id}
                scope = UpdateScope(session=session, update_id=update_id, known_senders=known)
                await self._run_handlers(scope, payload, watch)
                if scope.error is not None:
                    await session.rollback()
                    return scope.error, scope.incident, scope.outbound
                if not watch.wrote:
                    handed = Handed(_finished(row_id, update_id, scope), started)
                elif not await self._complete(session, row_id, update_id, scope):
                    await session.rollback()  # taken over meanwhile: its new holder will commit
                    return None
                else:
                    await session.commit()
        finally:
            watch.close()
        if handed is not None:  # its session (and on PostgreSQL its row lock) is gone now
            self._group.hand(handed)
            return HANDED
        metrics.UPDATES_HANDLED.labels(outcome="done").inc()
        if self.after_commit is not None:
            self.after_commit()
        return None

    def _must_recheck(self, payload: dict[str, Any] | None, claimed_until: datetime | None) -> bool:
        if payload is None or claimed_until is None or self.skip_locked:
            return True
        lease = self.runtime.settings.inbox_lease_seconds
        left = (claimed_until - self.runtime.clock.now()).total_seconds()
        return left < lease * RECHECK_LEASE_SHARE

    async def _run_handlers(
        self, scope: UpdateScope, payload: dict[str, Any], watch: _WriteWatch
    ) -> None:
        """All handler groups, then the flush of their pending changes, under ``watch``."""
        update = read_update(payload, self.application.bot)
        if isinstance(update, UnreadableUpdate):
            scope.error, scope.incident = update, update.incident
            return
        scope_token = current_scope.set(scope)
        watch_token = before_write.set(watch)
        try:
            await self.application.process_update(update)
            if scope.error is None:
                await scope.session.flush()
        finally:
            before_write.reset(watch_token)
            current_scope.reset(scope_token)

    def _group_committed(self) -> None:
        if self.after_commit is not None:
            self.after_commit()
        self.wake.set()  # the chats of this group have their next update claimable

    async def _group_failed(self, group: list[Handed], error: BaseException) -> None:
        """A group commit failed: each update is retried (or counted) on its own.

        As when an update's own commit fails, the replies of this attempt are not logged: the
        log holds what the committed handling sent, once per update (see the module's note).
        """
        self._notice_outage(error)
        for handed in group:
            try:
                await self._failed(handed.done.update_id, error, None, [])
            except Exception:
                self._to_release.add(handed.done.update_id)

    def _notice_outage(self, error: BaseException) -> None:
        if isinstance(error, SQLAlchemyError | OSError) and not isinstance(error, TelegramError):
            self._database_away = True

    async def _database_answers(self) -> bool:
        try:
            async with self.runtime.sessionmaker() as session:
                await session.execute(select(1))
        except (SQLAlchemyError, OSError):
            await asyncio.sleep(1.0)
            return False
        self._database_away = False
        return True

    async def _complete(
        self, session: Any, row_id: int, update_id: int, scope: UpdateScope
    ) -> bool:
        done = _finished(row_id, update_id, scope)
        if not await finish_update(session, row_id, self.runtime.worker_id, **done.context()):
            return False
        await log_outbound_rows(session, done.outbound, **done.context(), in_reply_to=update_id)
        return True

    async def _failed(
        self,
        update_id: int,
        error: BaseException,
        incident: str | None,
        outbound: list[dict[str, Any]],
    ) -> None:
        if is_transient(error):
            await self._retry_later(update_id, error, outbound)
            return
        cause = f": {error}" if isinstance(error, UnreadableUpdate) else ""  # its cause's type
        summary = f"{incident or '-'} {type(error).__name__}{cause}\n" + "".join(
            traceback.format_tb(error.__traceback__)
        )
        # Retrying an update the library cannot read only blocks its chat: parked at once.
        max_attempts = (
            1 if isinstance(error, UnreadableUpdate) else self.runtime.settings.inbox_max_attempts
        )
        try:
            async with self._writing() as session:
                parked = await record_failure(
                    session, update_id, summary, max_attempts=max_attempts
                )
                await log_outbound_rows(session, outbound, in_reply_to=update_id)
                apology_id = None
                if parked:
                    apology_id = await self._enqueue_apology(session, update_id, incident or "-")
                await session.commit()
        except (SQLAlchemyError, OSError):
            log.warning("could not record failure of update %s; its lease will expire", update_id)
            return
        metrics.UPDATES_HANDLED.labels(outcome="parked" if parked else "retry").inc()
        if parked:
            log.error(
                "update %s parked after %s attempts (incident %s)",
                update_id,
                max_attempts,
                incident or "-",
            )
            if apology_id is not None and self.send_now is not None:
                await self.send_now(apology_id)  # durable first, then at once

    async def _retry_later(
        self, update_id: int, error: BaseException, outbound: list[dict[str, Any]]
    ) -> None:
        log.warning("update %s: %s; retrying without counting it", update_id, type(error).__name__)
        try:
            async with self._writing() as session:
                await retry_later(session, update_id, TRANSIENT_RETRY)
                await log_outbound_rows(session, outbound, in_reply_to=update_id)
                await session.commit()
        except (SQLAlchemyError, OSError):
            self._to_release.add(update_id)  # put back as soon as the database answers
            self._database_away = True
        metrics.UPDATES_HANDLED.labels(outcome="transient").inc()

    async def _release_after_outage(self) -> None:
        try:
            async with self._writing() as session:
                for update_id in list(self._to_release):
                    await retry_later(session, update_id, timedelta(0))
                await session.commit()
            self._to_release.clear()
        except (SQLAlchemyError, OSError):
            await asyncio.sleep(1.0)

    async def _enqueue_apology(self, session: Any, update_id: int, incident: str) -> int | None:
        """The person is told, in their language, in the same transaction as the parking."""
        payload = await _payload(session, update_id)
        if self.apology_for is None or payload is None:
            return None
        language = await _sender_language(session, payload)
        try:
            apology = self.apology_for(payload, incident, language)
        except Exception as exc:  # the parking must commit, apology or not
            log.error("no apology for update %s: %s", update_id, type(exc).__name__)
            return None
        if apology is None:
            return None
        chat_id, text = apology
        row = enqueue(
            session,
            chat_id=chat_id,
            kind="apology",
            params={"text": text},
            dedupe_key=f"apology:{update_id}",
        )
        await session.flush()
        return row.id


async def _sender_language(session: Any, payload: dict[str, Any]) -> str | None:
    from sqlalchemy import select

    from models.accounts import Account
    from models.exchange import describe_update

    user_id = describe_update(payload).user_id
    if user_id is None:
        return None
    language: str | None = await session.scalar(
        select(Account.language).where(Account.telegram_id == user_id)
    )
    return language


async def _payload(session: Any, update_id: int) -> dict[str, Any] | None:
    from sqlalchemy import select

    payload: dict[str, Any] | None = await session.scalar(
        select(Exchange.payload).where(Exchange.update_id == update_id)
    )
    return payload


class _WriteWatch:
    """Notices a handling's first writing statement (see ``models.db.before_write``).

    On SQLite it then waits for the process's write gate (from inside the statement, which is
    why ``await_only``) and keeps it until the handling's transaction ends, so writers still
    take turns in asyncio rather than in SQLite's busy handler. Reads before that point ran
    outside any transaction (the driver begins one at the first write), so nothing is held
    while waiting. Two statements of the handling writing at once both wait for the one gate
    acquisition. A write after the handling ended (a task it left behind) is not its own: it
    neither takes the gate nor keeps one it obtained too late.
    """

    def __init__(self, gate: asyncio.Lock | None) -> None:
        self.gate = gate
        self.wrote = False
        self._holds_gate = False
        self._acquired: asyncio.Event | None = None
        self._closed = False

    def __call__(self) -> None:
        if self._closed:
            return
        self.wrote = True
        if self.gate is None or self._holds_gate:
            return
        if self._acquired is not None:  # another statement of this handling is getting it
            await_only(self._acquired.wait())
            return
        self._acquired = asyncio.Event()
        try:
            await_only(self.gate.acquire())
        finally:
            self._acquired.set()
        if self._closed:  # the handling ended while this statement waited
            self.gate.release()
        else:
            self._holds_gate = True

    def close(self) -> None:
        self._closed = True
        if self._holds_gate and self.gate is not None:
            self._holds_gate = False
            self.gate.release()


def _finished(row_id: int, update_id: int, scope: UpdateScope) -> FinishedUpdate:
    account = scope.account
    return FinishedUpdate(
        row_id=row_id,
        update_id=update_id,
        account_id=account.id if account else None,
        role=account.role.value if account else None,
        flow=scope.flow,
        subject_type=scope.subject_type,
        subject_id=scope.subject_id,
        outbound=scope.outbound,
    )
