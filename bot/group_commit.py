"""Group commit: one transaction for the done marks and replies of many read-only handlings.

Most updates change nothing in the database of their own: a menu, a directory answer, the
fallback. What they write is the exchange log's: the update's "done" mark and the replies
it sent. Committing each of them alone costs a write transaction per update (on SQLite, a
turn in the single writer's queue), which was most of what the bot spent per update. The
inbox worker hands such a handling here instead, and frees its slot; what gathers while one
commit runs goes into the next: one UPDATE (executemany) for the marks, one multi-row INSERT
for the replies. Under light load a group is a single update committed at once; under load
the groups grow by themselves, with no timer to tune.

Until its group commits, a handed-over update is still "processing" in the database: the
chat's next update stays unclaimable, so order per chat holds, and a crash before the commit
means the update is handled again at restart, exactly like an update whose own commit did
not happen (its reply may repeat; see ``bot.inbox``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from models.db import write_gate
from models.exchange import FinishedUpdate, finish_group


@dataclass
class Handed:
    """A handling waiting for its group's commit, and when it started (for the latency)."""

    done: FinishedUpdate
    started: float


# Called with a group that could not be committed and the error (the worker retries each).
OnFailure = Callable[[list[Handed], BaseException], Awaitable[None]]

log = logging.getLogger(__name__)


class GroupCommit:
    """Collects read-only handlings and commits them together, one group at a time."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker_id: str,
        *,
        on_committed: Callable[[], None],
        on_failure: OnFailure,
        is_outage: Callable[[BaseException], bool],
    ) -> None:
        self.sessionmaker = sessionmaker
        self.worker_id = worker_id
        self.on_committed = on_committed
        self.on_failure = on_failure
        self.is_outage = is_outage
        self._waiting: list[Handed] = []
        self._committing: asyncio.Task[None] | None = None

    def hand(self, handed: Handed) -> None:
        """Take a handling; it is committed with the next group."""
        self._waiting.append(handed)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_while_waiting())

    async def settled(self) -> None:
        """Return once everything handed so far is committed (or handed back as failed)."""
        while self._committing is not None and not self._committing.done():
            await asyncio.wait({self._committing})

    async def _commit_while_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await self._commit(group)
            except Exception as exc:
                if len(group) > 1 and not self.is_outage(exc):
                    await self._commit_one_by_one(group)  # one bad row fails only itself
                else:
                    await self._failed(group, exc)
                continue
            self.on_committed()

    async def _commit_one_by_one(self, group: list[Handed]) -> None:
        for handed in group:
            try:
                await self._commit([handed])
            except Exception as exc:
                await self._failed([handed], exc)
        self.on_committed()

    async def _commit(self, group: list[Handed]) -> None:
        async with write_gate(self.sessionmaker), self.sessionmaker() as session:
            done = await finish_group(session, self.worker_id, [handed.done for handed in group])
            await session.commit()
        marked = {finished.row_id for finished in done}
        self._count([handed for handed in group if handed.done.row_id in marked])

    async def _failed(self, group: list[Handed], error: BaseException) -> None:
        try:
            await self.on_failure(group, error)
        except Exception as exc:  # their leases run out and they are claimed again
            log.warning("%d handled update(s) not recorded: %s", len(group), type(exc).__name__)

    @staticmethod
    def _count(group: list[Handed]) -> None:
        now = time.perf_counter()
        metrics.UPDATES_HANDLED.labels(outcome="done").inc(len(group))
        for handed in group:
            metrics.HANDLING_SECONDS.observe(now - handed.started)
