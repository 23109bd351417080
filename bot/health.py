"""Health and the gauges: is the database there, how far behind are the inbox and outbox.

``GET /healthz`` and ``GET /metrics`` are served on their own listener,
``health_host:health_port`` (loopback by default, off unless ``health_port`` is set), in
both modes: never on the public webhook listener. ``/healthz`` answers 200 with JSON
when the database answers, 503 otherwise. Parked updates and failed messages are reported
(they need a person: ``helpcenter inbox failed``) but do not make the bot unhealthy, because
restarting it would not fix them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.runtime import Runtime
from config.settings import Settings
from models.exchange import inbox_health
from models.outbox import outbox_health

log = logging.getLogger(__name__)
GAUGE_REFRESH_SECONDS = 5.0


async def health_report(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """The figures behind ``/healthz``; ``ok`` is False only if the database is unreachable."""
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            inbox = await inbox_health(session)
            outbox = await outbox_health(session)
    except (SQLAlchemyError, OSError) as exc:
        return {"ok": False, "database": "unreachable", "error": type(exc).__name__}
    metrics.INBOX_LAG.set(inbox.oldest_pending_age_seconds)
    metrics.OUTBOX_BACKLOG.set(outbox.pending + outbox.sending)
    metrics.INBOX_PARKED.set(inbox.failed)
    return {
        "ok": True,
        "database": "ok",
        "inbox": {
            "pending": inbox.pending,
            "processing": inbox.processing,
            "parked": inbox.failed,
            "lag_seconds": round(inbox.oldest_pending_age_seconds, 3),
        },
        "outbox": {
            "backlog": outbox.pending + outbox.sending,
            "failed": outbox.failed,
            "oldest_due_seconds": round(outbox.oldest_due_age_seconds, 3),
        },
    }


async def refresh_gauges(runtime: Runtime, every: float = GAUGE_REFRESH_SECONDS) -> None:
    """Keep the lag and backlog gauges current for ``/metrics`` (runs until cancelled)."""
    while True:
        try:
            await health_report(runtime.sessionmaker)
        except Exception:  # never let a metrics refresh take the bot down
            log.exception("gauge refresh failed")
        await asyncio.sleep(every)


def make_health_app(runtime: Runtime) -> Starlette:
    """``/healthz`` and ``/metrics``: for the operator's monitoring, not for the public."""

    async def healthz(_request: Request) -> Response:
        report = await health_report(runtime.sessionmaker)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def bind_health(settings: Settings) -> socket.socket | None:
    """The health listener's socket (bound at start-up, before anything runs), if any."""
    from bot.listeners import bind

    if settings.health_port is None:
        return None
    return bind(settings.health_host, settings.health_port, "HELPCENTER_HEALTH_PORT")


def serve_health(sock: socket.socket, runtime: Runtime) -> asyncio.Task[None]:
    """Serve :func:`make_health_app` on ``sock`` until the task is cancelled."""
    from bot.listeners import QuietServer, server_config

    server = QuietServer(server_config(make_health_app(runtime)))
    log.info("health and metrics on %s:%s", *sock.getsockname()[:2])
    return asyncio.create_task(server.serve(sockets=[sock]), name="health-listener")
