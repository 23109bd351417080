"""The outbox: messages that follow from a state change, written in the same transaction.

An alert, an escalation or feedback to a reporter is a row here, committed together with the
case change that caused it; the dispatcher (``bot/dispatcher.py``) sends it within Telegram's
limits. ``dedupe_key`` makes "enqueue this step once" a database fact.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import inspect as inspect_row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, BigId, clock
from models.db import rows_affected, statements_commit_alone
from models.exchange import EXCHANGE_TABLE, OUTBOUND_COLUMNS, log_outbound_rows, outbound_values

# A parameter of a message that sends a file by Telegram's file id: the text to send instead
# if Telegram no longer knows the file (the dispatcher takes it out before sending).
IF_FILE_GONE = "if_file_gone"
# ``session.info`` keeps the rows a session queued, so whoever commits it knows which chats
# the dispatcher has something new for (see ``chats_waiting_in``), and which of its replies
# may leave at once (``replies_free_to_go``).
QUEUED = "outbox_queued"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "available_at"),
        Index("ix_outbox_chat_order", "chat_id", "id"),
        # "Is an earlier message of this chat unsent?" reads only those rows.
        Index("ix_outbox_chat_unsent", "chat_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(32), default="sendMessage")
    params: Mapped[dict[str, Any]]
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(
            OutboxStatus,
            native_enum=False,
            length=12,
            values_callable=lambda m: [x.value for x in m],
        ),
        default=OutboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(default=clock.now)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    # A reply to an update: which one, and the flow and role it was handled in (for the
    # exchange log row written when it is sent).
    in_reply_to: Mapped[int | None] = mapped_column(BigInteger)
    flow: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(20))
    files: Mapped[list[OutboxFile]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class OutboxFile(Base):
    """A file a message uploads (a chart, an export): kept until the message is sent."""

    __tablename__ = "outbox_file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    mimetype: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)


def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    kind: str,
    params: dict[str, Any],
    method: str = "sendMessage",
    account_id: int | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
    in_reply_to: int | None = None,
) -> OutboxMessage:
    """Add a message to send once the surrounding transaction commits.

    ``params`` are Bot API parameters without ``chat_id`` (JSON-ready: a reply_markup as a
    dict). The caller renders the text in the recipient's language.
    """
    message = OutboxMessage(
        created_at=clock.now(),
        chat_id=chat_id,
        method=method,
        params=params,
        kind=kind,
        status=OutboxStatus.PENDING,
        attempts=0,
        available_at=not_before or clock.now(),
        account_id=account_id,
        subject_type=subject_type,
        subject_id=subject_id,
        dedupe_key=dedupe_key,
        in_reply_to=in_reply_to,
    )
    session.add(message)
    session.info.setdefault(QUEUED, []).append(message)
    return message


def _queued_in(session: AsyncSession) -> list[OutboxMessage]:
    """The rows this session queued (:func:`enqueue`), in order."""
    queued: list[OutboxMessage] = session.info.get(QUEUED, [])
    return queued


def chats_waiting_in(session: AsyncSession) -> set[int]:
    """The chats this session queued messages for that wait for the dispatcher's claim
    (``pending``; a reply committed already claimed is sent by its handling)."""
    return {row.chat_id for row in _queued_in(session) if row.status is OutboxStatus.PENDING}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed message as the dispatcher sends it: read once, from the claim or from the
    handling that wrote it, so a send and its outcome need no read of their own."""

    id: int
    chat_id: int
    method: str
    params: dict[str, Any]
    kind: str
    files: tuple[tuple[str, str | None, bytes], ...]
    log_context: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxMessage) -> Outgoing:
        # The files as loaded (by the claim) or added (by the handling); never a lazy load.
        files = inspect_row(row).dict.get("files") or ()
        return cls(
            id=row.id,
            chat_id=row.chat_id,
            method=row.method,
            params=dict(row.params),
            kind=row.kind,
            files=tuple((f.field, f.filename, f.content) for f in files),
            log_context={
                "account_id": row.account_id,
                "role": row.role,
                "flow": row.flow or f"outbox:{row.kind}",
                "subject_type": row.subject_type,
                "subject_id": row.subject_id,
                "in_reply_to": row.in_reply_to,
            },
        )


class RateSlot(Base):
    """Telegram's send limits shared by every worker (PostgreSQL): one row per slot.

    ``key`` is ``global#<n>``, ``chat:<id>#<n>`` or ``group:<id>#<n>``; ``next_at`` is the Unix
    time (PostgreSQL's clock) when the slot frees. See ``bot/ratelimit.py`` for why a slot is
    held until a window after its send's answer.
    """

    __tablename__ = "rate_slot"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)


# --- the dispatcher's side ------------------------------------------------------------------


