"""The fake Telegram Bot API behaves like Telegram where the bot depends on it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import telegram
from telegram import (
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.fakeapi import (
    ApiCall,
    FakeRequest,
    FakeTelegram,
    FakeTelegramServer,
    callback_update,
    group_chat_dict,
    parse_entities,
)
from tests.builders import TelegramUser

TOKEN = "123:TEST"
MARTA = TelegramUser(1001, "Marta", "it")
LUCA = TelegramUser(1002, "Luca", "en")
TAKE_IT = InlineKeyboardMarkup([[InlineKeyboardButton("Take it", callback_data="take:7")]])


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    tg_bot = telegram.Bot(TOKEN, request=FakeRequest(fake), get_updates_request=FakeRequest(fake))
    await tg_bot.initialize()
    yield tg_bot
    await tg_bot.shutdown()


def send(fake: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    return fake.handle_now(method, params)


def error(status: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


async def eventually(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ---- envelope and methods -------------------------------------------------------------


def test_get_me_envelope_and_case_insensitive_method(fake: FakeTelegram) -> None:
    status, body = send(fake, "GETME")
    assert status == 200 and body["ok"] is True
    assert body["result"]["id"] == 777000 and body["result"]["is_bot"] is True
    assert body["result"]["username"] == "helpcenter_test_bot"
    assert fake.calls[-1].method == "getMe"


def test_unknown_method_is_404_like_telegram(fake: FakeTelegram) -> None:
    assert send(fake, "sendCarrierPigeon") == (404, error(404, "Not Found"))


# ---- updates: offsets, redelivery, long polling ------------------------------------------


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


# ---- sending ----------------------------------------------------------------------------


def test_message_ids_increase_per_chat(fake: FakeTelegram) -> None:
    fake.user_writes(MARTA.id, "/start")  # Marta's message is id 1 in her chat
    fake.user_writes(LUCA.id, "/start")
    ids = {
        uid: [
            send(fake, "sendMessage", chat_id=uid, text="hi")[1]["result"]["message_id"]
            for _ in range(3)
        ]
        for uid in (MARTA.id, LUCA.id)
    }
    assert ids == {MARTA.id: [2, 3, 4], LUCA.id: [2, 3, 4]}
    fake.user_writes(MARTA.id, "again")  # id 5: user and bot share the sequence
    assert (
        send(fake, "sendMessage", chat_id=str(MARTA.id), text="x")[1]["result"]["message_id"] == 6
    )


def test_sent_message_is_a_full_message_and_markup_json_string_is_parsed(
    fake: FakeTelegram,
) -> None:
    fake.user_writes(MARTA.id, "/start")
    markup = json.dumps(TAKE_IT.to_dict())
    status, body = send(
        fake, "sendMessage", chat_id=str(MARTA.id), text="New request", reply_markup=markup
    )
    msg = body["result"]
    assert status == 200
    assert msg["from"]["id"] == 777000 and msg["chat"] == {
        "id": 1001,
        "type": "private",
        "first_name": "Ada",
    }
    assert msg["text"] == "New request" and isinstance(msg["date"], int)
    assert fake.buttons(msg) == [["Take it"]]
    assert fake.callback_data_for(msg, "Take it") == "take:7"
    assert fake.texts(MARTA.id) == ["New request"] and fake.last_text(MARTA.id) == "New request"


def test_reply_keyboard_is_not_echoed_but_visible_to_tests(fake: FakeTelegram) -> None:
    MARTA.register(fake)
    keyboard = ReplyKeyboardMarkup([["📍 Send location", "Help"]]).to_dict()
    msg = send(fake, "sendMessage", chat_id=MARTA.id, text="Menu", reply_markup=keyboard)[1][
        "result"
    ]
    assert "reply_markup" not in msg
    assert fake.buttons(msg) == [["📍 Send location", "Help"]]
    assert fake.reply_keyboard(MARTA.id) == [["📍 Send location", "Help"]]
    send(fake, "sendMessage", chat_id=MARTA.id, text="Bye", reply_markup={"remove_keyboard": True})
    assert fake.reply_keyboard(MARTA.id) is None


def test_html_parse_mode_gives_plain_text_and_entities(fake: FakeTelegram) -> None:
    text, entities = parse_entities('<b>Via</b> Roma &amp; <a href="https://x.org">map</a>', "HTML")
    assert text == "Via Roma & map"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "text_link", "offset": 11, "length": 3, "url": "https://x.org"},
    ]
    fake.add_user(MARTA.as_dict)
    status, body = send(fake, "sendMessage", chat_id=MARTA.id, text="I <3 you", parse_mode="HTML")
    assert status == 400 and body["description"].startswith("Bad Request: can't parse entities")
    assert parse_entities(r"*Hi* Marta\!", "MarkdownV2") == (
        "Hi Marta!",
        [{"type": "bold", "offset": 0, "length": 2}],
    )


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"chat_id": 1001, "text": ""}, (400, "Bad Request: message text is empty")),
        ({"chat_id": 1001}, (400, "Bad Request: message text is empty")),
        ({"chat_id": 1001, "text": "x" * 4097}, (400, "Bad Request: message is too long")),
        ({"chat_id": 4242, "text": "hi"}, (400, "Bad Request: chat not found")),
        (
            {
                "chat_id": 1001,
                "text": "hi",
                "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": "x" * 65}]]},
            },
            (400, "Bad Request: BUTTON_DATA_INVALID"),
        ),
    ],
)
def test_send_message_validation(
    fake: FakeTelegram,
    params: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    fake.add_user(MARTA.as_dict)
    status, body = send(fake, "sendMessage", **params)
    assert (status, body) == (expected[0], error(*expected))
    assert fake.sent_messages() == []


def test_text_of_exactly_4096_chars_is_accepted(fake: FakeTelegram) -> None:
    fake.add_user(MARTA.as_dict)
    assert send(fake, "sendMessage", chat_id=MARTA.id, text="x" * 4096)[0] == 200


def test_blocked_and_deactivated_users_answer_403(fake: FakeTelegram) -> None:
    fake.add_user(MARTA.as_dict)
    fake.add_user(LUCA.as_dict)
    fake.block(MARTA.id)
    fake.deactivate(LUCA.id)
    assert send(fake, "sendMessage", chat_id=MARTA.id, text="hi") == (
        403,
        error(403, "Forbidden: bot was blocked by the user"),
    )
    assert send(fake, "sendPhoto", chat_id=LUCA.id, photo="https://x.org/a.jpg") == (
        403,
        error(403, "Forbidden: user is deactivated"),
    )
    fake.unblock(MARTA.id)
    assert send(fake, "sendMessage", chat_id=MARTA.id, text="hi")[0] == 200


def test_edit_and_delete_errors(fake: FakeTelegram) -> None:
    fake.user_writes(MARTA.id, "/start")
    assert send(fake, "editMessageText", chat_id=MARTA.id, message_id=99, text="x") == (
        400,
        error(400, "Bad Request: message to edit not found"),
    )
    msg = send(fake, "sendMessage", chat_id=MARTA.id, text="Open", reply_markup=TAKE_IT.to_dict())
    mid = msg[1]["result"]["message_id"]
    status, body = send(
        fake,
        "editMessageText",
        chat_id=MARTA.id,
        message_id=mid,
        text="Open",
        reply_markup=TAKE_IT.to_dict(),
    )
    assert status == 400 and body["description"].startswith("Bad Request: message is not modified")
    status, body = send(fake, "editMessageText", chat_id=MARTA.id, message_id=mid, text="Taken")
    assert status == 200 and "reply_markup" not in body["result"]  # keyboard dropped, like TG
    assert body["result"]["edit_date"] >= body["result"]["date"]
    assert (
        send(fake, "editMessageText", chat_id=MARTA.id, message_id=1, text="x")[1]["description"]
        == "Bad Request: message can't be edited"
    )
    assert send(fake, "deleteMessage", chat_id=MARTA.id, message_id=mid)[0] == 200
    assert send(fake, "deleteMessage", chat_id=MARTA.id, message_id=mid) == (
        400,
        error(400, "Bad Request: message to delete not found"),
    )
    assert fake.texts(MARTA.id) == ["Open", "Taken"]


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


def test_commands_resolve_by_scope_and_language(fake: FakeTelegram) -> None:
    fake.add_user(MARTA.as_dict)
    fake.register_chat(group_chat_dict(-100123))

    def commands(**params: Any) -> None:
        assert send(fake, "setMyCommands", **params)[1] == {"ok": True, "result": True}

    commands(commands=[{"command": "help", "description": "Help"}])
    commands(commands=[{"command": "help", "description": "Aiuto"}], language_code="it")
    commands(
        commands=[{"command": "report", "description": "Report"}],
        scope={"type": "all_private_chats"},
    )
    commands(
        commands=json.dumps([{"command": "admin", "description": "Admin"}]),
        scope=json.dumps({"type": "chat", "chat_id": MARTA.id}),
    )

    assert [c["command"] for c in fake.commands_for(MARTA.id)] == ["admin"]
    assert [c["command"] for c in fake.commands_for(LUCA.id)] == ["report"]
    assert fake.commands_for(-100123, "it") == [{"command": "help", "description": "Aiuto"}]
    assert fake.commands_for(-100123, "de") == [{"command": "help", "description": "Help"}]
    assert send(fake, "getMyCommands", scope={"type": "all_private_chats"})[1]["result"] == [
        {"command": "report", "description": "Report"}
    ]
    send(fake, "deleteMyCommands", scope={"type": "chat", "chat_id": MARTA.id})
    assert [c["command"] for c in fake.commands_for(MARTA.id)] == ["report"]
    assert (
        send(fake, "setMyCommands", commands=[{"command": "Bad-Cmd", "description": "x"}])[1][
            "description"
        ]
        == "Bad Request: BOT_COMMAND_INVALID"
    )


def test_callback_queries_can_be_answered_once(fake: FakeTelegram) -> None:
    fake.user_writes(MARTA.id, "/start")
    msg = send(fake, "sendMessage", chat_id=MARTA.id, text="?", reply_markup=TAKE_IT.to_dict())
    fake.user_presses(MARTA.id, msg[1]["result"], "Take it")
    query = fake.pending_updates()[-1]["callback_query"]
    assert query["data"] == "take:7" and query["message"]["message_id"] == 2
    assert send(fake, "answerCallbackQuery", callback_query_id=query["id"])[0] == 200
    assert send(fake, "answerCallbackQuery", callback_query_id=query["id"])[0] == 400
    fake.clear()  # forgetting the recorded answers does not make the press answerable again
    assert send(fake, "answerCallbackQuery", callback_query_id=query["id"])[0] == 400
    with pytest.raises(LookupError):
        fake.user_presses(MARTA.id, msg[1]["result"], "Nope")


def test_a_press_on_an_inaccessible_message_leaves_nothing_to_edit(fake: FakeTelegram) -> None:
    """Telegram sends a press on a deleted or too old message with ``date`` 0 and no content
    (an InaccessibleMessage): editing it answers 400, as Telegram does."""
    gone = {"message_id": 41, "chat": MARTA.chat, "date": 0}
    fake.push_update(callback_update(MARTA.as_dict, gone, "take:7"))
    status, body = send(fake, "editMessageText", chat_id=MARTA.id, message_id=41, text="x")
    assert (status, body) == (400, error(400, "Bad Request: message to edit not found"))


def test_builders_make_telegram_shaped_updates() -> None:
    update = MARTA.says("/start@helpcenter_test_bot hi")
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 26}]
    assert update["message"]["chat"]["type"] == "private"
    assert MARTA.says("hello")["message"].get("entities") is None
    loc = MARTA.shares_location(45.53, 10.21)["message"]["location"]
    assert loc == {"latitude": 45.53, "longitude": 10.21}
    bot_msg = {
        "message_id": 5,
        "chat": MARTA.chat,
        "date": 0,
        "text": "?",
        "reply_markup": TAKE_IT.to_dict(),
    }
    assert MARTA.presses(bot_msg, "Take it")["callback_query"]["data"] == "take:7"
    assert Update.de_json({"update_id": 1, **MARTA.sends_photo("pic")}, None).message.photo


# ---- a real PTB Bot over FakeRequest ------------------------------------------------------


async def test_ptb_bot_round_trip(fake: FakeTelegram, bot: telegram.Bot) -> None:
    assert bot.id == 777000 and bot.username == "helpcenter_test_bot"
    fake.user_writes(MARTA.id, "/start")
    fake.user_writes(MARTA.id, None, location=(45.53, 10.21))

    updates = await bot.get_updates(timeout=0)
    assert [u.message.message_id for u in updates] == [1, 2]
    assert updates[0].message.text == "/start" and updates[0].message.entities[0].type == (
        "bot_command"
    )
    assert updates[1].message.location.latitude == pytest.approx(45.53)

    sent = await bot.send_message(MARTA.id, "Nuova richiesta", reply_markup=TAKE_IT)
    assert isinstance(sent, telegram.Message)
    assert (sent.message_id, sent.chat.id, sent.from_user.id) == (3, MARTA.id, 777000)
    assert sent.reply_markup == TAKE_IT

    fake.user_presses(MARTA.id, fake.last_message(MARTA.id) or {}, "Take it")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    query = updates[0].callback_query
    assert query.data == "take:7" and query.message.message_id == 3
    assert await query.answer("Presa!")
    assert fake.callback_answers[query.id]["text"] == "Presa!"
    edited = await bot.edit_message_text("Presa in carico", chat_id=MARTA.id, message_id=3)
    assert edited.text == "Presa in carico" and edited.reply_markup is None
    assert fake.confirmed_up_to == 2


async def test_ptb_bot_sees_telegram_errors_as_ptb_exceptions(
    fake: FakeTelegram,
    bot: telegram.Bot,
) -> None:
    fake.add_user(MARTA.as_dict)
    fake.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    with pytest.raises(RetryAfter) as retry:
        await bot.send_message(MARTA.id, "x")
    assert retry.value.retry_after == 7
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(31337, "x")
    fake.block(MARTA.id)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(MARTA.id, "x")
    fake.unblock(MARTA.id)
    fake.disconnect_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(MARTA.id, "x")
    fake.delay("sendMessage", 0.5)
    with pytest.raises(TimedOut):
        await bot.send_message(MARTA.id, "slow", read_timeout=0.1)
    assert fake.last_text(MARTA.id) == "slow"  # Telegram got it even though we timed out
    fake.clear_faults()
    fake.webhook_url = "https://example.org/hook"
    with pytest.raises(Conflict):
        await bot.get_updates()


async def test_ptb_uploads_and_files(fake: FakeTelegram, bot: telegram.Bot) -> None:
    fake.user_writes(MARTA.id, None, photo=True)
    user_photo = (await bot.get_updates())[0].message.photo[-1]
    assert "/photos/file_" in (await bot.get_file(user_photo.file_id)).file_path
    sent = await bot.send_photo(MARTA.id, photo=b"\x89PNG...", caption="Mappa")
    assert sent.caption == "Mappa" and sent.photo[-1].file_id
    again = await bot.send_photo(MARTA.id, photo=sent.photo[-1].file_id)
    assert again.photo[-1].file_id == sent.photo[-1].file_id
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_photo(MARTA.id, photo="no-such-file-id")
    doc = await bot.send_document(MARTA.id, document=b"%PDF", filename="turni.pdf")
    assert doc.document.file_name == "turni.pdf"
    album = await bot.send_media_group(
        MARTA.id, [telegram.InputMediaPhoto(b"a"), telegram.InputMediaPhoto(b"b")]
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    venue = await bot.send_venue(MARTA.id, 45.5, 10.2, "Help Center", "Via Roma 1")
    assert venue.venue.title == "Help Center"
    assert await bot.send_chat_action(MARTA.id, "typing")
    await bot.set_my_commands([("start", "Avvia")], scope=BotCommandScopeAllPrivateChats())
    await bot.set_my_commands([("admin", "Admin")], scope=BotCommandScopeChat(MARTA.id))
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(MARTA.id))] == [
        "admin"
    ]
    assert (await bot.get_chat(MARTA.id)).first_name == "Ada"


async def test_ptb_application_polls_and_replies(fake: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Benvenuto!", reply_markup=TAKE_IT)

    async def take(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer()
        await update.callback_query.edit_message_text("Presa in carico")

    app = (
        Application.builder()
        .token(TOKEN)
        .request(FakeRequest(fake))
        .get_updates_request(FakeRequest(fake))
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(take))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        fake.user_writes(MARTA.id, "/start")
        await eventually(lambda: fake.last_text(MARTA.id) == "Benvenuto!")
        fake.user_presses(MARTA.id, fake.last_message(MARTA.id) or {}, "Take it")
        await eventually(lambda: fake.last_text(MARTA.id) == "Presa in carico")
        await app.updater.stop()
        await app.stop()
    assert len(fake.callback_answers) == 1
    assert fake.max_rate(1.0, chat_id=MARTA.id) <= 2


# ---- over real HTTP -------------------------------------------------------------------------


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
    command = [sys.executable, "-m", "bot.fakeapi", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/bot")
            reply = httpx.get(f"{base_url}{TOKEN}/getMe", timeout=5)
            assert reply.json()["ok"] is True
        finally:
            proc.kill()


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
