"""Webhook mode: Telegram POSTs updates; we answer 200 only once the inbox holds them.

The endpoint checks ``X-Telegram-Bot-Api-Secret-Token`` (wrong or missing: 403, one log line
with the client address only), stores the update with the same insert-or-ignore as the fetch
loop and commits, then answers 200. A database failure answers 503, so Telegram keeps the
update and posts it again. A body over a megabyte is refused with 413, one that is not an
update Telegram could have sent with 400. ``GET /healthz`` and ``GET /metrics`` are on the
separate health listener (:mod:`bot.health`), loopback-only by default. The server's limits
(concurrent connections, header and keep-alive timeouts) are in :mod:`bot.listeners`.

One process (``--workers 1``, the default) serves the endpoint in its own event loop, with the
bot around it. Several workers run under uvicorn's own supervisor (what ``uvicorn --workers``
runs): the parent process checks the schema, sets the webhook once and binds the sockets;
uvicorn starts ``workers`` fresh processes that all accept on the one listening socket (the
kernel spreads connections), replaces a worker that dies, and passes SIGTERM/SIGINT on. Each
worker builds its own app (:func:`worker_app`) and runs the whole bot in the app's lifespan:
endpoint, inbox worker and dispatcher with ``SKIP LOCKED`` claims, and the job queue (jobs run
once per due slot through ``models.jobs.claim_job_run``). On SIGTERM each stops accepting,
finishes its in-flight updates and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot import metrics
from bot.inbox import ALLOWED_UPDATES, ClaimIn, OnStored, store_and_claim
from bot.runtime import Runtime
from bot.startup import CliError
from config.settings import Settings

if TYPE_CHECKING:
    from bot.app import HelpCenterBot

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"
# Telegram's updates are a few kilobytes (a 4096-character text with its entities and a
# quoted reply); a megabyte leaves room and keeps a flood of large bodies harmless.
MAX_UPDATE_BYTES = 1024 * 1024
BODY_TIMEOUT_SECONDS = 10.0
# How long uvicorn's supervisor waits for a worker to answer its ping before it takes the
# worker for hung and replaces it (and, on SIGHUP, for a new worker to be ready): a worker
# answers from a thread once its imports are done, which takes seconds on a busy machine.
WORKER_HEALTHCHECK_SECONDS = 30


HSDS_PATH = "/hsds"  # the HSDS API (bot.hsds_api): the public directory, read-only


def webhook_path(settings: Settings) -> str:
    """The path Telegram posts to: the path of ``webhook_url`` (default ``/telegram``)."""
    from urllib.parse import urlparse

    path = urlparse(settings.webhook_url or "").path
    return path if path and path != "/" else WEBHOOK_PATH


def make_asgi_app(
    runtime: Runtime,
    secret: str,
    *,
    on_stored: OnStored | None = None,
    claim_in: ClaimIn | None = None,
    lifespan: Any = None,
) -> Starlette:
    """The webhook endpoint alone, separate from the bot so tests can drive it with httpx
    (a worker process runs the bot in the ``lifespan``: :func:`worker_app`). With ``claim_in``
    the update is claimed in the transaction that stores it, as the fetch loop does.

    ``/healthz`` and ``/metrics`` are not here: they are on the health listener
    (:mod:`bot.health`), which is loopback-only by default.
    """

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            client = request.client.host if request.client else "?"
            reason = "missing" if not given else "wrong"
            metrics.WEBHOOK_REFUSED.labels(reason=reason).inc()
            log.warning("webhook: refused a request from %s (%s secret token)", client, reason)
            return JSONResponse({"ok": False}, status_code=403)
        try:
            body = await read_capped_body(request)
        except TimeoutError:
            metrics.WEBHOOK_REFUSED.labels(reason="slow").inc()
            return JSONResponse({"ok": False}, status_code=408)
        if body is None:
            metrics.WEBHOOK_REFUSED.labels(reason="too_large").inc()
            return JSONResponse({"ok": False}, status_code=413)
        update = parse_update(body)
        if update is None:
            metrics.WEBHOOK_REFUSED.labels(reason="malformed").inc()
            log.warning("webhook: refused a malformed update (%d bytes)", len(body))
            return JSONResponse({"ok": False}, status_code=400)
        try:
            claimed = await store_and_claim(runtime, [update], claim_in)
        except (SQLAlchemyError, OSError) as exc:
            # Not stored, so not confirmed: Telegram will post it again.
            log.warning(
                "webhook: could not store an update (%s); answering 503", type(exc).__name__
            )
            return JSONResponse({"ok": False}, status_code=503)
        metrics.UPDATES_RECEIVED.inc()
        if on_stored is not None:
            on_stored(1, claimed)
        return JSONResponse({"ok": True})

    from bot.hsds_api import make_hsds_app

    return Starlette(
        routes=[
            Route(webhook_path(runtime.settings), receive, methods=["POST"]),
            Mount(HSDS_PATH, app=make_hsds_app(runtime.sessionmaker)),  # public, read-only
        ],
        lifespan=lifespan,
    )


async def read_capped_body(request: Request) -> bytes | None:
    """The request body, or None past ``MAX_UPDATE_BYTES`` (declared or streamed); a body
    that does not arrive within ``BODY_TIMEOUT_SECONDS`` raises ``TimeoutError``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPDATE_BYTES:
        return None
    body = bytearray()
    async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPDATE_BYTES:
                return None
    return bytes(body)


