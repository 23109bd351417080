"""Fixtures and helpers for the delivery tests (inbox, outbox, webhook, limits)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.dispatcher import dispatch_all
from models.accounts import Account
from models.outbox import OutboxMessage, enqueue
from tests.conftest import BotHarness, make_settings


@pytest.fixture
async def courier(database_url: str) -> AsyncIterator[BotHarness]:
    """The real bot with generous per-chat limits, so tests are not slowed by spacing."""
    settings = make_settings(
        database_url,
        rate_private_chat_per_second=1000,
        rate_global_per_second=1000,
        outbox_send_timeout_seconds=0.3,
    )
    async with BotHarness(settings) as harness:
        yield harness


async def alert(
    harness: BotHarness, chat_id: int, text: str, *, kind: str = "alert", **extra: Any
) -> int:
    """Enqueue one message as a feature would, in its own committed transaction."""
    async with harness.session() as session:
        row = enqueue(session, chat_id=chat_id, kind=kind, params={"text": text}, **extra)
        await session.commit()
        return row.id


async def send_due(harness: BotHarness) -> int:
    return await dispatch_all(harness.application)


async def outbox_row(harness: BotHarness, row_id: int) -> OutboxMessage:
    async with harness.session() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


async def account(harness: BotHarness, telegram_id: int) -> Account:
    async with harness.session() as session:
        found = await session.scalar(select(Account).where(Account.telegram_id == telegram_id))
        assert found is not None
        return found
