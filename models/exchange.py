"""The exchange log: every update in and every message out, one row each.

Inbound rows *are* the inbox: the fetch loop (or the webhook) inserts the raw update keyed by
its unique ``update_id`` and commits before Telegram is told it arrived; workers then claim
rows, handle them, and mark them done in the same transaction as the handler's changes. One
table, so the log and the inbox cannot disagree.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, clock
from models.db import insert_ignore_many, is_database_outage, rows_affected
from models.storable import storable_json, storable_text

log = logging.getLogger(__name__)


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


def _enum(e: type[enum.Enum]) -> Any:
    return Enum(e, native_enum=False, length=12, values_callable=lambda m: [x.value for x in m])


class Exchange(Base):
    __tablename__ = "exchange"
    __table_args__ = (
        Index("ix_exchange_inbox_claim", "status", "available_at"),
        Index("ix_exchange_chat_order", "chat_id", "update_id"),
        # The claim's "is an earlier update of this chat unfinished?" reads only those rows.
        Index("ix_exchange_chat_unfinished", "chat_id", "status", "update_id"),
        Index("ix_exchange_occurred", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    update_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(default=clock.now)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    role: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    flow: Mapped[str | None] = mapped_column(String(40))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    in_reply_to: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    # Inbox state, inbound rows only.
    status: Mapped[InboxStatus | None] = mapped_column(_enum(InboxStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many times a worker took the update: more than one means a handling was cut short
    # (crash, kill, lease expiry, database gone), which is when a direct reply may repeat.
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    available_at: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]


@dataclass(frozen=True)
class UpdateFacts:
    """What the log keeps about an update, read from its Telegram JSON."""

    kind: str
    chat_id: int | None
    user_id: int | None
    message_id: int | None
    text: str | None
    # The sender's Telegram language, for an apology that cannot wait for a parsed update.
    language_code: str | None = None


_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post")
_CONTENT_KINDS = (
    "location",
    "venue",
    "contact",
    "photo",
    "document",
    "sticker",
    "voice",
    "video",
    "audio",
    "animation",
    "video_note",
    "poll",
    "dice",
)


def describe_update(raw: dict[str, Any]) -> UpdateFacts:
    """The facts of an update, read from plain JSON: never raises, whatever its shape (a field
    of an unexpected type reads as absent), so an odd update cannot stop its batch."""
    for key in _MESSAGE_KEYS:
        if key in raw:
            return _describe_message(_object(raw[key]), edited=key.startswith("edited"))
    if "callback_query" in raw:
        query = _object(raw["callback_query"])
        message = _object(query.get("message"))
        sender = _object(query.get("from"))
        user_id = _integer(sender.get("id"))
        chat_id = _integer(_object(message.get("chat")).get("id"))
        return UpdateFacts(
            "callback",
            user_id if chat_id is None else chat_id,
            user_id,
            _integer(message.get("message_id")),
            _string(query.get("data")),
            _string(sender.get("language_code")),
        )
    for key, value in raw.items():
        if isinstance(value, dict) and key != "update_id":
            sender = _object(value.get("from") or value.get("user"))
            user_id = _integer(sender.get("id"))
            chat_id = _integer(_object(value.get("chat")).get("id"))
            return UpdateFacts(
                key,
                user_id if chat_id is None else chat_id,
                user_id,
                None,
                None,
                _string(sender.get("language_code")),
            )
    return UpdateFacts("other", None, None, None, None)


def _describe_message(message: dict[str, Any], *, edited: bool) -> UpdateFacts:
    text = _string(message.get("text"))
    caption = _string(message.get("caption"))
    if edited:
        kind = "edited_message"
    elif text is not None and text.startswith("/"):
        kind = "command"
    elif text is not None:
        kind = "text"
    else:
        kind = next((k for k in _CONTENT_KINDS if k in message), "other")
    sender = _object(message.get("from"))
    return UpdateFacts(
        kind,
        _integer(_object(message.get("chat")).get("id")),
        _integer(sender.get("id")),
        _integer(message.get("message_id")),
        text if text is not None else caption,
        _string(sender.get("language_code")),
    )


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as text (PostgreSQL's JSONB refuses them).

    Python's JSON reader accepts ``NaN``; stored as text, a handler sees a string where a
    number was expected and refuses it like any other bad value, on both backends alike.
    Text PostgreSQL cannot hold (U+0000, lone surrogates) is cleaned by the engine's JSON
    serialiser (``models.storable``).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def store_updates(
    session: AsyncSession, updates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Put raw updates into the inbox; a redelivered ``update_id`` is ignored.

    Their text is made :func:`~models.storable.storable_text` (and their payload, by the
    engine's JSON serialiser), so U+0000 or half an emoji cannot refuse a batch. An update
    that still cannot be stored fails alone (see :func:`_store_one_by_one`). Returns the rows
    written, for :func:`claim_stored` in the same transaction. Must be the first work of the
    session's transaction: the batch is rolled back to find the row at fault.
    """
    now = clock.now()
    rows = [_inbound_row(raw, now) for raw in updates]
    try:
        await insert_ignore_many(session, EXCHANGE_TABLE, rows, ["update_id"])
        return rows
    except Exception:  # which row, and whether the database is there at all, is found below
        await session.rollback()
    await _store_one_by_one(session, rows)
    return rows


