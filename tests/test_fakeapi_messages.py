"""The fake Bot API sends, edits and validates messages like Telegram: ids, keyboards,
parse modes, limits, blocked users, callback answers, command menus."""

from __future__ import annotations

import json
from typing import Any

import pytest
from telegram import ReplyKeyboardMarkup, Update

from fakebotapi import FakeTelegram, callback_update, group_chat_dict, parse_entities
from tests.fakeapi_helpers import LUCA, MARTA, TAKE_IT, TOKEN, error, send


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


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


# ---- errors -----------------------------------------------------------------------------


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


# ---- commands, callback queries, builders -----------------------------------------------


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
