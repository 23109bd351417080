"""Scheduled jobs: each run is one unit of work, as the handling of an update is.

The inbox worker gives an update one session and commits it after the last handler
(:mod:`bot.inbox`); a job gets the same here, and never opens a session or commits itself.
:func:`run_in_transaction` opens a session (behind the SQLite write gate, as the inbox does),
runs the job's work and commits: what the work changed and the outbox rows it queued are one
transaction. :func:`sweep_job` makes a JobQueue callback of one or more works, each its own
unit of work; a failed one is rolled back and logged with the job's name and the error's
type (never its message, which can quote what people wrote), and runs again at the next
tick. Jobs are sweeps of the database (what is due is in its rows), so a failed run or a
restart loses nothing, and several workers running the same job at once do no harm
(``models.jobs.claim_job_run`` and conditional updates decide who does what).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.runtime import Runtime, runtime_of
from models.db import is_database_outage, write_gate

log = logging.getLogger(__name__)

T = TypeVar("T")
# A job's work: the domain operation it runs, given its session and the application's runtime.
JobWork = Callable[[AsyncSession, Runtime], Awaitable[Any]]
JobCallback = Callable[[Any], Coroutine[Any, Any, None]]


async def run_in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """Run ``work`` in one transaction: committed if it returns; if it raises, the error goes
    on to the caller and closing the session rolls back what was not committed."""
    async with write_gate(sessionmaker), sessionmaker() as session:
        result = await work(session)
        await session.commit()
    return result


async def run_now(runtime: Runtime, work: Callable[[AsyncSession, Runtime], Awaitable[T]]) -> T:
    """One run of a job's work, as its tick runs it; errors are raised (tests)."""
    result = await run_in_transaction(runtime.sessionmaker, lambda session: work(session, runtime))
    _wake_dispatcher(runtime)
    return result


async def run_job(runtime: Runtime, name: str, work: JobWork) -> bool:
    """One run of a job's work; False if it failed (rolled back, logged, retried next tick)."""
    try:
        await run_now(runtime, work)
    except Exception as exc:
        if is_database_outage(exc):
            log.warning("job %s: database unreachable (%s); next tick", name, type(exc).__name__)
        else:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "job %s failed: %s; rolled back, next tick\n%s", name, type(exc).__name__, frames
            )
        return False
    return True


def sweep_job(name: str, *works: JobWork) -> JobCallback:
    """The JobQueue callback that runs ``works`` in order, each its own unit of work (one
    failing does not hold back the others)."""

    async def job(context: Any) -> None:
        runtime = runtime_of(context.application)
        for work in works:
            await run_job(runtime, name, work)

    job.__name__ = job.__qualname__ = name.replace("-", "_")
    job.__doc__ = f"JobQueue callback {name!r}: " + ", ".join(w.__name__ for w in works)
    return job


def _wake_dispatcher(runtime: Runtime) -> None:
    """What the job queued is sent now, not at the dispatcher's next idle poll."""
    dispatcher = runtime.extras.get("dispatcher")
    if dispatcher is not None:
        dispatcher.wake.set()
