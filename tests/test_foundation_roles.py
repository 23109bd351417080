"""Roles, invites and the per-role command menu."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import features_commands
from models.accounts import Account, AuditEntry, Invite
from models.base import clock
from models.roles import GRANTS, Role
from tests.conftest import ADMIN_ID, BotHarness

COORDINATOR = 3001
NEWCOMER = 3002
OTHER = 3003

PRIVILEGED = [c for commands in features_commands() for c in commands if c.permission]


async def _account(bot: BotHarness, telegram_id: int) -> Account:
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == telegram_id))
    assert account is not None
    return account


async def _invite_link(bot: BotHarness, inviter: int, role: str) -> str:
    reply = (await bot.says(inviter, f"/invite {role}"))[-1]["text"]
    link = next(word for word in reply.split() if "start=" in word)
    return link.split("start=")[1]


async def test_an_admin_is_recognised_from_the_settings(bot: BotHarness) -> None:
    await bot.says(ADMIN_ID, "/start")
    assert (await _account(bot, ADMIN_ID)).role is Role.ADMIN


async def test_an_invite_grants_its_role_once_and_updates_the_menu(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    code = await _invite_link(bot, COORDINATOR, "operator")

    welcome = (await bot.says(NEWCOMER, f"/start {code}"))[-1]["text"]
    reused = (await bot.says(OTHER, f"/start {code}"))[-1]["text"]

    assert (await _account(bot, NEWCOMER)).role is Role.OPERATOR
    assert (await _account(bot, OTHER)).role is Role.PUBLIC
    assert "operatore" in welcome.lower()
    assert "già stato usato" in reused
    menu = {c["command"] for c in bot.fake.commands_for(NEWCOMER)}
    assert "invite" not in menu and "help" in menu


async def test_an_expired_invite_is_refused_politely(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    code = await _invite_link(bot, COORDINATOR, "volunteer")
    clock.advance(timedelta(hours=48, seconds=1).total_seconds())

    answer = (await bot.says(NEWCOMER, f"/start {code}"))[-1]["text"]

    assert "scaduto" in answer
    assert (await _account(bot, NEWCOMER)).role is Role.PUBLIC


async def test_an_unknown_invite_code_is_refused(bot: BotHarness) -> None:
    answer = (await bot.says(NEWCOMER, "/start not-a-real-code"))[-1]["text"]
    assert "non è valido" in answer
    assert (await _account(bot, NEWCOMER)).role is Role.PUBLIC


async def test_a_coordinator_cannot_invite_an_admin(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    answer = (await bot.says(COORDINATOR, "/invite admin"))[-1]["text"]
    async with bot.session() as session:
        invites = list(await session.scalars(select(Invite)))
    assert invites == []
    assert "amministratore" in answer


@pytest.mark.parametrize("command", PRIVILEGED, ids=lambda c: c.name)
async def test_every_privileged_command_is_refused_to_roles_without_it(
    bot: BotHarness, command: object
) -> None:
    assert command.permission is not None  # type: ignore[attr-defined]
    allowed = GRANTS[command.permission]  # type: ignore[attr-defined]
    for offset, role in enumerate(Role):
        user = 5000 + offset
        await bot.grant(user, role)
        replies = await bot.says(user, f"/{command.name}")  # type: ignore[attr-defined]
        async with bot.session() as session:
            account = await session.scalar(select(Account).where(Account.telegram_id == user))
            assert account is not None
            denials = list(
                await session.scalars(
                    select(AuditEntry).where(
                        AuditEntry.actor_id == account.id, AuditEntry.action == "denied"
                    )
                )
            )
        if role in allowed:
            assert denials == [], f"{role} was refused /{command.name}"  # type: ignore[attr-defined]
        else:
            assert len(denials) == 1, f"{role} was not refused /{command.name}"  # type: ignore[attr-defined]
            assert "riservat" in replies[-1]["text"]
