"""Health and the gauges: is the database there, how far behind are the inbox and outbox.

``GET /healthz`` and ``GET /metrics`` are served on their own listener,
``health_host:health_port`` (loopback by default, off unless ``health_port`` is set), in
both modes: never on the public webhook listener. ``/healthz`` answers 200 with JSON
when the database answers, 503 otherwise. Parked updates and failed messages are reported
(they need a person: ``helpcenter inbox failed``) but do not make the bot unhealthy, because
restarting it would not fix them. So are cases nobody could be alerted about
(``cases.unalerted``): they need someone of the team to go on duty or write to the bot.
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
from models.cases import alertable_staff, count_unalerted
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
            unalerted = await count_unalerted(session)
    except (SQLAlchemyError, OSError) as exc:
        return {"ok": False, "database": "unreachable", "error": type(exc).__name__}
    metrics.INBOX_LAG.set(inbox.oldest_pending_age_seconds)
    metrics.OUTBOX_BACKLOG.set(outbox.pending + outbox.sending)
    metrics.INBOX_PARKED.set(inbox.failed)
    metrics.CASES_UNALERTED.set(unalerted)
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
        "cases": {"unalerted": unalerted},
    }


NOBODY_ALERTABLE = (
    "nobody on the team can receive alerts: no operator is on duty and no coordinator or "
    "administrator has written to the bot (or all have blocked it); urgent requests and "
    "reports will reach nobody until someone does (admin_ids count once they have written)"
)


async def warn_if_nobody_can_be_alerted(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """At start-up: log a warning if a case opened now would alert nobody. True if warned.

    Reachable means an account (so the person has written to the bot) that Telegram has not
    refused; ``admin_ids`` in the settings alone count for nothing. A team chat, if set,
    still gets every alert: the warning is about people.
    """
    try:
        async with sessionmaker() as session:
            staff = await alertable_staff(session)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("could not check who can receive alerts: %s", type(exc).__name__)
        return False
    if staff:
        return False
    log.warning(NOBODY_ALERTABLE)
    return True


def warn_at_start_up(settings: Settings) -> None:
    """``helpcenter run``: the check above, on its own connection, before the bot starts (an
    out-of-date schema is left to the start-up's own check, which says how to fix it)."""
    from models.db import make_engine, make_sessionmaker
    from models.migrate import schema_is_current

    async def check() -> None:
        try:
            if not await schema_is_current(settings.database_url):
                return
        except (SQLAlchemyError, OSError):
            return  # the start-up itself reports it
        engine = make_engine(settings.database_url)
        try:
            await warn_if_nobody_can_be_alerted(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    asyncio.run(check())


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
