"""Accounts (everyone who writes to the bot), their roles, invites and the audit log."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    ForeignKey,
    String,
    Text,
    and_,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, BigId, clock
from models.db import insert_ignore
from models.prompts import ChatPrompt, close_prompt
from models.roles import Role, inviters_of, may_invite, raises

INVITE_LIFETIME = timedelta(hours=48)
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


@dataclass
class Sender:
    """The sender of an update with what the first handlers need about them, read at once."""

    account: Account
    created: bool
    prompt: ChatPrompt | None = None  # the sender's open question in the update's chat, if any
    draft_flow: str | None = None  # the report or urgent request being written, if any
    complete: bool = False  # prompt and draft were read with the account


_SENDER_QUERY: Any = None


def _sender_query() -> Any:
    """Account + their prompt in this chat + the draft's flow: one statement, built once.

    The prompt is the person's, answered only in the chat where it was asked, hence the join
    on a parameter too; a missing chat (a button press) is passed as NULL, matching nothing.
    """
    global _SENDER_QUERY
    if _SENDER_QUERY is None:
        from models.cases import CaseDraft  # models.cases imports this module

        _SENDER_QUERY = (
            select(Account, ChatPrompt, CaseDraft.flow)
            .select_from(Account)
            .outerjoin(
                ChatPrompt,
                and_(
                    ChatPrompt.account_id == Account.id,
                    ChatPrompt.chat_id == bindparam("chat_id"),
                ),
            )
            .outerjoin(CaseDraft, CaseDraft.account_id == Account.id)
            .where(Account.telegram_id == bindparam("telegram_id"))
        )
    return _SENDER_QUERY


async def load_sender(
    session: AsyncSession,
    telegram_id: int,
    chat_id: int | None,
    *,
    admin_ids: frozenset[int] = frozenset(),
) -> Sender:
    """The sender's account (created on first contact), with the chat's open prompt and the
    sender's draft flow in the same round trip when the account already exists."""
    found = (
        await session.execute(_sender_query(), {"chat_id": chat_id, "telegram_id": telegram_id})
    ).first()
    if found is None:
        account, created = await get_or_create_account(session, telegram_id, admin_ids=admin_ids)
        return Sender(account, created)
    account, prompt, flow = found
    return _known_sender(account, prompt, flow)


def _known_sender(account: Account, prompt: ChatPrompt | None, flow: str | None) -> Sender:
    now = clock.now()
    if now - account.last_seen_at >= LAST_SEEN_GRANULARITY:
        account.last_seen_at = now
    if prompt is not None and prompt.until < now:
        prompt = None
    return Sender(account, False, prompt=prompt, draft_flow=flow, complete=True)


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


async def set_role(
    session: AsyncSession, account: Account, role: Role, *, by: Account | None
) -> None:
    previous = account.role
    account.role = role
    if role in STAFF_ROLES and account.operator_code is None:
        account.operator_code = f"OP-{account.id:03d}"
    if role not in STAFF_ROLES:
        account.on_duty = False
    await _drop_drafts_not_allowed(session, account)
    await close_prompt(session, account.id)  # asked under the old role
    audit(
        session,
        by,
        "role_changed",
        subject_type="account",
        subject_id=account.id,
        detail=f"{previous.value}->{role.value}",
    )


async def _drop_drafts_not_allowed(session: AsyncSession, account: Account) -> None:
    """A report, request or contact half-written under the old role is not finished under a
    new role that may not (each step checks too; this keeps no dead draft around)."""
    from models.cases import drop_drafts_not_allowed  # both import this module
    from models.contacts import drop_draft_if_not_allowed

    await drop_drafts_not_allowed(session, account)
    await drop_draft_if_not_allowed(session, account)


class InviteError(enum.StrEnum):
    NOT_ALLOWED = "not_allowed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"  # its author may no longer give this role
    NOT_HIGHER = "not_higher"  # the person's role is already as high (an invite never lowers)


async def create_invite(session: AsyncSession, inviter: Account, role: Role) -> Invite:
    if not may_invite(inviter.role, role):
        raise PermissionError(InviteError.NOT_ALLOWED)
    now = clock.now()
    invite = Invite(
        code=secrets.token_urlsafe(12),
        role=role,
        created_by=inviter.id,
        created_at=now,
        expires_at=now + INVITE_LIFETIME,
    )
    session.add(invite)
    await session.flush()
    audit(
        session,
        inviter,
        "invite_created",
        subject_type="invite",
        subject_id=invite.id,
        detail=role.value,
    )
    return invite


async def redeem_invite(session: AsyncSession, code: str, account: Account) -> Invite | InviteError:
    """Grant the invite's role once, and only as a promotion.

    Refusals are read first (unknown, used, expired, the author no longer allowed to give the
    role, a role the person would not gain by); then one conditional ``UPDATE`` claims the
    invite, and its row count decides: two people opening the link at once cannot both win,
    on SQLite (which has no row lock) as on PostgreSQL. A refused invite stays unused.
    """
    found = (
        await session.execute(
            select(Invite, Account.role)
            .join(Account, Account.id == Invite.created_by)
            .where(Invite.code == code)
        )
    ).first()
    if found is None:
        return InviteError.UNKNOWN
    invite, author_role = found
    now = clock.now()
    refused = _refusal(invite, author_role, account, now)
    if refused is not None:
        return refused
    if not await _claim_invite(session, invite, account, now):
        return InviteError.USED
    await set_role(session, account, invite.role, by=None)
    audit(
        session,
        account,
        "invite_redeemed",
        subject_type="invite",
        subject_id=invite.id,
        detail=invite.role.value,
    )
    return invite


def _refusal(
    invite: Invite, author_role: Role, account: Account, now: datetime
) -> InviteError | None:
    if invite.used_at is not None:
        return InviteError.USED
    if now >= invite.expires_at:
        return InviteError.EXPIRED
    if not may_invite(author_role, invite.role):
        return InviteError.REVOKED
    if not raises(account.role, invite.role):
        return InviteError.NOT_HIGHER
    return None


async def _claim_invite(
    session: AsyncSession, invite: Invite, account: Account, now: datetime
) -> bool:
    """Mark the invite used by ``account`` if nobody did meanwhile and its author may still
    give its role; True when this call won."""
    authors = select(Account.id).where(Account.role.in_(inviters_of(invite.role)))
    result = await session.execute(
        update(Invite)
        .where(
            Invite.id == invite.id,
            Invite.used_at.is_(None),
            Invite.expires_at > now,
            Invite.created_by.in_(authors),
        )
        .values(used_at=now, used_by=account.id)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    set_committed_value(invite, "used_at", now)
    set_committed_value(invite, "used_by", account.id)
    return True


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
