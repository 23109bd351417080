"""The fake Bot API's envelope and update queue behave like Telegram's: offsets, redelivery,
long polling, conflicts."""

from __future__ import annotations

import asyncio
import time

import pytest

from fakebotapi import FakeRequest, FakeTelegram
from tests.fakeapi_helpers import MARTA, TOKEN, error, send


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


# ---- envelope and methods ---------------------------------------------------------------


def test_get_me_envelope_and_case_insensitive_method(fake: FakeTelegram) -> None:
    status, body = send(fake, "GETME")
    assert status == 200 and body["ok"] is True
    assert body["result"]["id"] == 777000 and body["result"]["is_bot"] is True
    assert body["result"]["username"] == "helpcenter_test_bot"
    assert fake.calls[-1].method == "getMe"


def test_unknown_method_is_404_like_telegram(fake: FakeTelegram) -> None:
    assert send(fake, "sendCarrierPigeon") == (404, error(404, "Not Found"))


# ---- updates: offsets, redelivery, long polling -----------------------------------------


def test_unconfirmed_updates_are_redelivered_and_offset_confirms(fake: FakeTelegram) -> None:
    ids = [fake.push_update(MARTA.says(f"msg {n}")) for n in range(3)]
    assert ids == [1, 2, 3]

    first = send(fake, "getUpdates")[1]["result"]
    again = send(fake, "getUpdates")[1]["result"]
    assert [u["update_id"] for u in first] == [u["update_id"] for u in again] == ids

    _, body = send(fake, "getUpdates", offset=2)
    assert [u["update_id"] for u in body["result"]] == [2, 3]
    assert fake.confirmed_up_to == 1
    assert [u["update_id"] for u in fake.pending_updates()] == [2, 3]

    assert send(fake, "getUpdates", offset=4)[1]["result"] == []
    assert fake.pending_updates() == [] and fake.confirmed_up_to == 3
    assert fake.push_update(MARTA.says("later")) == 4


def test_get_updates_limit_and_allowed_updates(fake: FakeTelegram) -> None:
    for n in range(5):
        fake.push_update(MARTA.says(str(n)))
    assert len(send(fake, "getUpdates", limit=2)[1]["result"]) == 2
    fake.push_update({"message_reaction": {"chat": MARTA.chat, "message_id": 1}})
    kinds = {next(k for k in u if k != "update_id") for u in send(fake, "getUpdates")[1]["result"]}
    assert kinds == {"message"}  # reactions are not delivered by default
    fake.push_update(MARTA.says("x"))
    assert send(fake, "getUpdates", allowed_updates='["callback_query"]')[1]["result"] == []


async def test_long_poll_wakes_when_an_update_is_pushed(fake: FakeTelegram) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(fake.handle("getUpdates", {"timeout": 10}))
    await asyncio.sleep(0.05)
    assert not poll.done()
    fake.push_update(MARTA.says("hello"))
    status, body = await asyncio.wait_for(poll, 1)
    assert status == 200 and body["result"][0]["message"]["text"] == "hello"
    assert time.monotonic() - started < 1


async def test_long_poll_returns_empty_after_timeout(fake: FakeTelegram) -> None:
    started = time.monotonic()
    status, body = await fake.handle("getUpdates", {"timeout": 0.2})
    assert (status, body) == (200, {"ok": True, "result": []})
    assert 0.15 < time.monotonic() - started < 1


async def test_second_poller_terminates_first_with_409(fake: FakeTelegram) -> None:
    first = asyncio.create_task(fake.handle("getUpdates", {"timeout": 5}))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(fake.handle("getUpdates", {"timeout": 0.1}))
    status, body = await asyncio.wait_for(first, 1)
    assert status == 409 and body["description"].startswith("Conflict: terminated by other")
    assert (await second)[0] == 200


def test_get_updates_conflicts_with_active_webhook(fake: FakeTelegram) -> None:
    send(fake, "setWebhook", url="https://example.org/hook")
    assert send(fake, "getUpdates")[0] == 409
    assert send(fake, "getWebhookInfo")[1]["result"]["url"] == "https://example.org/hook"
    fake.push_update(MARTA.says("x"))
    send(fake, "deleteWebhook", drop_pending_updates=True)
    assert send(fake, "getUpdates")[1]["result"] == []


async def test_parameters_in_the_query_string_count_as_telegram_counts_them(
    fake: FakeTelegram,
) -> None:
    """The fetch loop asks ``getUpdates`` with its parameters in the query string."""
    request = FakeRequest(fake)
    fake.user_writes(MARTA.id, "uno")
    fake.user_writes(MARTA.id, "due")
    url = f"https://api.telegram.org/bot{TOKEN}/getUpdates"

    first = await request.post(f"{url}?timeout=0&limit=1")
    assert isinstance(first, list) and [u["message"]["text"] for u in first] == ["uno"]
    offset = first[0]["update_id"] + 1
    rest = await request.post(f"{url}?timeout=0&offset={offset}")
    assert isinstance(rest, list) and [u["message"]["text"] for u in rest] == ["due"]
    assert fake.confirmed_up_to == first[0]["update_id"]
