"""Languages: Telegram's language first, /language to change it, catalogues complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from bot.i18n import LOCALES_DIR, Catalogs
from models.accounts import Account
from tests.conftest import BotHarness

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
REQUIRED = ["it", "fr", "ar"]
HELP_WORD = {
    "it": "Cosa puoi fare",
    "en": "What you can do",
    "fr": "Ce que vous pouvez faire",
    "ar": "ما يمكنك",
}


def source_messages() -> set[str]:
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, keywords=KEYWORDS, method_map=[("**.py", "python")]
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue(language: str) -> dict[str, str]:
    translations: dict[str, str] = {}
    for po_file in (LOCALES_DIR / language / "LC_MESSAGES").glob("*.po"):
        with po_file.open("rb") as handle:
            for message in read_po(handle):
                if message.id and not message.fuzzy:
                    key = message.id if isinstance(message.id, str) else message.id[0]
                    value = message.string if isinstance(message.string, str) else message.string[0]
                    translations[key] = value
    return translations


@pytest.mark.parametrize("language", REQUIRED)
def test_every_string_a_person_reads_is_translated(language: str) -> None:
    translations = catalogue(language)
    missing = sorted(m for m in source_messages() if not translations.get(m))
    assert missing == [], f"{language}: {len(missing)} untranslated, e.g. {missing[:3]}"


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
