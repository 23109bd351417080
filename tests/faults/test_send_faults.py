"""Bot API errors on sends: every alert to a reachable operator arrives exactly once."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from bot import metrics
from models.base import clock
from models.outbox import OutboxMessage, OutboxStatus
from models.roles import Role
from tests.conftest import BotHarness
from tests.delivery_helpers import account, alert, courier, send_due

__all__ = ["courier"]
OPERATORS = [6000 + n for n in range(40)]
BLOCKED = OPERATORS[:4]


def failures() -> dict[str, float]:
    return {
        kind: metrics.SEND_FAILURES.labels(kind=kind)._value.get()
        for kind in ("retry_after", "network", "blocked")
    }


async def test_injected_errors_deliver_each_alert_once_and_record_each_failure(
    courier: BotHarness,
) -> None:
    rng = random.Random(3)

    def chaos(method: str, params: dict[str, Any]) -> tuple[int, str, int | None] | None:
        if method != "sendMessage":
            return None
        roll = rng.random()
        if roll < 0.15:
            return 429, "Too Many Requests: retry after 1", 1
        if roll < 0.30:
            return 502, "Bad Gateway", None
        return None

    for operator in OPERATORS:
        await courier.grant(operator, Role.OPERATOR)
    for operator in BLOCKED:
        courier.fake.block(operator)
    courier.fake.fail_where(chaos)
    courier.fake.disconnect_next("sendMessage", times=5)
    before = failures()
    for operator in OPERATORS:
        await alert(courier, operator, f"Urgent request for {operator}", kind="urgent_alert")

    for _ in range(30):
        await send_due(courier)
        clock.advance(30)

    for operator in OPERATORS:
        expected = [] if operator in BLOCKED else [f"Urgent request for {operator}"]
        assert courier.fake.texts(operator) == expected
    async with courier.session() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert {r.chat_id for r in rows if r.status is OutboxStatus.FAILED} == set(BLOCKED)
    assert all(r.status is OutboxStatus.SENT for r in rows if r.chat_id not in BLOCKED)
    for operator in BLOCKED:
        assert (await account(courier, operator)).unreachable_since is not None
    after = failures()
    assert after["blocked"] - before["blocked"] == len(BLOCKED)
    assert after["retry_after"] > before["retry_after"]
    assert after["network"] - before["network"] >= 5
