"""The outbox dispatcher: sends what state changes enqueued, within Telegram's limits.

One round (:func:`dispatch_due`): claim due messages (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several workers never take the same row; at most one per chat, oldest first,
so a chat's messages keep their order), mark them ``sending`` and COMMIT, and only then call
Telegram. When Telegram accepts, the row becomes ``sent`` with Telegram's message id in a new
short transaction, together with its exchange-log row. So a message is never sent twice
knowingly: once the commit of ``sent`` is done nobody sends it again, and before the HTTP call
the row is visibly taken.

What each failure does:

* 429 ``RetryAfter``: back to pending, due after ``retry_after``; the attempt is not counted.
* network errors, timeouts, 5xx: back to pending with exponential backoff (2, 4, 8 … 300 s),
  counted; after ``outbox_max_attempts`` the row is ``failed`` with the last error.
* 401 Unauthorized (the token revoked): back to pending, due at once and not counted (so the
  bot restarted with the new token sends it straight away); this dispatcher then claims
  nothing for a minute and, after it, one message a minute until one is sent
  (``Dispatcher._claimable``).
* 403 "bot was blocked by the user" / "user is deactivated" / "bot was kicked", 400 "chat not
  found": permanent. The row is ``failed`` with the reason and the account is marked
  unreachable (``models.accounts.mark_unreachable``), so features can alert someone else.
  The flag lasts until the person is heard from again (any update of theirs, or Telegram's
  ``my_chat_member`` saying they unblocked the bot: see ``bot.middleware``).
* 400 "message is not modified" on an edit: ``sent``; the message already shows it (an
  earlier try whose answer was lost got through).
* another 400 (the message itself is wrong): ``failed`` at once; retrying cannot fix it.

An alert about a case that fails for good (either way above) may leave nobody alerted: if no
other alert of the case is sent or on its way, the case becomes unalerted in the same
transaction (``models.cases.unalerted_unless_delivered``), the hooks in
``runtime.extras["on_alert_lost"]`` run in it too (the cases feature tells the requester the
truth), and the escalation sweep alerts the first staff member who becomes reachable.

A worker that dies mid-send leaves its row ``sending``. When the lease expires the row is due
again and is RESENT, with a note in ``error``. Telegram has no idempotency key, so after such a
crash nobody can know whether the message arrived; for an alert about a person in danger a
rare duplicate is acceptable, a lost alert is not. The same reasoning covers a read timeout
(Telegram may have executed the request): it is retried. Both windows are the length of one
HTTP call; everything else is exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from telegram import InputFile
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application
from telegram.warnings import PTBUserWarning

from bot import metrics
from bot.ratelimit import Limits, RateLimiter, make_limiter, reserve_all
from bot.runtime import Runtime, outbound_sink, runtime_of
from bot.telegram_errors import (
    TOKEN_REVOKED,
    Reminder,
    is_not_modified,
    is_token_refused,
    is_unknown_file,
)
from models.accounts import mark_unreachable
from models.base import clock
from models.cases import ALERT_KINDS, unalerted_unless_delivered
from models.db import write_gate
from models.exchange import log_outbound_rows
from models.jobs import claim_job_run
from models.outbox import (
    IF_FILE_GONE,
    OutboxMessage,
    OutboxStatus,
    Outgoing,
    claim_due,
    drop_files,
    mark_failed,
    mark_sent,
    record_sent_reply,
    reschedule,
)

log = logging.getLogger(__name__)
# The outbox stores any Bot API method by name; PTB would rather we called bot.send_message.
warnings.filterwarnings("ignore", message="Please use 'Bot.", category=PTBUserWarning)

# A send reserved further away than this is put back in the table instead of waited for.
MAX_RESERVATION_WAIT = 2.0
MAX_BACKOFF_SECONDS = 300.0
# The token revoked: the dispatcher claims nothing this long, then one message at a time.
TOKEN_REFUSED_RETRY_SECONDS = 60.0
PERMANENT_403 = ("blocked", "deactivated", "kicked", "not a member", "bot can't initiate")
URGENT_PREFIX = "urgent"
REPLY = "reply"  # the outbox kind of what a handling sends (see ``bot.exchange_log``)


class SendOutcome:
    """What a send attempt came to, as a label for metrics and logs."""

    SENT = "sent"
    RETRY_AFTER = "retry_after"
    DEFERRED = "deferred"  # the shared rate limit said "not yet": not a failure
    NETWORK = "network"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
    DEACTIVATED = "deactivated"
    CHAT_NOT_FOUND = "chat_not_found"
    BAD_REQUEST = "bad_request"
    TOKEN_REFUSED = "token_refused"  # the bot's, not the message's: never counted as a try
    OTHER = "other"


class Dispatcher:
    """Sends due outbox rows; one per process, shared by its loop and by tests."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        *,
        skip_locked: bool | None = None,
        limiter: RateLimiter | None = None,
        shared_limits: bool | None = None,
        idle_seconds: float = 0.5,
    ) -> None:
        self.application = application
        self.runtime: Runtime = runtime_of(application)
        settings = self.runtime.settings
        self.skip_locked = (not settings.is_sqlite) if skip_locked is None else skip_locked
        self.limiter = limiter or make_limiter(
            settings, self.runtime.sessionmaker, shared=shared_limits
        )
        self.limits = Limits.from_settings(settings)
        self.wake = asyncio.Event()
        self.idle_seconds = idle_seconds  # how often the loop looks without a wake-up
        self._stopping = asyncio.Event()
        self._semaphore = asyncio.Semaphore(settings.outbox_concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._sending_ids: set[int] = set()  # rows this process is sending (see _claim)
        self._looping = False
        self._queued_chats: set[int] = set()  # see run()
        self._slots_were_full = False
        self._reminder = Reminder()
        self._token_refused_at: datetime | None = None  # see _claimable

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    async def run(self) -> None:
        """Send until stopped: as many messages at once as ``outbox_concurrency`` allows.

        A chat's next message is not claimable while its previous one is being sent
        (``claim_due``): order per chat holds. So the end of a send wakes the loop only when
        a message may wait behind it: the send was claimed by the loop (which sends alerts,
        jobs' messages, a chat's second message), a commit queued a message for its chat
        (``note_queued``), or the last round filled every slot. A reply sent alone wakes
        nobody: at 20 updates a second that was a claim per reply (``bench_steady``). With
        nothing due, the loop waits for a wake-up or ``idle_seconds`` (jobs' messages,
        retries that came due, other processes' rows).
        """
        concurrency = self.runtime.settings.outbox_concurrency
        in_flight = self._in_flight
        self._looping = True
        while not self._stopping.is_set():
            self.wake.clear()  # before the claim: a wake-up during it is not lost
            free = concurrency - len(in_flight)
            try:
                claimed = await self._claim(free) if free > 0 else []
            except Exception as exc:  # the database away, or a bug: keep the loop alive
                log.warning("outbox round failed: %s", type(exc).__name__)
                claimed = []
                await asyncio.sleep(1.0)
            self._slots_were_full = free <= 0 or len(claimed) == free  # more may be due
            if free > 0 and not claimed and not in_flight:
                # Nothing of ours to send, none being sent: the chats noted as queued were sent
                # by another process (or are not due yet, which the idle look finds). Forgotten,
                # so the set does not grow with every chat another worker answered.
                self._queued_chats.clear()
            for message in claimed:
                self._queued_chats.discard(message.chat_id)  # its send's end wakes the loop
                self._start(message, claimed_by_loop=True)
            if len(claimed) < free or free <= 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.idle_seconds)
        self._looping = False
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        await self.limiter.close()

    def note_queued(self, chats: set[int]) -> None:
        """A commit queued messages for these chats: claim them now (or, for a chat whose
        message is being sent, as soon as that send ends)."""
        self._queued_chats |= chats
        self.wake.set()

    def _start(self, message: Outgoing, *, claimed_by_loop: bool) -> None:
        task = asyncio.create_task(self._send_one(message))
        self._in_flight.add(task)
        task.add_done_callback(functools.partial(self._slot_freed, message, claimed_by_loop))

    def _slot_freed(
        self, message: Outgoing, claimed_by_loop: bool, task: asyncio.Task[None]
    ) -> None:
        self._in_flight.discard(task)
        if claimed_by_loop or message.chat_id in self._queued_chats or self._slots_were_full:
            self.wake.set()

    async def send_claimed(self, rows: list[OutboxMessage]) -> None:
        """Send rows a handling committed already claimed (``sending``, this worker's): at once,
        in the loop's slots when it runs, else here (tests, the console). Saves the claim's
        transaction, the loop's wake-up and the read of the row on the way of every reply."""
        messages = [Outgoing.of(row) for row in rows]
        if not self._looping:
            await asyncio.gather(*(self._send_one(message) for message in messages))
            return
        for message in messages:
            self._start(message, claimed_by_loop=False)

    async def send_now(self, row_id: int) -> None:
        """Send one committed row at once (a reply that must also survive a crash)."""
        try:
            await self.dispatch_due(1, only_id=row_id)
        except (SQLAlchemyError, OSError):
            self.wake.set()  # the loop will get to it

    async def dispatch_due(self, limit: int, *, only_id: int | None = None) -> int:
        """Claim up to ``limit`` due messages and try each once; returns how many (tests and
        :meth:`send_now` use it; the loop is :meth:`run`)."""
        claimed = await self._claim(limit, only_id=only_id)
        await asyncio.gather(*(self._send_one(message) for message in claimed))
        return len(claimed)

    async def _claim(self, limit: int, *, only_id: int | None = None) -> list[Outgoing]:
        """Mark up to ``limit`` due messages ``sending`` and commit, before any HTTP call.

        Never a row this process is still sending: its lease may run out while Telegram is
        slow to answer (an overloaded machine, a large upload), and taking it then as a
        crashed worker's would send the message twice with both sends alive."""
        limit = self._claimable(limit)
        if limit == 0:
            return []
        settings = self.runtime.settings
        async with write_gate(self.runtime.sessionmaker), self.runtime.sessionmaker() as session:
            rows = await claim_due(
                session,
                self.runtime.worker_id,
                limit=limit,
                lease=timedelta(seconds=settings.outbox_lease_seconds),
                skip_locked=self.skip_locked,
                only_id=only_id,
                sending_here=self._sending_ids,
            )
            claimed = [Outgoing.of(row) for row in rows]
            await session.commit()
        return claimed

    def _claimable(self, limit: int) -> int:
        """How many messages may be claimed now. While Telegram refuses the token no message
        can go, and each try is a row in the contact log with the message's text: so none
        for ``TOKEN_REFUSED_RETRY_SECONDS`` after a refusal, then one, which says whether the
        token works again (30 alerts queued through a night were 30 tries a minute)."""
        if self._token_refused_at is None:
            return limit
        since = (clock.now() - self._token_refused_at).total_seconds()
        return 0 if since < TOKEN_REFUSED_RETRY_SECONDS else min(limit, 1)

    async def _send_one(self, message: Outgoing) -> None:
        self._sending_ids.add(message.id)
        try:
            await self._send_within_slots(message)
        finally:
            self._sending_ids.discard(message.id)

    async def _send_within_slots(self, message: Outgoing) -> None:
        async with self._semaphore:
            hold = await reserve_all(
                self.limiter, self.limits.keys_for(message.chat_id), MAX_RESERVATION_WAIT
            )
            if not hold.granted:
                await self._settle(message, [], _later(hold.delay))
                return
            sink: list[dict[str, Any]] = []
            try:
                if hold.delay > 0:
                    await asyncio.sleep(hold.delay)
                outcome = await self._call_telegram(message, sink)
            finally:
                await hold.release()  # the limits count from the answer (``bot.ratelimit``)
            await self._settle(message, sink, outcome)

    async def _call_telegram(self, message: Outgoing, sink: list[dict[str, Any]]) -> _Result:
        method, params = message.method, {**message.params, "chat_id": message.chat_id}
        for field, filename, content in message.files:
            params[field] = InputFile(content, filename=filename)
        if_file_gone = params.pop(IF_FILE_GONE, None)
        token = outbound_sink.set(sink)
        try:
            result = await self._request(method, params, if_file_gone)
        except RetryAfter as exc:
            return _Result(SendOutcome.RETRY_AFTER, error=str(exc), delay=_seconds(exc.retry_after))
        except ChatMigrated as exc:
            return _Result(SendOutcome.OTHER, error=str(exc), new_chat_id=int(exc.new_chat_id))
        except TimedOut as exc:
            return _Result(SendOutcome.TIMEOUT, error=f"timed out: {exc}")
        except Forbidden as exc:
            text = str(exc).lower()
            kind = SendOutcome.DEACTIVATED if "deactivated" in text else SendOutcome.BLOCKED
            return _Result(kind, error=str(exc), permanent=True, unreachable=True)
        except BadRequest as exc:
            if is_not_modified(exc):  # an edit already shown: an earlier try got through
                edited = params.get("message_id")
                return _Result(SendOutcome.SENT, message_id=int(edited) if edited else None)
            not_found = "chat not found" in str(exc).lower()
            kind = SendOutcome.CHAT_NOT_FOUND if not_found else SendOutcome.BAD_REQUEST
            return _Result(kind, error=str(exc), permanent=True, unreachable=not_found)
        except NetworkError as exc:  # includes 5xx answers
            return _Result(SendOutcome.NETWORK, error=f"network: {exc}")
        except TelegramError as exc:
            if is_token_refused(exc):
                return self._token_refused()
            return _Result(SendOutcome.OTHER, error=f"{type(exc).__name__}: {exc}")
        finally:
            outbound_sink.reset(token)
        self._token_refused_at = None
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return _Result(SendOutcome.SENT, message_id=message_id)

    def _token_refused(self) -> _Result:
        """The token was revoked: no message is at fault, so none uses up its tries (ten
        would have failed every alert for good in about 17 minutes); each waits, due, and
        goes once the bot runs with the new token. The hold (``_claimable``) spaces the tries
        meanwhile: a delay on the row would outlast the restart with the new token."""
        self._token_refused_at = clock.now()
        if self._reminder.due("token"):
            log.error("outbox: %s", TOKEN_REVOKED)
        return _Result(
            SendOutcome.TOKEN_REFUSED, error="the bot's token was refused (401 Unauthorized)"
        )

    async def _request(self, method: str, params: dict[str, Any], if_file_gone: Any) -> Any:
        """One Bot API call; a file Telegram no longer knows is replaced by the given text."""
        timeout = self.runtime.settings.outbox_send_timeout_seconds
        bot = self.application.bot
        try:
            return await bot.do_api_request(method, api_kwargs=params, read_timeout=timeout)
        except BadRequest as exc:
            if not (if_file_gone and is_unknown_file(exc)):
                raise
            log.info("a file Telegram no longer knows was replaced by a note")
            note = {"chat_id": params["chat_id"], "text": str(if_file_gone)}
            return await bot.do_api_request("sendMessage", api_kwargs=note, read_timeout=timeout)

    async def _settle(self, message: Outgoing, sink: list[dict[str, Any]], result: _Result) -> None:
        """Write the outcome; a database hiccup right after a send is retried for a while,
        because giving up here would mean resending a message Telegram already has."""
        for pause in (0.0, 0.5, 1, 2, 4, 8):
            await asyncio.sleep(pause)
            try:
                await self._write_outcome(message, sink, result)
                return
            except (SQLAlchemyError, OSError) as exc:
                log.warning(
                    "outbox row %s: cannot record outcome (%s)", message.id, type(exc).__name__
                )
        log.error("outbox row %s: outcome not recorded; its lease will expire", message.id)

    async def _write_outcome(
        self, message: Outgoing, sink: list[dict[str, Any]], result: _Result
    ) -> None:
        settings = self.runtime.settings
        async with write_gate(self.runtime.sessionmaker), self.runtime.sessionmaker() as session:
            if result.outcome == SendOutcome.SENT and message.kind == REPLY:
                # A sent reply's record is its exchange-log row: the row itself goes.
                if await record_sent_reply(session, message.id, sink, **message.log_context):
                    await session.commit()
                return
            row = await session.get(OutboxMessage, message.id)
            if row is None or row.status != OutboxStatus.SENDING:
                return
            await log_outbound_rows(session, sink, **message.log_context)
            if result.outcome == SendOutcome.SENT:
                mark_sent(row, result.message_id)
                await drop_files(session, row.id)
                await self._observe_urgent(session, row)
            else:
                if result.outcome != SendOutcome.DEFERRED:
                    metrics.SEND_FAILURES.labels(kind=result.outcome).inc()
                await self._after_failure(session, row, result, settings.outbox_max_attempts)
            await session.commit()

    async def _after_failure(
        self, session: Any, row: OutboxMessage, result: _Result, max_attempts: int
    ) -> None:
        error = result.error
        if result.permanent:
            mark_failed(row, error or result.outcome)
            if result.unreachable and row.chat_id > 0:
                await mark_unreachable(session, row.chat_id, error or result.outcome)
            log.info("outbox row %s failed for good: %s", row.id, result.outcome)
            await self._alert_lost(session, row)
        elif result.new_chat_id is not None:
            row.chat_id = result.new_chat_id
            reschedule(row, timedelta(0), error, count=False)
        elif result.outcome == SendOutcome.TOKEN_REFUSED:  # spaced by the hold (_claimable)
            reschedule(row, timedelta(0), error, count=False)
        elif result.delay is not None:  # 429 retry_after, or deferred by the rate limiter
            reschedule(row, timedelta(seconds=result.delay or 1.0), error, count=False)
        elif row.attempts >= max_attempts:
            mark_failed(row, f"gave up after {row.attempts} attempts: {error}")
            log.warning("outbox row %s: gave up after %s attempts", row.id, row.attempts)
            await self._alert_lost(session, row)
        else:
            backoff = min(2.0**row.attempts, MAX_BACKOFF_SECONDS)
            reschedule(row, timedelta(seconds=backoff), error, count=True)

    async def _alert_lost(self, session: Any, row: OutboxMessage) -> None:
        """A case alert failed for good: the case may now have reached nobody."""
        if row.kind not in ALERT_KINDS or row.subject_type != "case" or row.subject_id is None:
            return
        await session.flush()  # this row's failure counts in the check
        if not await unalerted_unless_delivered(session, row.subject_id):
            return
        log.warning("case %s: every alert failed; nobody has it", row.subject_id)
        for hook in self.runtime.extras.get("on_alert_lost", []):
            await hook(session, row.subject_id)

    async def _observe_urgent(self, session: Any, row: OutboxMessage) -> None:
        """Time from an urgent request (its alert enqueued with the case) to the first alert
        that reached someone.

        "First" is claimed once per case with a unique key (``models.jobs.claim_job_run``):
        alerts to several operators are sent concurrently, by one or many workers, and a
        "was another one sent already?" query would let two of them both count as first.
        """
        if not row.kind.startswith(URGENT_PREFIX) or row.subject_id is None:
            return
        key = f"{row.subject_type}:{row.subject_id}"
        if await claim_job_run(session, "urgent_first_alert", key):
            elapsed = (clock.now() - row.created_at).total_seconds()
            metrics.URGENT_FIRST_ALERT_SECONDS.observe(max(elapsed, 0.0))


