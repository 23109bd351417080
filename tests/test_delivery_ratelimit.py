"""The shared send limits: spacing holds across limiters sharing one store."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket

import pytest

from bot.ratelimit import (
    Limits,
    MemoryRateLimiter,
    PostgresRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    reserve_all,
)
from models.db import make_engine, make_sessionmaker
from tests.conftest import TELEGRAM_RATES, make_settings


def _redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


async def _spacing(limiters: list[RateLimiter], key: str) -> list[float]:
    async def one(limiter: RateLimiter) -> float:
        reservation = await limiter.reserve(key, 0.1, 5.0)
        assert reservation.granted
        return reservation.at

    delays = await asyncio.gather(*(one(limiters[i % len(limiters)]) for i in range(10)))
    return sorted(delays)


def _assert_spaced(delays: list[float]) -> None:
    gaps = [b - a for a, b in itertools.pairwise(delays)]
    assert all(gap >= 0.0999 for gap in gaps), gaps


async def test_memory_limiter_spaces_and_refuses_far_slots() -> None:
    limiter = MemoryRateLimiter()
    _assert_spaced(await _spacing([limiter], "chat:1"))
    refused = await limiter.reserve("chat:1", 0.1, 0.2)
    assert not refused.granted and refused.delay > 0.2


async def test_limits_follow_the_settings(database_url: str) -> None:
    limits = Limits.from_settings(make_settings(database_url, **TELEGRAM_RATES))
    assert [k for k, _ in limits.keys_for(42)] == ["chat:42", "global"]
    assert [k for k, _ in limits.keys_for(-100)] == ["group:-100", "global"]
    assert limits.group_interval > 3.0 > limits.private_interval > limits.global_interval
    granted = await reserve_all(MemoryRateLimiter(), limits.keys_for(42), 1.0)
    assert granted.granted and granted.delay == 0


@pytest.mark.postgres
async def test_two_workers_share_one_postgres_limit(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engines = [make_engine(database_url) for _ in range(2)]
    limiters: list[RateLimiter] = [PostgresRateLimiter(make_sessionmaker(e)) for e in engines]
    try:
        _assert_spaced(await _spacing(limiters, "chat:7"))
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
async def test_two_workers_share_one_redis_limit() -> None:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    limiters: list[RateLimiter] = [
        RedisRateLimiter(url, prefix=f"test-{os.getpid()}:") for _ in range(2)
    ]
    try:
        _assert_spaced(await _spacing(limiters, "chat:7"))
    finally:
        for limiter in limiters:
            await limiter.close()