async def claim_due(
    session: AsyncSession,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    skip_locked: bool,
    only_id: int | None = None,
    sending_here: Collection[int] = (),
) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages, at most one per chat, each the oldest of its chat.

    A message is due when it is pending and its time has come, or when it was left
    "sending" by a worker whose lease expired (a crash mid-send: see ``bot/dispatcher.py``).
    ``sending_here`` are the rows the caller is still sending: a lease that ran out during a
    slow answer from Telegram is not a crash, and the caller must not send them again.
    Messages to one chat keep their order: a later one waits while an earlier one is still
    pending or sending. The claimed rows are marked "sending" and the caller commits BEFORE
    any HTTP call, so a message is never sent twice knowingly.
    """
    now = clock.now()
    parameters: dict[str, Any] = {"now": now, "limit": limit, "sending_here": list(sending_here)}
    if only_id is not None:
        parameters["only_id"] = only_id
    query = _due_query(skip_locked=skip_locked, one_message=only_id is not None)
    chosen: list[OutboxMessage] = []
    seen: set[int] = set()
    for row in list(await session.scalars(query, parameters)):
        if row.chat_id in seen:
            continue
        seen.add(row.chat_id)
        values: dict[str, Any] = {
            "status": OutboxStatus.SENDING,
            "attempts": row.attempts + 1,
            "locked_by": worker,
            "locked_until": now + lease,
        }
        if row.status == OutboxStatus.SENDING:
            values["error"] = "resent: a worker stopped while sending (delivery unknown)"
        if await _compare_and_set(session, row, values):
            chosen.append(row)
    return chosen


@functools.cache
def _due_query(*, skip_locked: bool, one_message: bool) -> Select[OutboxMessage]:
    """:func:`claim_due`'s query, built once for each shape: building it (an alias of the
    table, its conditions) cost five times the round trip of an empty claim, and the
    dispatcher's idle look runs it twice a second (``bench_steady`` run O: the idle bot's
    CPU 17 → 12 ms a second on PostgreSQL, 15 → 11 on SQLite)."""
    earlier = aliased(OutboxMessage)
    now: Any = bindparam("now")
    due = or_(
        and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now),
        and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.locked_until < now),
    )
    blocked_by_earlier = exists().where(
        earlier.chat_id == OutboxMessage.chat_id,
        earlier.id < OutboxMessage.id,
        earlier.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
    )
    query = (
        select(OutboxMessage)
        .where(
            due,
            ~blocked_by_earlier,
            OutboxMessage.id.not_in(bindparam("sending_here", expanding=True)),
        )
        .order_by(OutboxMessage.id)
        .limit(bindparam("limit"))
        .options(selectinload(OutboxMessage.files))
    )
    if one_message:
        query = query.where(OutboxMessage.id == bindparam("only_id"))
    return query.with_for_update(skip_locked=True) if skip_locked else query


async def _compare_and_set(
    session: AsyncSession, row: OutboxMessage, values: dict[str, Any]
) -> bool:
    """Take the row only if nobody changed it since we read it (``attempts`` is its version).

    PostgreSQL's row locks already guarantee this; SQLite reads outside a write transaction,
    so two claimers in one process could both see the row: the guarded UPDATE settles it.
    """
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row.id,
            OutboxMessage.status == row.status,
            OutboxMessage.attempts == row.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not _one_row(result):
        return False
    for key, value in values.items():
        set_committed_value(row, key, value)
    return True


async def record_sent_reply(
    session: AsyncSession, outbox_id: int, logged: list[dict[str, Any]], **context: Any
) -> bool:
    """A sent reply leaves the table and its exchange-log rows are written in its place;
    False (and nothing written) if the row is no longer this send's (taken over after its
    lease expired, or gone). The caller commits.

    On PostgreSQL, for the usual one log row, this is one statement in autocommit: a
    ``DELETE … RETURNING`` whose row, if any, lets the ``INSERT`` through. Every statement,
    BEGIN and COMMIT is a round trip there; this makes four into one for each reply
    (``bench_steady``, docs/benchmarks.md). SQLite has no DELETE in a WITH, and its
    statements are no round trips: a DELETE, then the INSERT, in a transaction.
    """
    if len(logged) == 1 and await statements_commit_alone(session):
        [values] = outbound_values(logged, **context)
        result = await session.execute(_RECORD_SENT, {**values, "outbox_id": outbox_id})
        return _one_row(result)
    return await _delete_then_log(session, outbox_id, logged, **context)


async def _delete_then_log(
    session: AsyncSession, outbox_id: int, logged: list[dict[str, Any]], **context: Any
) -> bool:
    """:func:`record_sent_reply` as two statements in the session's transaction."""
    if not _one_row(await session.execute(_DELETE_SENT, {"outbox_id": outbox_id})):
        return False
    await log_outbound_rows(session, logged, **context)
    return True


def _one_row(result: Any) -> bool:
    return rows_affected(result) == 1


async def drop_files(session: AsyncSession, outbox_id: int) -> None:
    """A sent message's uploads are not kept (a chart, an export: data about people)."""
    await session.execute(delete(OutboxFile).where(OutboxFile.outbox_id == outbox_id))


