"""Random updates of every kind, on both backends: the bot never breaks, leaks or goes silent.

A short run is part of the normal suite; the ``slow`` run sends 10,000 updates. Both are
seeded: ``FUZZ_SEED`` replays a failure (the failure message prints the seed and the
updates), ``FUZZ_UPDATES`` sizes the slow run.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import BotHarness, make_settings
from tests.fuzzing import DEFAULT_SEED, FuzzRun, meet_the_cast

SEED = int(os.environ.get("FUZZ_SEED", DEFAULT_SEED))
QUICK_UPDATES = 200
SLOW_UPDATES = int(os.environ.get("FUZZ_UPDATES", 10_000))


async def _fuzz(database_url: str, count: int) -> FuzzRun:
    settings = make_settings(
        database_url,
        rate_private_chat_per_second=1000,
        rate_global_per_second=1000,
        rate_group_per_minute=100_000,
        outbox_send_timeout_seconds=2.0,
    )
    async with BotHarness(settings) as bot:
        await meet_the_cast(bot)
        run = FuzzRun(bot, SEED, count)
        await run.run()
    per_thousand = run.seconds / count * 1000
    print(f"\nfuzz seed {SEED}: {count} updates in {run.seconds:.1f}s ({per_thousand:.1f}s/1000)")
    return run


async def test_random_updates_of_every_kind_are_handled_without_harm(database_url: str) -> None:
    run = await _fuzz(database_url, QUICK_UPDATES)
    assert not run.failures, run.report()


@pytest.mark.slow
async def test_ten_thousand_random_updates(database_url: str) -> None:
    run = await _fuzz(database_url, SLOW_UPDATES)
    assert not run.failures, run.report()
