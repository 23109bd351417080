"""The fake Bot API over real HTTP (:mod:`fakebotapi.server`, needs the aiohttp extra)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import telegram
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer
from tests.fakeapi_helpers import MARTA, TAKE_IT, TOKEN


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


# ---- over real HTTP ---------------------------------------------------------------------


async def test_http_server_round_trip_with_default_ptb_request(fake: FakeTelegram) -> None:
    async with FakeTelegramServer(fake) as server:
        http_bot = telegram.Bot(TOKEN, base_url=server.base_url)
        async with http_bot, httpx.AsyncClient(base_url=server.base_url[:-4]) as control:
            assert http_bot.username == "helpcenter_test_bot"
            start = MARTA.says("/start")
            del start["message"]["message_id"]  # let the fake number it
            pushed = await control.post("/_control/push_update", json=start)
            assert pushed.json() == {"ok": True, "result": 1}
            await control.post(
                "/_control/user_writes", json={"user_id": MARTA.id, "location": [45.53, 10.21]}
            )
            updates = await http_bot.get_updates(timeout=1)
            assert updates[0].message.text == "/start"
            assert updates[1].message.location.longitude == pytest.approx(10.21)

            sent = await http_bot.send_message(MARTA.id, "Ciao", reply_markup=TAKE_IT)
            assert (sent.message_id, sent.chat.id) == (3, MARTA.id)
            photo = await http_bot.send_photo(MARTA.id, photo=b"\x89PNG", caption="p")
            assert photo.photo[-1].file_size == 4

            await control.post(
                "/_control/fail_next",
                json={
                    "method": "sendMessage",
                    "status": 429,
                    "description": "Too Many Requests: retry after 2",
                    "retry_after": 2,
                },
            )
            with pytest.raises(RetryAfter) as retry:
                await http_bot.send_message(MARTA.id, "x")
            assert retry.value.retry_after == 2
            await control.post("/_control/block", json={"user_id": MARTA.id})
            with pytest.raises(Forbidden):
                await http_bot.send_message(MARTA.id, "x")
            with pytest.raises(BadRequest, match="Chat not found"):
                await http_bot.send_message(4242, "x")

            sent_now = (await control.get("/_control/sent")).json()["result"]
            assert [m["message_id"] for m in sent_now] == [3, 4]
            await http_bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
            assert (await control.get("/_control/pending")).json()["result"] == []

            fake.unblock(MARTA.id)
            fake.delay("sendMessage", 1)
            with pytest.raises(TimedOut):
                await http_bot.send_message(MARTA.id, "slow", read_timeout=0.2)
            fake.clear_faults()
            fake.disconnect_next("sendMessage")
            with pytest.raises(NetworkError):
                await http_bot.send_message(MARTA.id, "lost")
            assert fake.last_text(MARTA.id) == "slow"


async def test_http_server_rejects_wrong_token(fake: FakeTelegram) -> None:
    async with FakeTelegramServer(fake) as server, httpx.AsyncClient() as client:
        reply = await client.post(f"{server.base_url}999:WRONG/getMe")
        assert reply.status_code == 401
        assert reply.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        reply = await client.get(f"{server.base_url}{TOKEN}/getMe")
        assert reply.json()["result"]["id"] == 777000


def test_cli_serves_until_killed() -> None:
    command = [sys.executable, "-m", "fakebotapi", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/bot")
            reply = httpx.get(f"{base_url}{TOKEN}/getMe", timeout=5)
            assert reply.json()["ok"] is True
        finally:
            proc.kill()
