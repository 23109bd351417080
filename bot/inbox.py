"""Updates in: the fetch loop that stores before it confirms, and the workers that handle.

PTB's ``Updater`` confirms a batch to Telegram as soon as it asks for the next one, before
anything durable holds it. :class:`Poller` replaces it: ``getUpdates`` → insert each update
into the inbox (ignoring ones already there) → commit → only then ask again with the advanced
offset, which is what confirms the batch to Telegram. If the commit fails, the offset is not
advanced and Telegram redelivers. The updates are stored as Telegram sent them (JSON, not
PTB objects): an update the library cannot parse is still stored, and fails alone.

:class:`InboxWorker` claims stored updates (one at a time per chat, in ``update_id`` order,
different chats in parallel), runs each through ``Application.process_update`` in its own
database session, and commits the handler's changes, the messages it queued in the outbox
(see ``bot.exchange_log``) and the "done" mark in one transaction. Only then is the button
press answered and are the messages sent. So a handling that fails sends nothing, and after a
crash only a message whose send was in flight can be repeated.

Failures are of two kinds. The update's own (a handler raised): counted, retried with
backoff, parked as failed after ``inbox_max_attempts`` with an apology to the person queued in
the outbox in the same transaction. The infrastructure's (the database or Telegram could not
be reached): not counted, the update is simply retried a few seconds later, so an outage
never parks a person's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot import metrics
from bot.errors import new_incident_code
from bot.runtime import Runtime, UpdateScope, current_scope, outbound_sink
from bot.telegram_errors import Reminder, bot_wide_refusal, is_stale_query
from models.db import is_database_outage, write_gate
from models.exchange import (
    ClaimedUpdate,
    Exchange,
    claim_stored,
    claim_updates,
    describe_update,
    finish_update,
    hold_claim,
    log_outbound_rows,
    record_failure,
    release_claims,
    retry_later,
    store_updates,
)
from models.outbox import (
    OutboxMessage,
    OutboxStatus,
    chats_waiting_in,
    claim_at_once,
    enqueue,
    replies_free_to_go,
)

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# (payload, incident code, sender's chosen language) of a parked update -> (chat id,
# apology text) to enqueue, or None.
ApologyFor = Callable[[dict[str, Any], str, str | None], tuple[int, str] | None]
# Called after an update's changes are committed: wakes the outbox dispatcher, which sends
# what the handling queued at once.
AfterCommit = Callable[[set[int]], None]
# Sends one committed outbox row now (the apology for a parked update).
SendNow = Callable[[int], Awaitable[None]]
# Sends outbox rows a handling committed already claimed: (row id, chat id).
SendClaimed = Callable[[list[OutboxMessage]], Awaitable[None]]
# Claims, in the fetch loop's own transaction, the rows just stored (InboxWorker.claim_in).
ClaimIn = Callable[[AsyncSession, list[dict[str, Any]]], Awaitable[list[ClaimedUpdate]]]
# After the commit: how many updates were stored, and those the same commit claimed.
OnStored = Callable[[int, list[ClaimedUpdate]], None]
TRANSIENT_RETRY = timedelta(seconds=3)


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


async def store_and_claim(
    runtime: Runtime, updates: list[dict[str, Any]], claim_in: ClaimIn | None
) -> list[ClaimedUpdate]:
    """Store updates (behind the SQLite write gate) and, in the same commit, claim those the
    worker can start now (``claim_in``); the fetch loop and the webhook both store this way.
    Raises if the commit fails: then nothing was stored or claimed."""
    claimed: list[ClaimedUpdate] = []
    async with write_gate(runtime.sessionmaker), runtime.sessionmaker() as session:
        stored = await store_updates(session, updates)
        if claim_in is not None:
            claimed = await claim_in(session, stored)
        await session.commit()
    return claimed


class Poller:
    """Long polling that never confirms an update before the inbox holds it."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        runtime: Runtime,
        on_stored: OnStored,
        claim_in: ClaimIn | None = None,
    ) -> None:
        self.application = application
        self.runtime = runtime
        self.on_stored = on_stored
        self.claim_in = claim_in
        self.offset: int | None = None
        self._stopping = asyncio.Event()
        self._fetching: asyncio.Task[list[dict[str, Any]]] | None = None
        self._reminder = Reminder()

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
                refusal = bot_wide_refusal(exc) if isinstance(exc, TelegramError) else None
                if refusal is not None:
                    self._report_refusal(*refusal)
                else:
                    log.warning("fetch loop: %s; retrying in %.0fs", type(exc).__name__, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)

    def _report_refusal(self, reason: str, line: str) -> None:
        """Telegram refuses the whole bot (``bot_wide_refusal``). Nothing the bot can do
        fixes it, and it cannot tell which of two pollers is the right one, so it does not
        fight: it says so in one line, again every ``REMINDER_SECONDS`` while it lasts,
        counts every refusal, and goes on asking."""
        metrics.FETCH_REFUSED.labels(reason=reason).inc()
        if self._reminder.due(reason):
            log.error("fetch loop: %s", line)

    async def poll_once(self) -> int:
        """One ``getUpdates`` round; returns how many updates Telegram handed over."""
        updates = await self._fetch()
        if not updates:
            return 0
        claimed = await store_and_claim(self.runtime, updates, self.claim_in)
        metrics.UPDATES_RECEIVED.inc(len(updates))
        # Only now, with the batch committed, may the next request confirm it.
        self.offset = max(int(u["update_id"]) for u in updates) + 1
        self.on_stored(len(updates), claimed)
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
    """Handles stored updates: per chat in order, across chats in parallel.

    The path of one update (see docs/architecture.md, "The walk-through"): claim it (one
    transaction for all free slots) → :meth:`_handle`: one session, the handlers, the done mark
    → commit → answer the button press → send what the handling queued in the outbox. On
    SQLite the whole handling holds the process's write gate: it never waits for Telegram
    (everything it sends is an outbox row, sent after the commit), so it is short, and writers
    take turns in asyncio instead of in SQLite's busy handler.
    """

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
        send_claimed: SendClaimed | None = None,
        idle_poll_seconds: float = 0.5,
    ) -> None:
        self.application = application
        self.runtime = runtime
        self.wake = wake
        self.skip_locked = skip_locked
        self.apology_for = apology_for
        self.after_commit = after_commit
        self.send_now = send_now
        self.send_claimed = send_claimed
        self.idle_poll_seconds = idle_poll_seconds
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._to_release: set[int] = set()  # updates to put back once the database answers
        self._look_again = False  # see _one_round
        self._unclaimed = 0  # updates this process stored and has not claimed yet
        self._looping = False  # run() is on: the fetch loop may claim for it

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def note_stored(self, count: int = 1, claimed: list[ClaimedUpdate] | None = None) -> None:
        """Updates were stored (by the fetch loop or the webhook): handle those the storing
        commit claimed (:meth:`claim_in`) at once, and claim the rest now."""
        claimed = claimed or []
        self._start(claimed)
        if count > len(claimed):
            self._unclaimed += count - len(claimed)
            self.wake.set()

    async def claim_in(
        self, session: AsyncSession, stored: list[dict[str, Any]]
    ) -> list[ClaimedUpdate]:
        """Claim, in the fetch loop's transaction, what it has just stored, by the loop's rules
        (at most one per chat, the oldest unfinished, as many as there are free slots;
        ``models.exchange.claim_stored``). At 20 updates a second this saves the claim's own
        transaction and the loop's wake-up per update (``bench_steady``, docs/benchmarks.md).
        Nothing is started before the commit (:meth:`note_stored`): a rolled-back claim never
        happened. Only for the running loop: without it (tests, the console) updates are stored
        only, and :meth:`drain` claims them."""
        free = self.runtime.settings.inbox_concurrency - len(self._in_flight)
        if free <= 0 or not self._looping or self._stopping.is_set():
            return []
        lease = timedelta(seconds=self.runtime.settings.inbox_lease_seconds)
        return await claim_stored(session, self.runtime.worker_id, stored, limit=free, lease=lease)

    async def _claim_in_session(self, session: AsyncSession, limit: int) -> list[ClaimedUpdate]:
        return await claim_updates(
            session,
            self.runtime.worker_id,
            limit=limit,
            lease=timedelta(seconds=self.runtime.settings.inbox_lease_seconds),
            skip_locked=self.skip_locked,
        )

    async def release_all_claims(self) -> None:
        """Single process only (SQLite): every claim left over is from a crashed run."""
        async with self.runtime.sessionmaker() as session:
            released = await release_claims(session, None)
            await session.commit()
        if released:
            log.info("%d interrupted update(s) will be handled again", released)

    async def run(self) -> None:
        concurrency = self.runtime.settings.inbox_concurrency
        self._looping = True
        while not self._stopping.is_set():
            try:
                await self._one_round(concurrency)
            except Exception as exc:  # a loop that dies silently would stop all handling
                log.warning("inbox loop: %s; going on", type(exc).__name__)
                await asyncio.sleep(1.0)
        # Graceful shutdown: updates already being handled finish (those the fetch loop's last
        # commit claimed meanwhile too); the rest wait in the inbox.
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        self._looping = False

    async def _one_round(self, concurrency: int) -> None:
        """Claim as many updates as there are free slots, start them, and wait for work.

        A chat's next update is not claimable while its previous one is handled
        (``claim_updates``), so a handling that ends wakes the loop only when an update may be
        waiting behind it: one this process stored and no round has claimed yet, or the round
        filled every slot. Anything else (another process's updates, a retry that came due)
        is found by the next idle round. This saves a claim per update: one statement, its
        commit and a wake-up for each of the 20 updates a second of ``bench_steady``.
        """
        if self._to_release:
            await self._release_after_outage()
        self.wake.clear()  # before the claim: a wake-up during it is not lost
        free = concurrency - len(self._in_flight)
        waiting = self._unclaimed
        claimed = await self._claim(free) if free > 0 else []
        if free > 0 and not claimed and not self._in_flight:
            waiting_here = 0  # nothing claimable, nothing in their way: another process has them
        else:
            waiting_here = max(0, waiting - len(claimed))
        self._unclaimed += waiting_here - waiting  # stores during the claim still count
        self._look_again = self._unclaimed > 0 or free <= 0 or len(claimed) == free
        self._start(claimed)
        if len(claimed) < free or free <= 0:
            await self._wait_for_work()

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
            await asyncio.gather(*(self._handle(row) for row in claimed))
        raise TimeoutError("inbox not drained in time")

    def _start(self, claimed: list[ClaimedUpdate]) -> None:
        for row in claimed:
            task = asyncio.create_task(self._handle(row))
            self._in_flight.add(task)
            task.add_done_callback(self._slot_freed)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._look_again:
            self.wake.set()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self.idle_poll_seconds)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A session for a write transaction, behind the SQLite write gate."""
        async with write_gate(self.runtime.sessionmaker), self.runtime.sessionmaker() as session:
            yield session

    async def _claim(self, limit: int) -> list[ClaimedUpdate]:
        try:
            async with self._writing() as session:
                rows = await self._claim_in_session(session, limit)
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("inbox claim failed: %s", type(exc).__name__)
            await asyncio.sleep(1.0)
            return []
        return rows

    async def _handle(self, row: ClaimedUpdate) -> None:
        """Handle one claimed update; then answer its button press and send its replies."""
        started = time.perf_counter()
        scope: UpdateScope | None = None
        try:
            scope = await self._handle_in_session(row)
        except Exception as exc:  # database gone mid-update, or a bug outside handlers
            try:
                await self._failed(row.update_id, exc, incident=None, outbound=[])
            except Exception:
                self._to_release.add(row.update_id)
        metrics.HANDLING_SECONDS.observe(time.perf_counter() - started)
        if scope is None:
            return
        if scope.error is not None:
            parked = await self._failed(row.update_id, scope.error, scope.incident, scope.outbound)
            if not parked:
                return  # the retry answers the press
        await self._answer_button(scope)
        if scope.error is None:
            await self._send_committed(scope)

    async def _send_committed(self, scope: UpdateScope) -> None:
        """Send the replies committed already claimed, then wake the dispatcher's loop if the
        handling queued anything else: in that order, so the loop sees those sends in flight
        (a message queued behind one of them waits for it, and its end wakes the loop)."""
        claimed = [row for row in scope.replies if row.status is OutboxStatus.SENDING]
        if claimed and self.send_claimed is not None:
            await self.send_claimed(claimed)
        waiting = chats_waiting_in(scope.session)
        if waiting and self.after_commit is not None:
            self.after_commit(waiting)

    async def _handle_in_session(self, row: ClaimedUpdate) -> UpdateScope | None:
        """The handlers, the done mark and the exchange-log rows, in one transaction.

        On PostgreSQL the row is locked (``FOR UPDATE``) for the whole handling, so another
        worker's claim skips it even if this handling outlives its lease. A handling whose
        handlers failed rolls back, so nothing it queued is ever sent; the failure is recorded
        in a transaction of its own. Returns the scope (None: the row is no longer ours).
        """
        async with self._writing() as session:
            if self.skip_locked and not await hold_claim(
                session, row.id, self.runtime.worker_id, skip_locked=True
            ):
                return None
            scope = UpdateScope(session=session, update_id=row.update_id)
            # A payload erased by /forget before its turn: nothing to act on, marked done.
            await self._run_handlers(scope, row.payload or {"update_id": row.update_id})
            if scope.error is not None:
                await session.rollback()  # nothing it queued is sent
                return scope
            if not await self._complete(session, row, scope):
                await session.rollback()  # taken over meanwhile: its new holder will commit
                return None
            await session.commit()
        metrics.UPDATES_HANDLED.labels(outcome="done").inc()
        return scope

    async def _run_handlers(self, scope: UpdateScope, payload: dict[str, Any]) -> None:
        """All handler groups, then the flush of their pending changes."""
        update = read_update(payload, self.application.bot)
        if isinstance(update, UnreadableUpdate):
            scope.error, scope.incident = update, update.incident
            return
        token = current_scope.set(scope)
        try:
            await self.application.process_update(update)
            if scope.error is None:
                _stamp_replies(scope)
                await self._claim_first_replies(scope)
                await scope.session.flush()
        finally:
            current_scope.reset(token)

    async def _claim_first_replies(self, scope: UpdateScope) -> None:
        """Commit the replies that may leave at once already claimed by this worker, so each
        is sent right after the commit with no claim of its own (``replies_free_to_go``: a
        chat's first, unless messages of the chat are waiting; those go first, and the
        dispatcher sends the rest in order)."""
        lease = timedelta(seconds=self.runtime.settings.outbox_lease_seconds)
        for row in await replies_free_to_go(scope.session, scope.replies):
            claim_at_once(row, self.runtime.worker_id, lease)

    async def _answer_button(self, scope: UpdateScope) -> None:
        """Answer the button press once: after the commit, or when the update is parked.

        Telegram takes one answer per press, so a handling that will be retried does not
        answer (its retry does, with the answer its handler chooses then). "Query is too old …
        or query ID is invalid" means answered already or too late; a timeout or a lost
        connection only means late: the spinner stops by itself. Its log row was written with
        the handling (or its failure record).
        """
        if scope.callback_query_id is None:
            return
        text, show_alert = scope.callback_answer or (None, False)
        sink_token = outbound_sink.set([])  # logged with the handling already
        try:
            await self.application.bot.answer_callback_query(
                scope.callback_query_id, text=text, show_alert=show_alert
            )
        except BadRequest as exc:  # before NetworkError: PTB makes BadRequest one
            if not is_stale_query(exc):
                log.warning("answer to a button press refused: %s", type(exc).__name__)
        except (NetworkError, RetryAfter, TelegramError) as exc:
            log.info("answer to a button press lost: %s", type(exc).__name__)
        finally:
            outbound_sink.reset(sink_token)

    async def _complete(self, session: Any, row: ClaimedUpdate, scope: UpdateScope) -> bool:
        account = scope.account
        context: dict[str, Any] = {
            "account_id": account.id if account else None,
            "role": account.role.value if account else None,
            "flow": scope.flow,
            "subject_type": scope.subject_type,
            "subject_id": scope.subject_id,
        }
        if not await finish_update(session, row.id, self.runtime.worker_id, **context):
            return False
        await log_outbound_rows(session, scope.outbound, **context, in_reply_to=row.update_id)
        return True

    async def _failed(
        self,
        update_id: int,
        error: BaseException,
        incident: str | None,
        outbound: list[dict[str, Any]],
    ) -> bool:
        """Record a failed handling: retried later, or parked (returns True) with an apology."""
        if is_transient(error):
            await self._retry_later(update_id, error, outbound)
            return False
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
            return False
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
        return parked

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
    from models.accounts import Account

    user_id = describe_update(payload).user_id
    if user_id is None:
        return None
    language: str | None = await session.scalar(
        select(Account.language).where(Account.telegram_id == user_id)
    )
    return language


async def _payload(session: Any, update_id: int) -> dict[str, Any] | None:
    payload: dict[str, Any] | None = await session.scalar(
        select(Exchange.payload).where(Exchange.update_id == update_id)
    )
    return payload


def _stamp_replies(scope: UpdateScope) -> None:
    """The replies carry the handling's context to the exchange-log row written at send."""
    account = scope.account
    for row in scope.replies:
        row.account_id = account.id if account else None
        row.role = account.role.value if account else None
        row.flow = scope.flow
        row.subject_type = scope.subject_type
        row.subject_id = scope.subject_id
