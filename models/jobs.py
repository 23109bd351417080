"""Scheduled jobs run once per due time, whichever worker gets there first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, clock
from models.db import insert_ignore


class JobRun(Base):
    """One row per (job, due slot). The unique key is the lock: a second insert is ignored."""

    __tablename__ = "job_run"
    __table_args__ = (UniqueConstraint("job", "due_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(40))
    due_key: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(default=clock.now)


async def claim_job_run(session: AsyncSession, job: str, due_key: str) -> bool:
    """True if this caller is the one to run ``job`` for ``due_key``.

    Run the job's work in the same transaction: if it fails and rolls back, the claim goes
    too, and the next sweep tries again.
    """
    row = {"job": job, "due_key": due_key, "started_at": clock.now()}
    return await insert_ignore(session, JobRun.__table__, [row], ["job", "due_key"]) > 0
