"""Random updates of every kind, on both backends: the bot never breaks, leaks or goes silent.

The updates come from :class:`tests.fuzzing.UpdateFuzzer` (see there for what they hold). A
short run is part of the normal suite; the ``slow`` one sends 10,000. Both are seeded:
``FUZZ_SEED`` replays a failure (its message prints the seed, the kinds of problems and each
failing update), ``FUZZ_UPDATES`` sizes the slow run.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import BotHarness, make_settings
from tests.fuzzing import DEFAULT_SEED, FuzzRun, meet_the_cast

SEED = int(os.environ.get("FUZZ_SEED", DEFAULT_SEED))
QUICK_UPDATES = 200
SLOW_UPDATES = int(os.environ.get("FUZZ_UPDATES", 10_000))
# Updates per database in the slow run. Claiming an update scans its chat's whole history
# (done rows included), so a run of n updates over a fixed cast costs about n²: 1,000 took
# 21 s, 2,000 took 48 s, 10,000 did not finish in 30 minutes (SQLite, loaded machine).
CHUNK = 2_000


async def _fuzz(database_url: str, count: int, replay: str, *, seed: int = SEED) -> FuzzRun:
    settings = make_settings(
        database_url,
        rate_private_chat_per_second=1000,
        rate_global_per_second=1000,
        rate_group_per_minute=100_000,
        outbox_send_timeout_seconds=2.0,
    )
    async with BotHarness(settings) as bot:
        await meet_the_cast(bot)
        run = FuzzRun(bot, seed, count, replay=replay)
        await run.run()
    per_thousand = run.seconds / count * 1000
    print(f"\nfuzz seed {seed}: {count} updates in {run.seconds:.1f}s ({per_thousand:.1f}s/1000)")
    return run


async def test_random_updates_of_every_kind_are_handled_without_harm(database_url: str) -> None:
    replay = f"FUZZ_SEED={SEED} pytest tests/test_fuzz.py -k every_kind"
    run = await _fuzz(database_url, QUICK_UPDATES, replay)
    assert not run.failures, run.report()


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(max(SLOW_UPDATES // CHUNK, 1)))
async def test_ten_thousand_random_updates_are_handled_without_harm(
    database_url: str, chunk: int
) -> None:
    """In chunks of 2,000, each on a fresh database with its own seed (``SEED + chunk``): a
    run's cost grows faster than its length (see ``CHUNK``)."""
    seed = SEED + chunk
    replay = f"FUZZ_SEED={seed} FUZZ_UPDATES={CHUNK} pytest tests/test_fuzz.py -m slow"
    run = await _fuzz(database_url, min(CHUNK, SLOW_UPDATES), replay, seed=seed)
    assert not run.failures, run.report()