def _inbound_row(raw: dict[str, Any], now: datetime) -> dict[str, Any]:
    facts = describe_update(raw)
    return {
        "direction": Direction.IN,
        "update_id": raw["update_id"],
        "occurred_at": now,
        "chat_id": facts.chat_id,
        "user_id": facts.user_id,
        "message_id": facts.message_id,
        "kind": facts.kind,
        "text": None if facts.text is None else storable_text(facts.text),
        "payload": json_safe(raw),
        "status": InboxStatus.PENDING,
        "attempts": 0,
        "claims": 0,
        "available_at": now,
    }


async def _store_one_by_one(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Each row in a savepoint of its own; one the database refuses is kept as a husk.

    The husk is the update's row parked as failed, without its text and payload (``error``
    says why), then without its ids too if one of them was the trouble: the batch can be
    confirmed to Telegram, the chat is not blocked, and an operator sees what was lost. When
    not even a husk can be written, the database itself is failing: that error is raised,
    nothing is committed, and Telegram delivers the batch again.
    """
    for row in rows:
        try:
            async with session.begin_nested():
                await insert_ignore_many(session, EXCHANGE_TABLE, [row], ["update_id"])
        except Exception as exc:  # this row's own trouble, unless its husk fails too
            if is_database_outage(exc):
                raise
            await _store_husk(session, row, exc)
            log.error("update %s not storable (%s): parked", row["update_id"], type(exc).__name__)


async def _store_husk(session: AsyncSession, row: dict[str, Any], error: Exception) -> None:
    husk = {
        **row,
        "text": None,
        "payload": {"update_id": row["update_id"]},
        "status": InboxStatus.FAILED,
        "handled_at": row["occurred_at"],
        "available_at": None,
        "error": f"not storable: {type(error).__name__}",
    }
    without_ids = {**husk, "chat_id": None, "user_id": None, "message_id": None}
    for candidate in (husk, without_ids):
        try:
            async with session.begin_nested():
                await insert_ignore_many(session, EXCHANGE_TABLE, [candidate], ["update_id"])
            return
        except Exception as exc:
            if is_database_outage(exc):
                raise
            error = exc
    raise error


@dataclass
class ClaimedUpdate:
    """An update this worker now holds: what handling it needs, read with the claim."""

    id: int
    update_id: int
    chat_id: int | None
    payload: dict[str, Any] | None
    claims: int
    locked_until: datetime


async def claim_updates(
    session: AsyncSession, worker: str, *, limit: int, lease: timedelta, skip_locked: bool
) -> list[ClaimedUpdate]:
    """Claim up to ``limit`` updates, at most one per chat, each the oldest unfinished in its chat.

    An update is claimable when it is pending (or its lease expired) and no earlier update of
    the same chat is still pending or being handled: a conversation never sees its steps
    swapped, while different chats go in parallel. On PostgreSQL the rows are locked with
    ``FOR UPDATE SKIP LOCKED`` so several workers never claim the same row.

    Both statements are built once (Core, no ORM objects): the claim runs every few updates.
    """
    now = clock.now()
    query = _CLAIMABLE_LOCKED if skip_locked else _CLAIMABLE
    rows = (await session.execute(query, {"now": now, "limit": limit})).all()
    candidates = _one_per_chat(rows)
    if not candidates:
        return []
    locked_until = now + lease
    # One UPDATE for the whole batch, guarded by the claim condition itself: on SQLite the
    # SELECT ran outside a write transaction, so only a row still claimable may be taken (a
    # row claimed or finished meanwhile no longer is); PostgreSQL's row locks make this a
    # no-op there. RETURNING tells which rows this claim took.
    result = await session.execute(
        _TAKE,
        {
            "ids": [row.id for row in candidates],
            "now": now,
            "worker": worker,
            "locked_until": locked_until,
        },
    )
    taken = {row_id: claims for row_id, claims in result}
    return [
        ClaimedUpdate(
            id=row.id,
            update_id=row.update_id,
            chat_id=row.chat_id,
            payload=row.payload,
            claims=taken[row.id],
            locked_until=locked_until,
        )
        for row in candidates
        if row.id in taken
    ]


async def claim_stored(
    session: AsyncSession,
    worker: str,
    stored: list[dict[str, Any]],
    *,
    limit: int,
    lease: timedelta,
) -> list[ClaimedUpdate]:
    """Claim, in the transaction that has just stored these rows (:func:`store_updates`),
    those the worker can start now: the first of each chat, up to ``limit`` of them, unless an
    earlier unfinished update of the chat holds it back (the rules of :func:`claim_updates`; a
    slot given to a chat held back stays free for the worker's own claim). One ``UPDATE …
    RETURNING``: the payloads are known already, taken as the database holds them, so the
    claim reads nothing back (a statement and a round trip per update less at the load people
    produce, ``bench_steady``). A row parked as unstorable is not claimable; an update stored
    earlier and still waiting is left to :func:`claim_updates`, and so is one stored by another
    worker: rows of another transaction are not this one's to lock.
    """
    candidates = {
        int(row["update_id"]): row
        for row in _one_per_chat(stored, chat_of=itemgetter("chat_id"))[:limit]
    }
    if not candidates:
        return []
    now = clock.now()
    locked_until = now + lease
    result = await session.execute(
        _TAKE_STORED,
        {
            "update_ids": list(candidates),
            "now": now,
            "worker": worker,
            "locked_until": locked_until,
        },
    )
    return [
        ClaimedUpdate(
            id=row_id,
            update_id=update_id,
            chat_id=chat_id,
            payload=_as_stored(candidates[update_id]["payload"]),
            claims=claims,
            locked_until=locked_until,
        )
        for row_id, update_id, chat_id, claims in sorted(result, key=lambda row: row[1])
    ]


def _as_stored(payload: dict[str, Any]) -> dict[str, Any]:
    """A row's payload (made :func:`json_safe` by the store) as reading it back would give it."""
    stored: dict[str, Any] = json.loads(storable_json(payload))
    return stored


def _one_per_chat(rows: Any, chat_of: Callable[[Any], Any] = attrgetter("chat_id")) -> list[Any]:
    """The first row of each chat, in order (a row without a chat stands alone)."""
    candidates: list[Any] = []
    seen_chats: set[int | None] = set()
    for row in rows:
        chat_id = chat_of(row)
        if chat_id is not None and chat_id in seen_chats:
            continue
        seen_chats.add(chat_id)
        candidates.append(row)
    return candidates


def _claim_statements() -> tuple[Any, Any, Any, Any]:
    table = EXCHANGE_TABLE
    earlier = table.alias("earlier")
    now: Any = bindparam("now")
    claimable = or_(
        and_(table.c.status == InboxStatus.PENDING, table.c.available_at <= now),
        and_(table.c.status == InboxStatus.PROCESSING, table.c.locked_until < now),
    )
    blocked_by_earlier = exists().where(
        earlier.c.chat_id == table.c.chat_id,
        earlier.c.direction == Direction.IN,
        earlier.c.update_id < table.c.update_id,
        earlier.c.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]),
    )
    claimable_rows = (
        select(table.c.id, table.c.update_id, table.c.chat_id, table.c.payload)
        .where(table.c.direction == Direction.IN, claimable, ~blocked_by_earlier)
        .order_by(table.c.update_id)
        .limit(bindparam("limit"))
    )
    claimed = {
        "status": InboxStatus.PROCESSING,
        "locked_by": bindparam("worker"),
        "locked_until": bindparam("locked_until"),
        "claims": func.coalesce(table.c.claims, 0) + 1,
    }
    take = (
        update(table)
        .where(table.c.id.in_(bindparam("ids", expanding=True)), claimable)
        .values(claimed)
        .returning(table.c.id, table.c.claims)
    )
    take_stored = (
        update(table)
        .where(
            table.c.update_id.in_(bindparam("update_ids", expanding=True)),
            table.c.direction == Direction.IN,
            claimable,
            ~blocked_by_earlier,
        )
        .values(claimed)
        .returning(table.c.id, table.c.update_id, table.c.chat_id, table.c.claims)
    )
    return claimable_rows, claimable_rows.with_for_update(skip_locked=True), take, take_stored


