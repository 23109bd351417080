"""Webhook mode: Telegram POSTs updates; we answer 200 only once the inbox holds them.

The endpoint checks ``X-Telegram-Bot-Api-Secret-Token`` (wrong or missing: 403, one log line
with the client address only), stores the update with the same insert-or-ignore as the fetch
loop and commits, then answers 200. A database failure answers 503, so Telegram keeps the
update and posts it again. ``GET /healthz`` and ``GET /metrics`` sit beside it.

Several workers: the parent process sets the webhook once, binds the listening socket, and
forks ``workers`` children that all accept on it (the kernel spreads connections). Each child
runs the whole bot: endpoint, inbox worker and dispatcher with ``SKIP LOCKED`` claims, and the
job queue (jobs run once per due slot through ``models.jobs.claim_job_run``). SIGTERM to the
parent is passed to the children; each stops accepting, finishes its in-flight updates and
exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import signal
import socket
import sys
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.health import health_report
from bot.inbox import ALLOWED_UPDATES
from bot.runtime import Runtime
from config.settings import Settings
from models.exchange import store_updates

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"


def webhook_path(settings: Settings) -> str:
    """The path Telegram posts to: the path of ``webhook_url`` (default ``/telegram``)."""
    from urllib.parse import urlparse

    path = urlparse(settings.webhook_url or "").path
    return path if path and path != "/" else WEBHOOK_PATH


def make_asgi_app(runtime: Runtime, secret: str, *, on_stored: Any = None) -> Starlette:
    """The HTTP side, separate from the bot so tests can drive it with httpx."""

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            client = request.client.host if request.client else "?"
            reason = "missing" if not given else "wrong"
            metrics.WEBHOOK_REFUSED.labels(reason=reason).inc()
            log.warning("webhook: refused a request from %s (%s secret token)", client, reason)
            return JSONResponse({"ok": False}, status_code=403)
        try:
            update = await request.json()
        except ValueError:
            metrics.WEBHOOK_REFUSED.labels(reason="malformed").inc()
            return JSONResponse({"ok": False}, status_code=400)
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            metrics.WEBHOOK_REFUSED.labels(reason="malformed").inc()
            return JSONResponse({"ok": False}, status_code=400)
        try:
            async with runtime.sessionmaker() as session:
                await store_updates(session, [update])
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            # Not stored, so not confirmed: Telegram will post it again.
            log.warning(
                "webhook: could not store an update (%s); answering 503", type(exc).__name__
            )
            return JSONResponse({"ok": False}, status_code=503)
        metrics.UPDATES_RECEIVED.inc()
        if on_stored is not None:
            on_stored()
        return JSONResponse({"ok": True})

    async def healthz(_request: Request) -> Response:
        report = await health_report(runtime.sessionmaker)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(webhook_path(runtime.settings), receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def webhook_secret(settings: Settings) -> str:
    """The configured secret, or a fresh random one (set with the webhook at each start)."""
    if settings.webhook_secret is not None and settings.webhook_secret.get_secret_value():
        return settings.webhook_secret.get_secret_value()
    return secrets.token_urlsafe(32)


async def set_webhook(settings: Settings, secret: str) -> None:
    from telegram import Bot

    async with Bot(settings.token.get_secret_value(), base_url=settings.api_base_url) as bot:
        await bot.set_webhook(
            settings.webhook_url or "",
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            max_connections=40,
        )


async def serve_worker(settings: Settings, secret: str, sock: socket.socket) -> None:
    """One worker process: the endpoint, the inbox worker, the dispatcher and the job queue."""
    import uvicorn

    from bot.app import HelpCenterBot, build_application

    application = build_application(settings)
    running = HelpCenterBot(application)
    await running.start()
    app = make_asgi_app(running.runtime, secret, on_stored=running.wake.set)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = QuietServer(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
    log.info("webhook worker %s listening", os.getpid())
    try:
        await server.serve(sockets=[sock])
    finally:
        await running.stop()  # in-flight updates finish; the rest waits in the inbox
        await running.runtime.sessionmaker.kw["bind"].dispose()


def quiet_server_class() -> Any:
    import uvicorn

    class _QuietServer(uvicorn.Server):
        """A uvicorn server that leaves signals to us: we stop the bot after it, gracefully."""

        def capture_signals(self) -> Any:
            return contextlib.nullcontext()

    return _QuietServer


def QuietServer(config: Any) -> Any:  # reads like the class it makes
    return quiet_server_class()(config)


def bind(settings: Settings) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.listen_host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.listen_host, settings.listen_port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_webhook(settings: Settings, *, workers: int = 1) -> int:
    """``helpcenter run --webhook-url URL [--workers N]``: set the webhook, serve, exit cleanly."""
    from bot.cli import ensure_schema

    asyncio.run(ensure_schema(settings))
    secret = webhook_secret(settings)
    asyncio.run(set_webhook(settings, secret))
    sock = bind(settings)
    log.info(
        "webhook mode on %s:%s, %d worker(s)", settings.listen_host, settings.listen_port, workers
    )
    if workers <= 1:
        asyncio.run(serve_worker(settings, secret, sock))
        return 0
    children = [_fork_worker(settings, secret, sock) for _ in range(workers)]
    return _supervise(children)


def _fork_worker(settings: Settings, secret: str, sock: socket.socket) -> int:
    pid = os.fork()
    if pid == 0:  # the child: its own event loop, its own database pool
        code = 0
        try:
            asyncio.run(serve_worker(settings, secret, sock))
        except BaseException:
            log.exception("webhook worker failed")
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    return pid


def _supervise(children: list[int]) -> int:
    """Pass SIGTERM/SIGINT on to the workers and wait for all of them."""

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status))
    return worst
