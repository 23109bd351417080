"""Scheduled work of the contact database: the daily retention sweep and the monthly report,
and every minute what privacy leaves for after a handling (:func:`privacy_follow_ups`).

Both sweeps claim their slot with :func:`models.jobs.claim_job_run`, so they
run once per day (or month) however many workers there are and whenever a worker restarts.
The report is rendered in each coordinator's language and enqueued in the outbox.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.contacts_text import render_stats
from bot.i18n import Catalogs
from bot.jobs import sweep_job
from bot.runtime import Runtime
from config.settings import Settings
from models.accounts import writable_with_role
from models.jobs import claim_job_run
from models.outbox import enqueue
from models.privacy import (
    RetentionResult,
    blank_parked_identity,
    complete_forgetting,
    run_retention,
)
from models.roles import Role
from models.stats import Period, compute_stats

log = logging.getLogger(__name__)

JOB_INTERVAL_SECONDS = 15 * 60
FOLLOW_UP_INTERVAL_SECONDS = 60


async def retention_sweep(
    session: AsyncSession, settings: Settings, now: datetime
) -> RetentionResult | None:
    """Run today's retention once it is past ``retention_time``; None if not due or done."""
    local = now.astimezone(settings.tz)
    if local.time() < settings.retention_time:
        return None
    if not await claim_job_run(session, "retention", local.date().isoformat()):
        return None
    return await run_retention(
        session,
        retention_months=settings.retention_months,
        photo_retention_days=settings.photo_retention_days,
    )


def _report_due(settings: Settings, local: datetime) -> bool:
    if local.day != settings.monthly_report_day:
        return local.day > settings.monthly_report_day
    return local.time() >= settings.monthly_report_time


async def monthly_report_sweep(
    session: AsyncSession, settings: Settings, catalogs: Catalogs, now: datetime
) -> int:
    """Enqueue last month's figures to every coordinator once a month; returns messages."""
    local = now.astimezone(settings.tz)
    if not _report_due(settings, local):
        return 0
    due_key = f"{local.year}-{local.month:02d}"
    if not await claim_job_run(session, "monthly_report", due_key):
        return 0
    report = await compute_stats(session, Period.previous_month(now, settings.tz))
    sent = 0
    for account in await writable_with_role(session, Role.COORDINATOR):
        _ = catalogs.translator(catalogs.pick(account.language, None))
        text = _("Monthly report") + "\n" + render_stats(report, _)
        enqueue(
            session,
            chat_id=account.telegram_id,
            kind="monthly_report",
            params={"text": text},
            account_id=account.id,
            dedupe_key=f"monthly_report:{due_key}:{account.id}",
        )
        sent += 1
    log.info("monthly report %s enqueued for %d coordinators", due_key, sent)
    return sent


async def due_retention(session: AsyncSession, runtime: Runtime) -> RetentionResult | None:
    """:func:`retention_sweep` as a job's unit of work."""
    return await retention_sweep(session, runtime.settings, runtime.clock.now())


async def due_monthly_report(session: AsyncSession, runtime: Runtime) -> int:
    """:func:`monthly_report_sweep` as a job's unit of work."""
    return await monthly_report_sweep(
        session, runtime.settings, runtime.catalogs, runtime.clock.now()
    )


async def follow_up_privacy(session: AsyncSession, runtime: Runtime) -> None:
    """What privacy leaves for after a handling. Updates that waited while their sender was
    forgotten, once handled, are anonymised with their replies
    (:func:`models.privacy.complete_forgetting`); parked updates that may identify someone
    lose their arguments (:func:`models.privacy.blank_parked_identity`). Idempotent, so
    several workers running it at once do no harm."""
    await complete_forgetting(session)
    await blank_parked_identity(session)


# JobQueue callbacks: both sweeps every 15 minutes, each its own unit of work; privacy's
# follow-ups every minute.
contacts_jobs = sweep_job("contacts", due_retention, due_monthly_report)
privacy_follow_ups = sweep_job("privacy_follow_ups", follow_up_privacy)
