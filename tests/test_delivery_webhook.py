"""Webhook mode: the secret is checked, and 200 means the inbox holds the update."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.app import HelpCenterBot
from bot.dispatcher import dispatch_all
from bot.health import make_health_app
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


def health_client_for(runtime: Runtime) -> httpx.AsyncClient:
    app = make_health_app(runtime)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://health")


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
    await dispatch_all(bot.application)

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
    async with health_client_for(runtime) as client:
        health = await client.get("/healthz")
    assert answer.status_code == 503
    assert health.status_code == 503 and health.json()["database"] == "unreachable"


async def test_health_and_metrics(bot: BotHarness) -> None:
    async with client_for(bot.running.runtime) as client:
        await client.post("/telegram", json=an_update(20), headers={SECRET_HEADER: SECRET})
    async with health_client_for(bot.running.runtime) as client:
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


async def test_a_body_over_the_cap_is_refused_413_and_not_stored(bot: BotHarness) -> None:
    huge = an_update(30, "/help " + "x" * (2 * 1024 * 1024))
    headers = {SECRET_HEADER: SECRET}
    async with client_for(bot.running.runtime) as client:
        declared = await client.post("/telegram", json=huge, headers=headers)
        streamed = await client.post(  # no Content-Length: counted while it arrives
            "/telegram", content=_chunks(json.dumps(huge).encode()), headers=headers
        )
    assert (declared.status_code, streamed.status_code) == (413, 413)
    async with bot.session() as session:
        assert await session.scalar(select(Exchange.id)) is None


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


@pytest.mark.parametrize(
    "body",
    [
        b'{"update_id": 1, "message": "not an object"}',
        b'{"update_id": 1, "message": {"chat": {"id": "abc"}, "text": "hi"}}',
        b'{"update_id": 1, "message": {"chat": {"id": 5}, "text": 42}}',
        b'{"update_id": 1, "callback_query": {"from": "someone", "data": "x"}}',
        b'{"update_id": 1, "message": {"chat": {"id": 5}, "text": "hi", "x": NaN}}',
        b'{"update_id": 99999999999999999999999, "message": {"chat": {"id": 5}}}',
        b'{"update_id": true}',
        b"\xff\xfe not json",
        b"[1, 2]",
    ],
    ids=[
        "message-not-object",
        "chat-id-text",
        "text-number",
        "from-text",
        "nan",
        "huge-update-id",
        "bool-update-id",
        "not-utf8",
        "array",
    ],
)
async def test_a_malformed_update_is_answered_400_without_a_traceback(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.WARNING)
    headers = {SECRET_HEADER: SECRET, "content-type": "application/json"}
    async with client_for(bot.running.runtime) as client:
        answer = await client.post("/telegram", content=body, headers=headers)
    assert answer.status_code == 400
    assert "Traceback" not in caplog.text
    async with bot.session() as session:
        assert await session.scalar(select(Exchange.id)) is None


async def test_health_and_metrics_are_not_on_the_public_webhook_listener(bot: BotHarness) -> None:
    async with client_for(bot.running.runtime) as client:
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert (health.status_code, metrics.status_code) == (404, 404)
    assert make_settings(bot.settings.database_url).health_host == "127.0.0.1"


async def test_a_client_that_sends_no_headers_is_cut_off(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import listeners

    monkeypatch.setattr(listeners, "HEADER_TIMEOUT_SECONDS", 0.3)
    sock = listeners.bind("127.0.0.1", 0, "test")
    config = listeners.server_config(make_asgi_app(bot.running.runtime, SECRET))
    assert config.limit_concurrency and config.timeout_keep_alive
    server = listeners.QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:  # the socket listens already: the connection waits for the server to accept it
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        writer.write(b"POST /telegram HTTP/1.1\r\nHost: bot\r\n")  # and then nothing
        await writer.drain()
        closed = await asyncio.wait_for(reader.read(), timeout=3)  # EOF: the server hung up
        assert closed == b""
        writer.close()
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_webhook_mode_serves_health_on_its_own_loopback_listener_and_stops_fast(
    database_url: str, tmp_path: Path
) -> None:
    from fakebotapi import FakeTelegram
    from fakebotapi.server import FakeTelegramServer
    from tests.conftest import TOKEN
    from tests.faults.support import (
        bot_env,
        cleanup,
        free_port,
        start_bot,
        stop_gracefully,
        wait_healthy,
    )

    fake = FakeTelegram(token=TOKEN)
    webhook_port, health_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    async with FakeTelegramServer(fake) as server:
        env = bot_env(
            server.base_url,
            database_url,
            HELPCENTER_WEBHOOK_SECRET=SECRET,
            HELPCENTER_HEALTH_PORT=str(health_port),
        )
        hook = f"http://127.0.0.1:{webhook_port}/telegram"
        with cleanup(processes):
            processes.append(
                start_bot(env, tmp_path, "--webhook-url", hook, "--listen", f":{webhook_port}")
            )
            await wait_healthy(f"http://127.0.0.1:{health_port}/healthz")
            async with httpx.AsyncClient() as client:
                on_webhook = await client.get(f"http://127.0.0.1:{webhook_port}/healthz")
                metrics = await client.get(f"http://127.0.0.1:{health_port}/metrics")
            started = time.monotonic()
            assert await stop_gracefully(processes[0]) == 0
            took = time.monotonic() - started
    assert on_webhook.status_code == 404
    assert "helpcenter_updates_received_total" in metrics.text
    assert took < 3, f"stopping took {took:.1f}s"


def test_the_webhook_module_does_not_import_the_cli() -> None:
    """``bot.cli`` runs the webhook mode (it imports ``bot.webhook``); the webhook module
    importing the CLI back made the two one import cycle."""
    import ast

    import bot.webhook

    tree = ast.parse(Path(bot.webhook.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert "bot.cli" not in imported
