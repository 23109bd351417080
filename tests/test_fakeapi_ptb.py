"""A real python-telegram-bot ``Bot`` and ``Application`` over :class:`FakeRequest` see the
fake Bot API as they see Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram
from telegram import BotCommandScopeAllPrivateChats, BotCommandScopeChat, Update
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from fakebotapi import FakeRequest, FakeTelegram
from tests.fakeapi_helpers import MARTA, TAKE_IT, TOKEN, eventually


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(token=TOKEN)


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    tg_bot = telegram.Bot(TOKEN, request=FakeRequest(fake), get_updates_request=FakeRequest(fake))
    await tg_bot.initialize()
    yield tg_bot
    await tg_bot.shutdown()


# ---- a real PTB Bot over FakeRequest ----------------------------------------------------


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


async def test_a_revoked_token_is_refused_in_process_and_over_http(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    """As after @BotFather's /revoke: the old token gets 401 from its next call, the new one
    works, and the updates waiting for the bot are still there for it."""
    from fakebotapi.server import FakeTelegramServer

    fake.user_writes(MARTA.id, "/start")
    new_token = fake.revoke_token()
    with pytest.raises(telegram.error.InvalidToken, match="Unauthorized"):
        await bot.get_updates(timeout=0)
    async with FakeTelegramServer(fake) as server:
        over_http = telegram.Bot(TOKEN, base_url=server.base_url)
        with pytest.raises(telegram.error.InvalidToken):
            await over_http.get_me()
    renewed = telegram.Bot(
        new_token, request=FakeRequest(fake), get_updates_request=FakeRequest(fake)
    )
    async with renewed:
        assert [u.message.text for u in await renewed.get_updates(timeout=0)] == ["/start"]