async def finish_update(
    session: AsyncSession,
    row_id: int,
    worker: str,
    *,
    account_id: int | None,
    role: str | None,
    flow: str | None,
    subject_type: str | None,
    subject_id: int | None,
) -> bool:
    """Mark a claimed update done (one UPDATE, in the handler's transaction). False if the
    row is no longer this worker's claim, in which case the caller must roll back.

    ``locked_by`` stays, naming the worker that handled it (for audits).
    """
    context = {
        "account_id": account_id,
        "role": role,
        "flow": flow,
        "subject_type": subject_type,
        "subject_id": subject_id,
    }
    # Core, built once: this runs for every update that wrote.
    result = await session.execute(_FINISH, _done_mark(row_id, worker, clock.now(), context))
    return rows_affected(result) == 1


def _done_mark(row_id: int, worker: str, now: datetime, context: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``_FINISH`` for one row: done, still naming its worker (for audits)."""
    return {
        "row_id": row_id,
        "worker": worker,
        "status": InboxStatus.DONE,
        "handled_at": now,
        "locked_until": None,
        **context,
    }


EXCHANGE_TABLE: Table = Exchange.__table__  # type: ignore[assignment]
# The per-update statements, built once (building one costs more Python than running it).
_INSERT_OUTBOUND = insert(EXCHANGE_TABLE)
_FINISH = update(EXCHANGE_TABLE).where(
    EXCHANGE_TABLE.c.id == bindparam("row_id"),
    EXCHANGE_TABLE.c.status == InboxStatus.PROCESSING,
    EXCHANGE_TABLE.c.locked_by == bindparam("worker"),
)
_HOLD = select(EXCHANGE_TABLE.c.id).where(
    EXCHANGE_TABLE.c.id == bindparam("row_id"),
    EXCHANGE_TABLE.c.status == InboxStatus.PROCESSING,
    EXCHANGE_TABLE.c.locked_by == bindparam("worker"),
)
_HOLD_LOCKED = _HOLD.with_for_update()
_CLAIMABLE, _CLAIMABLE_LOCKED, _TAKE, _TAKE_STORED = _claim_statements()


async def record_failure(
    session: AsyncSession, update_id: int, error: str, *, max_attempts: int
) -> bool:
    """Count a failed attempt; park the update as failed after ``max_attempts``. True if parked."""
    row = await session.scalar(select(Exchange).where(Exchange.update_id == update_id))
    if row is None:
        return False
    row.attempts += 1
    row.error = error[:2000]
    row.locked_by = None
    row.locked_until = None
    if row.attempts >= max_attempts:
        row.status = InboxStatus.FAILED
        row.handled_at = clock.now()
        return True
    row.status = InboxStatus.PENDING
    row.available_at = clock.now() + timedelta(seconds=2**row.attempts)
    return False


async def retry_later(session: AsyncSession, update_id: int, delay: timedelta) -> None:
    """Put an update back without counting an attempt: the failure was not the update's.

    Used when the database or Telegram was unreachable while handling: those outages end by
    themselves, and parking a person's message because the network blinked would be wrong.
    """
    await session.execute(
        update(Exchange)
        .where(Exchange.update_id == update_id, Exchange.status == InboxStatus.PROCESSING)
        .values(
            status=InboxStatus.PENDING,
            locked_by=None,
            locked_until=None,
            available_at=clock.now() + delay,
        )
    )


async def hold_claim(session: AsyncSession, row_id: int, worker: str, *, skip_locked: bool) -> bool:
    """True if the claimed row is still this worker's, now locked for the whole handling.

    On PostgreSQL the row lock (``FOR UPDATE``) is held until the handler's commit: a worker
    whose lease ran out while it was still handling keeps the row, and a second worker cannot
    take it (claims skip locked rows), so an update is never handled twice
    at once. A crashed worker's lock dies with its connection. SQLite has one process and one
    writer, so the ``locked_by`` check is enough there. Only the id is read: the payload came
    with the claim.
    """
    # With ``skip_locked`` (PostgreSQL): wait for the lock rather than skip it: another
    # worker's claim (``FOR UPDATE SKIP LOCKED`` … re-checked) can hold this row for an
    # instant; skipping would leave the update claimed and unhandled until its lease runs
    # out. Claims never wait for locks, so this wait is short and cannot deadlock; if the row
    # changed hands, the re-check of the WHERE clause on its new version returns nothing.
    query = _HOLD_LOCKED if skip_locked else _HOLD
    found = await session.scalar(query, {"row_id": row_id, "worker": worker})
    return found is not None


async def release_rows(session: AsyncSession, worker: str, row_ids: list[int]) -> None:
    """Put back claimed rows this worker never started (its local queue at shutdown)."""
    await session.execute(
        update(Exchange)
        .where(
            Exchange.id.in_(row_ids),
            Exchange.status == InboxStatus.PROCESSING,
            Exchange.locked_by == worker,
        )
        .values(status=InboxStatus.PENDING, locked_by=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )


async def release_claims(session: AsyncSession, worker: str | None = None) -> int:
    """Put back updates left "processing" by a worker that stopped (all of them if None)."""
    statement = update(Exchange).where(Exchange.status == InboxStatus.PROCESSING)
    if worker is not None:
        statement = statement.where(Exchange.locked_by == worker)
    result = await session.execute(
        statement.values(status=InboxStatus.PENDING, locked_by=None, locked_until=None)
    )
    return rows_affected(result)


async def failed_updates(session: AsyncSession) -> list[Exchange]:
    query = (
        select(Exchange).where(Exchange.status == InboxStatus.FAILED).order_by(Exchange.update_id)
    )
    return list(await session.scalars(query))


@dataclass(frozen=True)
class InboxHealth:
    pending: int
    processing: int
    failed: int
    oldest_pending_age_seconds: float


async def inbox_health(session: AsyncSession) -> InboxHealth:
    counts = dict(
        (
            await session.execute(
                select(Exchange.status, func.count())
                .where(
                    Exchange.status.in_(
                        [InboxStatus.PENDING, InboxStatus.PROCESSING, InboxStatus.FAILED]
                    )
                )
                .group_by(Exchange.status)
            )
        ).all()
    )
    oldest = await session.scalar(
        select(func.min(Exchange.occurred_at)).where(Exchange.status == InboxStatus.PENDING)
    )
    if oldest is not None and oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    age = (clock.now() - oldest).total_seconds() if oldest else 0.0
    return InboxHealth(
        counts.get(InboxStatus.PENDING, 0),
        counts.get(InboxStatus.PROCESSING, 0),
        counts.get(InboxStatus.FAILED, 0),
        max(age, 0.0),
    )


async def log_outbound_rows(
    session: AsyncSession, rows: list[dict[str, Any]], **context: Any
) -> None:
    """Write outbound log rows with one multi-row INSERT, in the session's transaction."""
    if rows:
        await session.execute(_INSERT_OUTBOUND, outbound_values(rows, **context))


def outbound_values(rows: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
    """The outbound log rows for the messages one exchange sent (see ``log_outbound_rows``)."""
    now = clock.now()
    return [
        {
            "direction": Direction.OUT,
            "occurred_at": now,
            "chat_id": row["chat_id"],
            "message_id": row["message_id"],
            "kind": row["method"],
            "text": None if row["text"] is None else storable_text(row["text"]),
            "payload": row["payload"],
            "error": None if row.get("error") is None else storable_text(row["error"]),
            "attempts": 0,
            "claims": 0,
            "account_id": context.get("account_id"),
            "role": context.get("role"),
            "flow": context.get("flow"),
            "subject_type": context.get("subject_type"),
            "subject_id": context.get("subject_id"),
            "in_reply_to": context.get("in_reply_to"),
        }
        for row in rows
    ]


# The columns ``outbound_values`` fills, in its order (an INSERT … SELECT names them).
OUTBOUND_COLUMNS = tuple(
    outbound_values(
        [{"method": "", "chat_id": None, "message_id": None, "text": None, "payload": None}]
    )[0]
)
