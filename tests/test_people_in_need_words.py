"""What people read is right in their language (issue #13, "People in need" and "Language"):
shelter lists that say what their names say, closures with their note, labels that fit,
plurals, words instead of codes, "just now", kilometres, and emoji that are just text.
"""

from __future__ import annotations

import re

import pytest

from handlers.directory_common import MAX_PAIRED_LABEL
from models.directory import service_by_key, set_beds
from models.roles import Role
from tests.conftest import BotHarness
from tests.directory_helpers import STATION, load_example, set_local_time, texts, venues

PERSON, OPERATOR = 701, 702
VIA_ROSE = (45.5449, 10.2262)


# ---- shelters, winter beds, closures, labels --------------------------------------------------


async def test_night_shelters_list_night_shelters_and_the_winter_list_only_winter_beds(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 18, 0)
    await bot.known(PERSON)
    menu = (await bot.says(PERSON, "/services"))[-1]
    await bot.presses(PERSON, menu, "🛏 Dormitori")
    shelters = texts(await bot.says(PERSON, location=VIA_ROSE))
    assert "Casa San Martino" not in shelters  # the winter plan's beds at via Rose
    assert "Asilo notturno di via Corsica" in shelters

    menu = (await bot.says(PERSON, "/services"))[-1]
    await bot.presses(PERSON, menu, "❄️ Posti letto emergenza freddo")
    winter = await bot.says(PERSON, location=VIA_ROSE)
    assert venues(winter)[0]["title"].startswith("Casa San Martino")
    assert "Asilo notturno di via Corsica" not in texts(winter)
    assert "📅 Aperto nella stagione, dal 15 novembre al 31 marzo" in texts(winter)


async def test_a_bed_tonight_answers_across_night_shelters_and_winter_beds(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 18, 0)
    bot.fake.add_user(PERSON, language_code="fr")
    tonight = texts(await bot.says(PERSON, "où dormir ce soir ?"))
    assert "Casa San Martino" in tonight and "Asile de nuit de la via Corsica" in tonight
    assert "📅 Ouvert en saison, du 15 novembre au 31 mars" in tonight


@pytest.mark.parametrize(
    ("language", "christmas", "holiday", "meals"),
    [
        (
            "it",
            "⛔ Chiuso ven 25 dicembre: Christmas (example)",
            "⛔ Chiuso sab 26 dicembre",
            "🍲 Pasti e cibo",
        ),
        (
            "en",
            "⛔ Closed on Fri, December 25: Christmas (example)",
            "⛔ Closed on Sat, December 26",
            "🍲 Meals and food",
        ),
    ],
)
async def test_closure_notes_are_shown(
    bot: BotHarness, language: str, christmas: str, holiday: str, meals: str
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 23, 18, 0)
    await bot.known(PERSON, language_code=language)
    tonight = texts(await bot.says(PERSON, "/tonight"))
    assert christmas in tonight  # the Help Center's line
    menu = (await bot.says(PERSON, "/services"))[-1]
    await bot.presses(PERSON, menu, meals)
    found = texts(await bot.says(PERSON, location=STATION))
    assert holiday + ": Holiday (example)" in found  # the canteen


@pytest.mark.parametrize("language", ["it", "en", "fr", "ar"])
async def test_no_button_label_is_cut_off(bot: BotHarness, language: str) -> None:
    """Two buttons share a row only when both labels are short."""
    await bot.known(PERSON, language_code=language)
    keyboards = [(await bot.says(PERSON, command))[-1] for command in ("/services", "/start")]
    for message in keyboards:
        for row in bot.fake.buttons(message):
            if len(row) > 1:
                assert all(len(label) <= MAX_PAIRED_LABEL for label in row), row


# ---- language --------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "fresh"), [("it", "proprio ora"), ("fr", "à l'instant")])
async def test_a_count_just_given_reads_just_now_and_one_bed_is_singular(
    bot: BotHarness, language: str, fresh: str
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 19, 0)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica is not None
        await set_beds(session, corsica, free=1, by=None)
        await session.commit()
    await bot.known(PERSON, language_code=language)
    text = texts(await bot.says(PERSON, "/tonight"))
    assert fresh in text
    assert {"it": "1 libero su 60", "fr": "1 libre sur 60"}[language] in text
    assert "0 min" not in text


@pytest.mark.parametrize(("language", "km"), [("it", r"\d+,\d km"), ("en", r"\d+\.\d km")])
async def test_distances_from_one_kilometre_read_in_kilometres(
    bot: BotHarness, language: str, km: str
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.known(PERSON, language_code=language)
    menu = (await bot.says(PERSON, "/services"))[-1]
    legal = next(label for row in bot.fake.buttons(menu) for label in row if "📄" in label)
    await bot.presses(PERSON, menu, legal)
    far = (45.5600, 10.2500)  # some kilometres north-east of everything
    found = await bot.says(PERSON, location=far)
    assert re.search(km, texts(found)), texts(found)
    assert not re.search(r"\d{4} m\b", texts(found))
    assert all(re.search(km, v["address"]) for v in venues(found))


@pytest.mark.parametrize(
    ("language", "country", "tongues"),
    [("it", "Marocco", "arabo, francese"), ("fr", "Maroc", "arabe, français")],
)
async def test_nationality_and_languages_read_as_words(
    bot: BotHarness, language: str, country: str, tongues: str
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR, language_code=language)
    created = await bot.says(OPERATOR, "/person new MR 1985 M")
    code = re.search(r"[A-Z]{2}\d{4}[FMX]\d*-[0-9A-Z]", texts(created))
    assert code is not None
    shown = texts(
        await bot.says(OPERATOR, f"/person {code.group(0)} set nationality=MA languages=ar,fr")
    )
    assert country in shown and tongues in shown
    assert "MA\n" not in shown and "ar,fr" not in shown


@pytest.mark.parametrize(("language", "role"), [("it", "volontario"), ("fr", "bénévole")])
async def test_my_data_shows_the_role_and_language_as_words(
    bot: BotHarness, language: str, role: str
) -> None:
    await bot.grant(PERSON, Role.VOLUNTEER, language_code=language)
    menu = (await bot.says(PERSON, "/language"))[-1]
    await bot.presses(PERSON, menu, {"it": "Italiano", "fr": "Français"}[language])
    text = (await bot.says(PERSON, "/mydata"))[-1]["text"]
    assert role in text.lower()
    assert "volunteer" not in text
    assert {"it": "italiano", "fr": "français"}[language] in text


@pytest.mark.parametrize("text", ["👨‍👩‍👧 ho fame", "👩‍⚕️ j'ai besoin d'un médecin"])
async def test_emoji_with_zero_width_joiners_are_ordinary_text(bot: BotHarness, text: str) -> None:
    await load_example(bot)
    await bot.known(PERSON)
    answer = texts(await bot.says(PERSON, text))
    assert "caratteri nascosti" not in answer


async def test_invisible_characters_pasted_into_a_persons_code_are_stripped(
    bot: BotHarness,
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    created = await bot.says(OPERATOR, "/person new MR 1985 M")
    found = re.search(r"[A-Z]{2}\d{4}[FMX]\d*-[0-9A-Z]", texts(created))
    assert found is not None
    code = found.group(0)
    pasted = "\u200b" + code[:4] + "\u200d" + code[4:] + "\ufeff"
    shown = texts(await bot.says(OPERATOR, f"/person {pasted}"))
    assert code in shown and "Persona" in shown