class _Result:
    __slots__ = (
        "delay",
        "error",
        "message_id",
        "new_chat_id",
        "outcome",
        "permanent",
        "unreachable",
    )

    def __init__(
        self,
        outcome: str,
        *,
        message_id: int | None = None,
        error: str | None = None,
        delay: float | None = None,
        permanent: bool = False,
        unreachable: bool = False,
        new_chat_id: int | None = None,
    ) -> None:
        self.outcome = outcome
        self.message_id = message_id
        self.error = error
        self.delay = delay
        self.permanent = permanent
        self.unreachable = unreachable
        self.new_chat_id = new_chat_id


def _later(delay: float) -> _Result:
    """Refused by the rate limiter: not a failure, just not yet."""
    return _Result(SendOutcome.DEFERRED, delay=max(delay, 0.05), error=None)


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def dispatcher_of(application: Application[Any, Any, Any, Any, Any, Any]) -> Dispatcher:
    """The application's dispatcher, made on first use."""
    runtime = runtime_of(application)
    dispatcher = runtime.extras.get("dispatcher")
    if dispatcher is None:
        dispatcher = Dispatcher(application)
        runtime.extras["dispatcher"] = dispatcher
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher


async def dispatch_due(
    application: Application[Any, Any, Any, Any, Any, Any], limit: int = 100
) -> int:
    """Send what is due now, once each (tests call this directly); returns rows tried."""
    return await dispatcher_of(application).dispatch_due(limit)


async def dispatch_all(
    application: Application[Any, Any, Any, Any, Any, Any], *, rounds: int = 50
) -> int:
    """Keep dispatching until a round finds nothing due (tests: "everything sent now")."""
    total = 0
    for _ in range(rounds):
        tried = await dispatch_due(application)
        if tried == 0:
            break
        total += tried
    return total
