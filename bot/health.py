"""Health and the gauges: is the database there, how far behind are the inbox and outbox.

``GET /healthz`` (webhook mode, or the health port in polling mode) answers 200 with JSON
when the database answers, 503 otherwise. Parked updates and failed messages are reported
(they need a person: ``helpcenter inbox failed``) but do not make the bot unhealthy, because
restarting it would not fix them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.runtime import Runtime
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