def parse_update(body: bytes) -> dict[str, Any] | None:
    """The update if it is one the inbox can store as it is, else None (answered 400).

    Strict JSON (no NaN or Infinity, which PostgreSQL's JSON refuses), an object with an
    integer ``update_id``, and the facts the inbox reads from it (chat, sender, message,
    text) of the types Telegram gives them: anything else would fail at storing, be answered
    503, and be posted again by Telegram for ever.
    """
    try:
        update = json.loads(body, parse_constant=_refuse_constant)
    except ValueError:  # not JSON, not UTF-8, or NaN / Infinity
        return None
    if not isinstance(update, dict):
        return None
    update_id = update.get("update_id")
    if type(update_id) is not int or not 0 <= update_id < 2**63:
        return None
    parts = [part for key, part in update.items() if key != "update_id"]
    return update if all(_well_formed(part) for part in parts) else None


def _well_formed(part: Any) -> bool:
    """An update's part (a message, a callback query …) as Telegram shapes it: an object whose
    sender and chat are objects with integer ids, whose ids are integers and text is text."""
    if not isinstance(part, dict):
        return False
    for key in ("from", "user", "chat", "message"):
        if key in part and not _well_formed(part[key]):
            return False
    for key in ("id", "message_id"):
        if key in part and type(part[key]) is not int and not (key == "id" and _is_query_id(part)):
            return False
    return all(not (key in part and not isinstance(part[key], str)) for key in ("text", "data"))


def _is_query_id(part: dict[str, Any]) -> bool:
    """A callback query's id is a string (its sender's and chat's are integers)."""
    return "data" in part or "chat_instance" in part


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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


async def prepare_webhook(settings: Settings, secret: str) -> bool:
    """Schema checked, webhook set (Telegram waited for); False if stopped while waiting."""
    from bot.startup import ensure_schema, stop_on_signals, until_telegram_answers

    await ensure_schema(settings)
    stop = stop_on_signals()
    return await until_telegram_answers(lambda: set_webhook(settings, secret), stop, settings)


def run_webhook(settings: Settings, *, workers: int = 1) -> int:
    """``helpcenter run --webhook-url URL [--workers N]``: set the webhook, serve, exit cleanly."""
    from bot.health import bind_health
    from bot.listeners import bind

    sock = bind(settings.listen_host, settings.listen_port, "--listen / HELPCENTER_LISTEN_PORT")
    health_sock = bind_health(settings)
    secret = webhook_secret(settings)
    if not asyncio.run(prepare_webhook(settings, secret)):
        return 0
    log.info(
        "webhook mode on %s:%s, %d worker(s)", settings.listen_host, settings.listen_port, workers
    )
    if health_sock is None:
        log.info("no /healthz or /metrics listener: set HELPCENTER_HEALTH_PORT for one")
    if workers <= 1:
        asyncio.run(serve_in_process(settings, secret, sock, health_sock))
        return 0
    return serve_workers(settings, secret, sock, health_sock, workers)


