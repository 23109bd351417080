"""Accounts (everyone who writes to the bot), invites and the audit log: the tables and
what reads or marks an account by itself.

Everything else imports this module, so it imports none of the features: a change of role and
invites (which also drop the drafts the new role may not finish) are in :mod:`models.team`,
the sender read at the start of each update in :mod:`models.senders`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    String,
    Text,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, clock
from models.db import insert_ignore
from models.roles import Role

# ``last_seen_at`` is rewritten only when it is this much out of date: a write on every
# update would make each one a write transaction from its first step (on SQLite, the single
# writer's lock taken before the handler even starts) for a figure nobody needs to the second.
LAST_SEEN_GRANULARITY = timedelta(minutes=10)
STAFF_ROLES = frozenset({Role.OPERATOR, Role.COORDINATOR, Role.ADMIN})


def role_column() -> Any:
    return Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Account(Base):
    """A Telegram user known to the bot. Public by default; a role is granted, never assumed."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    role: Mapped[Role] = mapped_column(role_column(), default=Role.PUBLIC)
    language: Mapped[str | None] = mapped_column(String(8))
    # Kept for staff only: the requester of urgent help is told who is coming.
    display_name: Mapped[str | None] = mapped_column(String(64))
    # Staff only too: their Telegram @username (lower case), so /staffof can find them by it.
    username: Mapped[str | None] = mapped_column(String(32), index=True)
    operator_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    on_duty_since: Mapped[datetime | None]
    unreachable_since: Mapped[datetime | None]
    unreachable_reason: Mapped[str | None] = mapped_column(String(120))
    privacy_accepted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_seen_at: Mapped[datetime] = mapped_column(default=clock.now)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class Invite(Base):
    """A one-time deep link that grants a role; expires after 48 hours."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[Role] = mapped_column(role_column())
    created_by: Mapped[int] = mapped_column(ForeignKey("account.id"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime]
    used_by: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    used_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did or read what: privileged actions, denials, role changes, reads of people."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(Text)


def audit(
    session: AsyncSession,
    actor: Account | None,
    action: str,
    *,
    subject_type: str | None = None,
    subject_id: int | None = None,
    detail: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=clock.now(),
        actor_id=actor.id if actor else None,
        actor_role=actor.role.value if actor else None,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail,
    )
    session.add(entry)
    return entry


async def account_by_id(session: AsyncSession, account_id: int | None) -> Account | None:
    """The account with this id; None for no id (a case nobody owns) or an id gone."""
    return await session.get(Account, account_id) if account_id is not None else None


async def account_by_telegram_id(session: AsyncSession, telegram_id: int) -> Account | None:
    return await session.scalar(select(Account).where(Account.telegram_id == telegram_id))


async def account_by_username(session: AsyncSession, username: str) -> Account | None:
    """A staff account by its Telegram @username (kept for staff who have written to us)."""
    name = username.strip().removeprefix("@").lower()
    if not name:
        return None
    return await session.scalar(select(Account).where(Account.username == name).limit(1))


async def get_or_create_account(
    session: AsyncSession, telegram_id: int, *, admin_ids: frozenset[int] = frozenset()
) -> tuple[Account, bool]:
    """The account of a Telegram user, created on first contact (safe under concurrency)."""
    account = await account_by_telegram_id(session, telegram_id)
    if account is not None:
        now = clock.now()
        if now - account.last_seen_at >= LAST_SEEN_GRANULARITY:
            account.last_seen_at = now
        return account, False
    role = Role.ADMIN if telegram_id in admin_ids else Role.PUBLIC
    now = clock.now()
    row = {"telegram_id": telegram_id, "role": role, "created_at": now, "last_seen_at": now}
    created = await insert_ignore(session, Account.__table__, [row], ["telegram_id"]) > 0
    account = await account_by_telegram_id(session, telegram_id)
    assert account is not None
    return account, created


async def list_accounts(session: AsyncSession, *, staff_only: bool = False) -> list[Account]:
    query = select(Account).order_by(Account.id)
    if staff_only:
        query = query.where(Account.role != Role.PUBLIC)
    return list(await session.scalars(query))


async def writable_with_role(session: AsyncSession, role: Role) -> list[Account]:
    """Everyone with ``role`` the bot can write to (a forgotten account's id is negative)."""
    query = select(Account).where(Account.role == role, Account.telegram_id > 0)
    return list(await session.scalars(query.order_by(Account.id)))


BLOCKED_REASON = "blocked the bot (my_chat_member)"


async def mark_unreachable(session: AsyncSession, telegram_id: int, reason: str) -> None:
    """Telegram refused a message for good (blocked, deactivated, chat not found): alerts go
    to others until the person is heard from again (:func:`heard_from`)."""
    account = await account_by_telegram_id(session, telegram_id)
    if account is not None and account.unreachable_since is None:
        account.unreachable_since = clock.now()
        account.unreachable_reason = reason[:120]


def heard_from(account: Account) -> datetime | None:
    """The person wrote, pressed a button or unblocked the bot: messages reach them again.

    Returns since when they had been unreachable (None if they were not), so that ``/duty``
    can tell an operator that alerts had not been reaching them.
    """
    since = account.unreachable_since
    if since is not None:
        account.unreachable_since = None
        account.unreachable_reason = None
    return since


async def bot_blocked_or_unblocked(
    session: AsyncSession, telegram_id: int, *, blocked: bool
) -> Account | None:
    """Telegram's ``my_chat_member`` for a private chat. Never creates an account: someone
    unknown (or erased with /forget) who blocks the bot stays unknown."""
    account = await account_by_telegram_id(session, telegram_id)
    if account is None:
        return None
    if blocked:
        await mark_unreachable(session, telegram_id, BLOCKED_REASON)
    else:
        heard_from(account)
    return account
