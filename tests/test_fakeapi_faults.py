"""Faults injected into the fake Bot API answer with Telegram's envelopes; the optional flood
limit answers 429 with retry_after; the send rate is measured over a sliding window."""

from __future__ import annotations

import pytest

from fakebotapi import ApiCall, FakeTelegram
from tests.fakeapi_helpers import MARTA, TOKEN, error, send


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


# ---- faults and flood control -----------------------------------------------------------


def test_injected_faults_have_telegram_envelopes(fake: FakeTelegram) -> None:
    fake.add_user(MARTA.as_dict)
    fake.fail_next(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 3",
        retry_after=3,
        times=2,
    )
    expected_429 = (429, error(429, "Too Many Requests: retry after 3", retry_after=3))
    assert send(fake, "getMe")[0] == 200  # other methods unaffected
    assert send(fake, "sendMessage", chat_id=MARTA.id, text="a") == expected_429
    assert send(fake, "sendmessage", chat_id=MARTA.id, text="a") == expected_429
    assert send(fake, "sendMessage", chat_id=MARTA.id, text="a")[0] == 200

    fake.fail_next(None, status=502, description="Bad Gateway")
    assert send(fake, "getMe") == (502, error(502, "Bad Gateway"))

    fake.fail_where(
        lambda method, params: (
            (400, "Bad Request: chat not found", None)
            if method == "sendPhoto" and params.get("caption") == "boom"
            else None
        )
    )
    assert send(
        fake, "sendPhoto", chat_id=MARTA.id, photo="https://x.org/p.jpg", caption="boom"
    ) == (400, error(400, "Bad Request: chat not found"))
    assert send(fake, "sendPhoto", chat_id=MARTA.id, photo="https://x.org/p.jpg")[0] == 200
    assert [c.status for c in fake.calls_of("sendMessage")] == [429, 429, 200]


def test_flood_limit_answers_429_with_retry_after(fake: FakeTelegram) -> None:
    fake.add_user(MARTA.as_dict)
    fake.flood_limit(2, 60, retry_after=5)
    statuses = [send(fake, "sendMessage", chat_id=MARTA.id, text="x")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert fake.calls[-1].response["parameters"] == {"retry_after": 5}


def test_max_rate_uses_a_sliding_window(fake: FakeTelegram) -> None:
    def record(at: float, chat_id: int, method: str = "sendMessage", status: int = 200) -> None:
        fake.calls.append(ApiCall(method, {"chat_id": chat_id}, status, {"ok": True}, at))

    for at in (0.0, 0.5, 0.9, 1.2, 1.3, 1.4, 3.0):
        record(at, 1)
    record(1.35, 2)
    record(1.36, 2, status=429)  # failed sends don't count
    record(1.37, 2, method="sendChatAction")  # neither do chat actions
    assert fake.max_rate(1.0, chat_id=1) == 5  # 0.5 .. 1.4
    assert fake.max_rate(1.0) == 6
    assert fake.max_rate(0.25, chat_id=2) == 1
    assert fake.max_rate(1.0, chat_id=99) == 0