async def replies_free_to_go(
    session: AsyncSession, replies: list[OutboxMessage]
) -> list[OutboxMessage]:
    """The replies that may leave right after the commit, with no claim of their own: each
    chat's first reply, if it is the first message this session queued for that chat and no
    other message of the chat is pending or being sent. The rest wait for the dispatcher,
    which sends a chat's messages in order.

    The session's own rows are told apart in memory, never by what the table shows: whether
    the session has written them yet (an autoflush) must not decide, or a reply could pass a
    notice queued before it, or wait behind itself.
    """
    replying = {id(row) for row in replies}
    first: dict[int, OutboxMessage] = {}
    for row in _queued_in(session):
        first.setdefault(row.chat_id, row)
    first = {chat_id: row for chat_id, row in first.items() if id(row) in replying}
    if not first:
        return []
    with session.no_autoflush:
        busy = await _chats_with_unsent(session, set(first))
    return [row for chat_id, row in first.items() if chat_id not in busy]


async def _chats_with_unsent(session: AsyncSession, chats: set[int]) -> set[int]:
    """Which of these chats have messages pending or being sent, the session's own apart.

    Asked by every handling that replies, nearly always for one chat: one small statement
    per chat, built once (an ``IN`` list is compiled anew at each call). It reads one row more
    than the session's own written rows, so one of any others is among them.
    """
    own = {row.id for row in _queued_in(session) if row.id is not None}
    busy: set[int] = set()
    for chat_id in chats:
        unsent = await session.scalars(_UNSENT_IN_CHAT, {"chat_id": chat_id, "room": len(own) + 1})
        if any(row_id not in own for row_id in unsent):
            busy.add(chat_id)
    return busy


def claim_at_once(row: OutboxMessage, worker: str, lease: timedelta) -> None:
    """A new row committed as already claimed by ``worker`` (see ``claim_due``)."""
    row.status = OutboxStatus.SENDING
    row.attempts = 1
    row.locked_by = worker
    row.locked_until = clock.now() + lease


def mark_sent(row: OutboxMessage, message_id: int | None) -> None:
    row.status = OutboxStatus.SENT
    row.sent_at = clock.now()
    row.message_id = message_id
    row.locked_by = None
    row.locked_until = None


def reschedule(row: OutboxMessage, delay: timedelta, error: str | None, *, count: bool) -> None:
    """Back to pending, due again after ``delay``; ``count=False`` gives the attempt back."""
    row.status = OutboxStatus.PENDING
    row.available_at = clock.now() + delay
    row.locked_by = None
    row.locked_until = None
    if not count:
        row.attempts = max(row.attempts - 1, 0)
    if error is not None:
        row.error = error[:2000]


def mark_failed(row: OutboxMessage, error: str) -> None:
    row.status = OutboxStatus.FAILED
    row.error = error[:2000]
    row.locked_by = None
    row.locked_until = None


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    sending: int
    failed: int
    oldest_due_age_seconds: float


async def outbox_health(session: AsyncSession) -> OutboxHealth:
    counts = dict(
        (
            await session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.status != OutboxStatus.SENT)
                .group_by(OutboxMessage.status)
            )
        ).all()
    )
    now = clock.now()
    oldest = await session.scalar(
        select(func.min(OutboxMessage.available_at)).where(
            OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.available_at <= now
        )
    )
    if oldest is not None and oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    age = (now - oldest).total_seconds() if oldest else 0.0
    return OutboxHealth(
        counts.get(OutboxStatus.PENDING, 0),
        counts.get(OutboxStatus.SENDING, 0),
        counts.get(OutboxStatus.FAILED, 0),
        max(age, 0.0),
    )


_OUTBOX_TABLE: Any = OutboxMessage.__table__
# The per-send statements, Core and built once: through the ORM, a DELETE of one row cost
# twice the Python of the same statement on the table (bench_statements, docs/benchmarks.md).
_DELETE_SENT = delete(_OUTBOX_TABLE).where(
    _OUTBOX_TABLE.c.id == bindparam("outbox_id"),
    _OUTBOX_TABLE.c.status == OutboxStatus.SENDING,
)
_SENT_GONE = _DELETE_SENT.returning(_OUTBOX_TABLE.c.id).cte("sent_gone")
_RECORD_SENT = (
    EXCHANGE_TABLE.insert()
    .from_select(
        OUTBOUND_COLUMNS,
        select(
            *(bindparam(name, type_=EXCHANGE_TABLE.c[name].type) for name in OUTBOUND_COLUMNS)
        ).where(exists(select(_SENT_GONE.c.id))),
    )
    .add_cte(_SENT_GONE)
)
_UNSENT_IN_CHAT = (
    select(_OUTBOX_TABLE.c.id)
    .where(
        _OUTBOX_TABLE.c.chat_id == bindparam("chat_id"),
        or_(
            _OUTBOX_TABLE.c.status == OutboxStatus.PENDING,
            _OUTBOX_TABLE.c.status == OutboxStatus.SENDING,
        ),
    )
    .limit(bindparam("room"))
)
