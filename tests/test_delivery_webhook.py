"""Webhook mode: the secret is checked, and 200 means the inbox holds the update."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.app import HelpCenterBot
from bot.runtime import Runtime
from bot.webhook import SECRET_HEADER, make_asgi_app
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange, InboxStatus
from tests.conftest import BotHarness, make_settings

SECRET = "s3cret-token_for-tests"
PERSON = 5001


def client_for(runtime: Runtime) -> httpx.AsyncClient:
    app = make_asgi_app(runtime, SECRET)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


def an_update(update_id: int, text: str = "/help") -> dict[str, object]:
    user = {"id": PERSON, "is_bot": False, "first_name": "Ada", "language_code": "it"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": user,
            "chat": {"id": PERSON, "type": "private", "first_name": "Ada"},
            "date": 1_700_000_000,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def test_a_request_without_the_secret_is_refused_and_logged(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    running: HelpCenterBot = bot.running
    caplog.set_level(logging.WARNING, logger="bot.webhook")
    async with client_for(running.runtime) as client:
        missing = await client.post("/telegram", json=an_update(1))
        wrong = await client.post("/telegram", json=an_update(2), headers={SECRET_HEADER: "x"})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "missing secret token" in caplog.text and "wrong secret token" in caplog.text
    assert "Ada" not in caplog.text
    async with bot.session() as session:
        assert await session.scalar(select(Exchange.id)) is None


async def test_a_stored_update_is_answered_200_and_handled_once(bot: BotHarness) -> None:
    headers = {SECRET_HEADER: SECRET}
    async with client_for(bot.running.runtime) as client:
        first = await client.post("/telegram", json=an_update(10), headers=headers)
        again = await client.post("/telegram", json=an_update(10), headers=headers)  # redelivery
    assert (first.status_code, again.status_code) == (200, 200)
    await bot.known(PERSON)
    await bot.running.worker.drain()

    async with bot.session() as session:
        rows = (
            await session.scalars(select(Exchange).where(Exchange.direction == Direction.IN))
        ).all()
    assert [(r.update_id, r.status) for r in rows] == [(10, InboxStatus.DONE)]
    assert len(bot.fake.texts(PERSON)) == 1


async def test_a_database_failure_answers_503_so_telegram_retries(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/helpcenter.db"
    from bot.i18n import Catalogs

    settings = make_settings(url)
    runtime = Runtime(settings, make_sessionmaker(make_engine(url)), Catalogs("it"))
    async with client_for(runtime) as client:
        answer = await client.post("/telegram", json=an_update(1), headers={SECRET_HEADER: SECRET})
        health = await client.get("/healthz")
    assert answer.status_code == 503
    assert health.status_code == 503 and health.json()["database"] == "unreachable"


async def test_health_and_metrics(bot: BotHarness) -> None:
    async with client_for(bot.running.runtime) as client:
        await client.post("/telegram", json=an_update(20), headers={SECRET_HEADER: SECRET})
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")
    report = health.json()
    assert health.status_code == 200 and report["ok"] is True
    assert report["inbox"]["pending"] == 1 and report["inbox"]["parked"] == 0
    assert report["outbox"]["backlog"] == 0
    for name in (
        "helpcenter_updates_received_total",
        "helpcenter_update_handling_seconds",
        "helpcenter_inbox_lag_seconds",
        "helpcenter_outbox_backlog",
        "helpcenter_urgent_first_alert_seconds",
    ):
        assert name in metrics.text
