"""Joining and leaving the team: a role given by an admin or redeemed from an invite.

A change of role also takes away what the new role may not finish: the report, request or
contact being written, and an open question asked under the old role
(``models.conversation.end_not_allowed``). Kept apart from :mod:`models.accounts`, which the
other models import.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from models.accounts import STAFF_ROLES, Account, Invite, audit
from models.base import clock
from models.conversation import end_not_allowed
from models.db import rows_affected
from models.roles import Role, inviters_of, may_invite, raises

INVITE_LIFETIME = timedelta(hours=48)


async def set_role(
    session: AsyncSession, account: Account, role: Role, *, by: Account | None
) -> None:
    previous = account.role
    account.role = role
    if role in STAFF_ROLES and account.operator_code is None:
        account.operator_code = f"OP-{account.id:03d}"
    if role not in STAFF_ROLES:
        account.on_duty = False
    await end_not_allowed(session, account.id, role)
    audit(
        session,
        by,
        "role_changed",
        subject_type="account",
        subject_id=account.id,
        detail=f"{previous.value}->{role.value}",
    )


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
    if rows_affected(result) != 1:
        return False
    set_committed_value(invite, "used_at", now)
    set_committed_value(invite, "used_by", account.id)
    return True