async def serve_in_process(
    settings: Settings,
    secret: str,
    sock: socket.socket,
    health_sock: socket.socket | None = None,
) -> None:
    """``--workers 1``: the endpoint and the bot in this process, stopped by our own signals."""
    from bot.listeners import QuietServer, server_config
    from bot.startup import stop_on_signals

    running = build_bot(settings)
    stop = stop_on_signals()
    async with bot_running(running, health_sock, stop) as started:
        if not started:
            return
        server = QuietServer(
            server_config(
                make_asgi_app(
                    running.runtime,
                    secret,
                    on_stored=running.worker.note_stored,
                    claim_in=running.worker.claim_in,
                )
            )
        )
        ends = asyncio.create_task(_exit_on(stop, server))
        try:
            await server.serve(sockets=[sock])
        finally:
            ends.cancel()


def serve_workers(
    settings: Settings,
    secret: str,
    sock: socket.socket,
    health_sock: socket.socket | None,
    workers: int,
) -> int:
    """``--workers N``: uvicorn's supervisor runs N worker processes on ``sock``.

    Each worker is a fresh process (spawned, not forked) that gets the settings, the secret
    and the health socket through :func:`worker_app`'s arguments. The supervisor replaces a
    worker that dies; a worker that fails to start (exit code 3) stops them all, and so does
    SIGTERM or SIGINT. SIGHUP replaces the workers one by one, each new one ready before the
    old one stops; SIGTTIN and SIGTTOU add and remove one.
    """
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from bot.listeners import server_config

    config = server_config(
        functools.partial(worker_app, settings, secret, health_sock),
        factory=True,
        lifespan="on",  # a bot that cannot start fails the worker's start (exit code 3)
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    # The supervisor's own lines (a worker died and was replaced, a signal) are worth seeing.
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise CliError("a webhook worker could not start (the reason is logged above)")
    return 0


def worker_app(
    settings: Settings, secret: str, health_sock: socket.socket | None = None
) -> Starlette:
    """One worker process's app, built in that process (uvicorn calls this factory in each
    worker it starts, a replacement too): the endpoint, with the whole bot in its lifespan
    (and the health listener, when one is configured, on the socket all workers share)."""
    from uvicorn.config import STARTUP_FAILURE

    from bot.startup import also_on_signals, configure_logging

    configure_logging()  # a fresh process: nothing of the parent's logging is set up here
    running = build_bot(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # uvicorn's signal handlers stop the server; a start-up still waiting for Telegram
        # hears them through ``stop`` and gives up, and the server then stops at once.
        stop = asyncio.Event()
        with also_on_signals(stop):
            try:
                async with bot_running(running, health_sock, stop):
                    yield
            except CliError as exc:  # the token refused, or a sender beside: nothing started
                log.error("helpcenter: %s", exc)
                # Exit code 3 is uvicorn's "this worker cannot start": its supervisor stops
                # every worker rather than restart this one for ever. Exiting here, because an
                # exception would be printed with a traceback, which means a bug.
                os._exit(STARTUP_FAILURE)

    return make_asgi_app(
        running.runtime,
        secret,
        on_stored=running.worker.note_stored,
        claim_in=running.worker.claim_in,
        lifespan=lifespan,
    )


def build_bot(settings: Settings) -> HelpCenterBot:
    from bot.app import HelpCenterBot, build_application

    return HelpCenterBot(build_application(settings))


@contextlib.asynccontextmanager
async def bot_running(
    running: HelpCenterBot, health_sock: socket.socket | None, stop: asyncio.Event
) -> AsyncIterator[bool]:
    """The bot around the endpoint: the inbox worker, the dispatcher, the job queue (and the
    health listener). Started once Telegram answers, it yields True; False if ``stop`` came
    first. On the way out, in-flight updates finish; the rest waits in the inbox."""
    from bot.health import serve_health
    from bot.startup import freeze_start_up_objects, until_telegram_answers

    settings = running.runtime.settings
    try:
        if not await until_telegram_answers(running.application.initialize, stop, settings):
            yield False
            return
        await running.start()
        health = serve_health(health_sock, running.runtime) if health_sock is not None else None
        freeze_start_up_objects()
        log.info("webhook worker %s started", os.getpid())
        try:
            yield True
        finally:
            if health is not None:
                health.cancel()
            await running.stop()
    finally:
        await running.runtime.engine.dispose()


async def _exit_on(stop: asyncio.Event, server: Any) -> None:
    await stop.wait()
    server.should_exit = True  # stops accepting, lets in-flight requests finish
