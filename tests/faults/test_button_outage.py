"""The database goes away while a button press is being handled (PostgreSQL behind a proxy).

The running bot (inbox worker and outbox dispatcher, in this process) must handle the press
once the database is back: the interrupted handling sent nothing (its messages wait in its
transaction), the outage does not count as the press's fault, and the press is answered once.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select

from models.cases import Case
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange, InboxStatus
from models.outbox import OutboxMessage, OutboxStatus
from tests.cases_helpers import ANNA, POLICE, team
from tests.conftest import BotHarness, make_settings
from tests.faults.proxy import CuttableProxy
from tests.test_buttons_trust import police_ready_to_send

pytestmark = pytest.mark.postgres
OUTAGE_SECONDS = float(os.environ.get("FAULT_BUTTON_OUTAGE_SECONDS", "4"))


async def test_send_now_pressed_as_the_database_goes_away_is_handled_when_it_is_back(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: the outage is a proxy cutting its connections")
    target = urlsplit(database_url.replace("postgresql+asyncpg", "postgresql"))
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    via_proxy = database_url.replace(f":{target.port or 5432}/", f":{port}/")
    engine = make_engine(database_url)  # the test looks at the database directly
    sessionmaker = make_sessionmaker(engine)
    loop = asyncio.get_running_loop()
    cut = {"done": False}

    def outage_while_opening_the_case(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not cut["done"] and statement.lstrip().upper().startswith("INSERT INTO HELP_CASE"):
            cut["done"] = True
            proxy.outage()
            loop.call_later(OUTAGE_SECONDS, proxy.restore)

    async def handled() -> tuple[int, list[Exchange]]:
        async with sessionmaker() as session:
            cases = int(await session.scalar(select(func.count()).select_from(Case)) or 0)
            presses = await session.scalars(
                select(Exchange).where(
                    Exchange.direction == Direction.IN, Exchange.kind == "callback"
                )
            )
            return cases, list(presses)

    try:
        async with BotHarness(make_settings(via_proxy)) as bot:
            await team(bot)
            ready = await police_ready_to_send(bot)
            event.listen(
                bot.engine.sync_engine, "before_cursor_execute", outage_while_opening_the_case
            )
            bot.fake.user_presses(POLICE, ready, "🚨 Invia subito")
            assert await bot.running.poller.poll_once() == 1  # stored before the outage
            await bot.running.start()
            try:
                deadline = time.monotonic() + OUTAGE_SECONDS + 20
                while time.monotonic() < deadline:
                    cases, presses = await handled()
                    if cases and presses[0].status is InboxStatus.DONE:
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(1.0)  # let the dispatcher send the alerts
            finally:
                await bot.running.stop()
            assert cut["done"], "the outage came while the case was being opened"
            assert len(bot.fake.calls_of("answerCallbackQuery")) == 1
            cases, [press] = await handled()
            assert cases == 1
            assert press.status is InboxStatus.DONE and press.attempts == 0
            async with sessionmaker() as session:
                kinds = {
                    (row.chat_id, row.kind, row.status)
                    for row in await session.scalars(select(OutboxMessage))
                }
            assert not any(kind == "apology" for _, kind, _ in kinds)
            assert any(chat == ANNA and status == OutboxStatus.SENT for chat, _, status in kinds)
            assert "inviata" in (bot.fake.last_text(POLICE) or "")
    finally:
        await proxy.stop()
        await engine.dispose()
