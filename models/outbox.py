"""The outbox: messages that follow from a state change, written in the same transaction.

An alert, an escalation or feedback to a reporter is a row here, committed together with the
case change that caused it; the dispatcher (``bot/dispatcher.py``) sends it within Telegram's
limits. ``dedupe_key`` makes "enqueue this step once" a database fact.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, clock


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "available_at"),)

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
    )
    session.add(message)
    return message
