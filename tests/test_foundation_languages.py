"""Languages: Telegram's language first, /language to change it (completeness: test_locales)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.i18n import Catalogs
from models.accounts import Account
from tests.conftest import BotHarness

# The public's /help (#13: what to press or write, not a list of commands).
HELP_WORD = {
    "it": "Scegli ciò di cui hai bisogno",
    "en": "Choose what you need",
    "fr": "Choisissez ce dont vous avez besoin",
    "ar": "اختر ما تحتاجه",
}


def test_the_four_languages_are_offered() -> None:
    assert set(Catalogs("it").languages) >= {"it", "en", "fr", "ar"}


@pytest.mark.parametrize("language", ["it", "en", "fr", "ar"])
async def test_the_bot_answers_in_the_telegram_apps_language(
    bot: BotHarness, language: str
) -> None:
    user = 4000
    bot.fake.add_user(user, language_code=language)
    reply = (await bot.says(user, "/help"))[-1]["text"]
    assert HELP_WORD[language] in reply


async def test_an_unsupported_language_falls_back_to_italian(bot: BotHarness) -> None:
    bot.fake.add_user(4001, language_code="zz")
    assert HELP_WORD["it"] in (await bot.says(4001, "/help"))[-1]["text"]


async def test_language_menu_switches_language_and_it_sticks(bot: BotHarness) -> None:
    user = 4002
    menu = (await bot.says(user, "/language"))[-1]
    await bot.presses(user, menu, "Français")

    assert HELP_WORD["fr"] in (await bot.says(user, "/help"))[-1]["text"]
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == user))
    assert account is not None and account.language == "fr"
    menu_now = bot.fake.commands_for(user)
    assert any("langue" in c["description"].lower() for c in menu_now)


async def test_the_public_menu_is_published_in_every_language(bot: BotHarness) -> None:
    await bot.running.publish_default_menus()

    stranger = 4100
    italian = {c["description"] for c in bot.fake.commands_for(stranger)}
    french = {c["description"] for c in bot.fake.commands_for(stranger, language_code="fr")}
    assert "Cambia lingua" in italian
    assert "Changer de langue" in french
    assert not any(c["command"] == "invite" for c in bot.fake.commands_for(stranger))
