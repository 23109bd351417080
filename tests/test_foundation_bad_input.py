"""Bad input gets a polite answer in the person's language, and is logged all the same."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fakebotapi import message_dict, user_dict
from models.exchange import Direction, Exchange, InboxStatus
from models.storable import storable_text
from tests.conftest import BotHarness

USER = 6001
READ_AS_WORDS = {"the longest text Telegram allows", "plain words", "half an emoji"}


async def _inbound(bot: BotHarness) -> list[Exchange]:
    async with bot.session() as session:
        query = select(Exchange).where(Exchange.direction == Direction.IN).order_by(Exchange.id)
        return list(await session.scalars(query))


@pytest.mark.parametrize(
    ("what", "kwargs"),
    [
        ("unknown command", {"text": "/frobnicate"}),
        ("sticker", {"sticker": True}),
        ("empty text", {"text": "   "}),
        ("control characters", {"text": "ciao\x00\x07\x1b[31m"}),
        ("half an emoji", {"text": "ciao \ud83d"}),
        ("the longest text Telegram allows", {"text": "a" * 4096}),
        ("plain words", {"text": "ho bisogno di aiuto"}),
    ],
)
async def test_bad_input_gets_a_polite_answer_and_is_logged(
    bot: BotHarness, what: str, kwargs: dict[str, object]
) -> None:
    await bot.known(USER)
    content = dict(kwargs)  # the parametrize dict is shared by both backends' runs
    text = content.pop("text", None)
    replies = await bot.says(USER, text, **content)  # type: ignore[arg-type]

    assert len(replies) == 1, what
    [row] = await _inbound(bot)
    assert row.status is InboxStatus.DONE
    if what in READ_AS_WORDS:  # issue #13: words are read for a need, answered with buttons
        assert row.flow is not None and row.flow.startswith("needs:")
        assert "inline_keyboard" in replies[0]["reply_markup"]
    else:
        assert "/help" in replies[0]["text"]
        assert row.flow == "fallback"
    if text is not None:  # as written, U+0000 and lone surrogates made U+FFFD
        assert row.text == storable_text(text)


async def test_an_edited_message_is_logged_and_acknowledged_once(bot: BotHarness) -> None:
    await bot.known(USER)
    sent = await bot.says(USER, "ciao")
    original = message_dict(user_dict(USER), "ciao", message_id=1)
    bot.fake.user_edits(USER, original, "ciao!")
    await bot.deliver()

    rows = await _inbound(bot)
    assert [r.kind for r in rows] == ["text", "edited_message"]
    assert len(bot.fake.sent_messages(USER)) == len(sent) + 1


async def test_cancel_with_nothing_open_says_so(bot: BotHarness) -> None:
    await bot.known(USER)
    replies = await bot.says(USER, "/cancel")
    assert "niente da annullare" in replies[-1]["text"]
