"""A person in need finds the way in without knowing any command (issue #13, "People in need").

The stories run on the example city through the fake Telegram, in Italian (the default) and in
French, English or Arabic where the person's phone says so.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.base import clock
from models.cases import Case, CaseKind, CaseStatus
from tests.cases_helpers import ANNA, BRUNO, VOLUNTEER, alerts_in, deliver_outbox, sweep, team
from tests.conftest import BotHarness
from tests.directory_helpers import load_example, set_local_time, texts

PERSON = 601
NEEDS_BUTTONS = {
    "it": "🛏 Un letto per stanotte",
    "en": "🛏 A bed tonight",
    "fr": "🛏 Un lit ce soir",
    "ar": "🛏 سرير الليلة",
}
DESK_BUTTON = {
    "it": "🆘 Parla con l'Help Center",
    "en": "🆘 Talk to the Help Center",
    "fr": "🆘 Parler au Help Center",
    "ar": "🆘 تحدّث إلى مركز المساعدة",
}


def labels(bot: BotHarness, message: dict[str, object]) -> list[str]:
    return [label for row in bot.fake.buttons(message) for label in row]


@pytest.mark.parametrize("language", ["it", "en", "fr", "ar"])
async def test_start_and_help_answer_with_buttons_for_what_people_come_for(
    bot: BotHarness, language: str
) -> None:
    bot.fake.add_user(PERSON, language_code=language)
    for command in ("/start", "/help"):
        answer = (await bot.says(PERSON, command))[-1]
        buttons = labels(bot, answer)
        assert NEEDS_BUTTONS[language] in buttons and DESK_BUTTON[language] in buttons
        assert "/services" not in answer["text"] and "/tonight" not in answer["text"]


async def test_staff_keep_their_commands_and_get_the_buttons_too(bot: BotHarness) -> None:
    await team(bot, on_duty=())
    answer = (await bot.says(VOLUNTEER, "/help"))[-1]
    assert "/report" in answer["text"]
    assert NEEDS_BUTTONS["it"] in labels(bot, answer)


@pytest.mark.parametrize(
    ("language", "words", "expected"),
    [
        ("it", "ho bisogno di dormire", "Asilo notturno di via Corsica"),
        ("it", "Dove MANGIARE?", "🍲 Pasti e cibo: invia la tua posizione"),
        ("fr", "j'ai faim", "🍲 Repas et nourriture : envoyez votre position"),
        ("ar", "أين أنام", "مأوى ليلي في شارع كورسيكا"),
        ("en", "I need a shower", "🚿 Showers and hygiene: send your location"),
        ("fr", "je cherche un médecin", "🩺 Médecin et pharmacie : envoyez votre position"),
    ],
)
async def test_words_in_four_languages_lead_to_the_matching_category(
    bot: BotHarness, language: str, words: str, expected: str
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 18, 0)
    bot.fake.add_user(PERSON, language_code=language)
    await bot.known(PERSON, language_code=language)
    answer = texts(await bot.says(PERSON, words))
    assert expected in answer


@pytest.mark.parametrize(
    ("language", "words", "not_understood"),
    [
        ("it", "aiuto", "Non ho capito"),
        ("en", "help", "I did not understand"),
        ("it", "qwerty zxcv", "Non ho capito"),
        ("fr", "bonjour, qwerty", "Je n'ai pas compris"),
    ],
)
async def test_unclear_words_get_the_buttons_never_i_did_not_understand(
    bot: BotHarness, language: str, words: str, not_understood: str
) -> None:
    await bot.known(PERSON, language_code=language)
    [answer] = await bot.says(PERSON, words)
    assert not_understood not in answer["text"]
    assert NEEDS_BUTTONS[language] in labels(bot, answer)


async def test_staff_free_text_not_understood_is_no_dead_end(bot: BotHarness) -> None:
    await team(bot, on_duty=())
    [answer] = await bot.says(VOLUNTEER, "qwerty")
    assert "/help" in answer["text"] and NEEDS_BUTTONS["it"] in labels(bot, answer)


@pytest.mark.parametrize("command", ["/nonexistent", "/cancel"])
async def test_an_unknown_command_or_nothing_to_cancel_still_offers_the_buttons(
    bot: BotHarness, command: str
) -> None:
    await bot.known(PERSON)
    [answer] = await bot.says(PERSON, command)
    assert NEEDS_BUTTONS["it"] in labels(bot, answer)


async def test_near_me_asks_for_the_location_then_what_is_needed(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 18, 0)
    await bot.known(PERSON)
    menu = (await bot.says(PERSON, "/start"))[-1]
    asked = await bot.presses(PERSON, menu, "📍 Vicino a me")
    assert bot.fake.reply_keyboard(PERSON) == [["📍 Invia la mia posizione"]]
    assert "posizione" in texts(asked)
    after = await bot.says(PERSON, location=(45.532408, 10.212783))
    assert "Che cosa cerchi lì vicino?" in texts(after)


# ---- talk to the Help Center -----------------------------------------------------------------


async def _requests(bot: BotHarness) -> list[Case]:
    async with bot.session() as session:
        return list(await session.scalars(select(Case).where(Case.kind == CaseKind.HELP_REQUEST)))


async def test_a_person_writes_to_the_help_center_and_the_desk_is_alerted(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    await team(bot)
    set_local_time(2026, 12, 2, 10, 0)  # Wednesday morning: the desk is open
    bot.fake.add_user(PERSON, language_code="fr")
    menu = (await bot.says(PERSON, "/start"))[-1]
    asked = texts(await bot.presses(PERSON, menu, DESK_BUTTON["fr"]))
    assert "Écrivez ici" in asked and "+39 030 000 0001" in asked
    answer = await bot.says(PERSON, "Je n'ai plus de médicaments pour mon cœur")
    [request] = await _requests(bot)
    assert request.status is CaseStatus.NEW and request.seen is not None
    assert request.reference in texts(answer)
    assert "Help Center" in texts(answer) and NEEDS_BUTTONS["fr"] in labels(bot, answer[-1])
    await deliver_outbox(bot)
    [alert] = alerts_in(bot, ANNA)
    assert "médicaments" in alert["text"] and request.reference in alert["text"]
    assert alerts_in(bot, BRUNO)
    # the next message is ordinary again, not a second request
    await bot.says(PERSON, "merci")
    assert len(await _requests(bot)) == 1


async def test_outside_opening_hours_the_person_is_told_when_the_desk_opens_and_its_phone(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 21, 0)  # Wednesday evening: closed until tomorrow 09:00
    await bot.known(PERSON)
    asked = texts(await bot.says(PERSON, "voglio parlare con un operatore"))
    assert "apre domani alle 09:00" in asked and "+39 030 000 0001" in asked
    done = texts(await bot.says(PERSON, "non ho un posto dove dormire"))
    assert "apre domani alle 09:00" in done and "112" in done
    assert len(await _requests(bot)) == 1


async def test_a_request_can_be_cancelled_before_it_is_written(bot: BotHarness) -> None:
    await load_example(bot)
    await bot.known(PERSON, language_code="en")
    menu = (await bot.says(PERSON, "/help"))[-1]
    await bot.presses(PERSON, menu, DESK_BUTTON["en"])
    cancelled = texts(await bot.says(PERSON, "/cancel"))
    assert "Nothing was sent" in cancelled
    assert await _requests(bot) == []


@pytest.mark.parametrize(
    ("language", "word"), [("it", "chiama il 112"), ("fr", "appelez le 112"), ("en", "call 112")]
)
async def test_urgent_refused_to_the_public_points_to_112_and_the_desk(
    bot: BotHarness, language: str, word: str
) -> None:
    await load_example(bot)
    await bot.known(PERSON, language_code=language)
    [answer] = await bot.says(PERSON, "/urgent")
    assert word in answer["text"] and "+39 030 000 0001" in answer["text"]
    assert "invit" not in answer["text"].lower()


async def test_a_request_nobody_takes_escalates_and_the_person_hears_when_it_is_read(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    await team(bot, on_duty=(ANNA,))
    set_local_time(2026, 12, 2, 10, 0)
    await bot.known(PERSON, language_code="it")
    await bot.says(PERSON, "voglio parlare con un operatore")
    await bot.says(PERSON, "ho perso i documenti")
    await deliver_outbox(bot)
    assert len(alerts_in(bot, ANNA)) == 1
    clock.advance(6 * 60)
    assert await sweep(bot) == 1
    reminder = alerts_in(bot, ANNA)[-1]
    assert "sollecito 1" in reminder["text"] and "ho perso i documenti" in reminder["text"]
    await bot.presses(ANNA, reminder, "✋ Lo prendo io")
    await deliver_outbox(bot)
    [request] = await _requests(bot)
    told = texts(bot.fake.sent_messages(PERSON)[-1:])
    assert "Anna dell'Help Center ha letto la tua richiesta " + request.reference in told
