"""Forged buttons and odd arguments get a polite answer; nothing crashes or parks the update.

Telegram does not check callback data: a client can send any string as a button press. Ids of
20 digits (past the 64-bit database columns), ``²`` (a digit for ``str.isdigit``, not for
``int``), ``mg:x:y``, NaN or out-of-range coordinates, a 4,000-character argument, and names
with ``<`` in HTML messages (the fake Telegram parses HTML strictly, like Telegram).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.console import open_console
from bot.parsing import (
    callback_data,
    parse_coordinates,
    parse_id,
    parse_number,
    valid_coordinates,
)
from bot.rendering import fit_html
from fakebotapi import callback_update
from models.accounts import get_or_create_account
from models.cases import CaseKind, NewCase, open_case
from models.directory import KnownPlace, Location, service_by_key
from models.exchange import Direction, Exchange, InboxStatus
from models.roles import Role
from tests.conftest import BotHarness
from tests.directory_helpers import STATION, load_example, set_local_time, texts

PERSON, STAFF, OPERATOR, COORDINATOR = 7101, 7201, 7301, 7401
HUGE = "9" * 20  # past 2**63 - 1
STALE = "Questo pulsante non è più valido"


async def _last_inbound(bot: BotHarness) -> Exchange:
    async with bot.session() as session:
        query = (
            select(Exchange)
            .where(Exchange.direction == Direction.IN)
            .order_by(Exchange.id.desc())
            .limit(1)
        )
        row = await session.scalar(query)
    assert row is not None
    return row


async def _handled_cleanly(bot: BotHarness) -> None:
    """The last update was handled once, with no error: not retried, not parked."""
    row = await _last_inbound(bot)
    assert row.status is InboxStatus.DONE, row.error
    assert row.error is None and row.attempts <= 1


async def _forged_press(
    bot: BotHarness, user_id: int, message: dict[str, Any], data: str
) -> list[dict[str, Any]]:
    """``user_id`` sends a button press with ``data`` on ``message``, whatever its buttons."""
    before = len(bot.fake.sent_messages(user_id))
    bot.fake.push_update(callback_update(bot.fake.user(user_id), message, data))
    await bot.deliver()
    return bot.fake.sent_messages(user_id)[before:]


# ---- the parsers themselves ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²", "٣", "1_000", " 7", "-3", "0", HUGE, "", "12a", "+5"])
def test_an_id_is_ascii_digits_within_64_bits(text: str) -> None:
    assert parse_id(text) is None


def test_a_valid_id_is_read() -> None:
    assert parse_id("42") == 42 and parse_id(str(2**63 - 1)) == 2**63 - 1


def test_a_typed_number_has_a_range_and_accepts_the_persons_digits() -> None:
    assert parse_number("٤", low=0, high=5000) == 4
    assert parse_number(" 12 ", low=0, high=5000) == 12
    for text in ("²", "5001", "-1", "1e3", "1_0", HUGE):
        assert parse_number(text, low=0, high=5000) is None


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(float("nan"), 10.0), (45.0, float("inf")), (91.0, 10.0), (45.0, -180.5), (True, 10.0)],
)
def test_coordinates_must_be_finite_and_on_the_globe(lat: float, lon: float) -> None:
    assert valid_coordinates(lat, lon) is None


def test_coordinates_in_text_are_plain_decimals() -> None:
    assert parse_coordinates("45.53241", "-10.21278") == (45.53241, -10.21278)
    for lat in ("nan", "inf", "1e2", "91", "45,5", " 45"):
        assert parse_coordinates(lat, "10") is None


def test_callback_data_over_64_bytes_is_refused_when_built() -> None:
    assert callback_data("case", "take", 2**63 - 1) == f"case:take:{2**63 - 1}"
    with pytest.raises(ValueError):
        callback_data("dir", "area", "é" * 40)


# ---- the directory ---------------------------------------------------------------------------


LIST_CHANGED = "L'elenco è cambiato"


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        ("dir:near:meals:nan:nan", STALE),
        ("dir:near:meals:inf:10.2", STALE),
        ("dir:near:meals:91.0:10.2", STALE),
        ("dir:near:meals:45.5:1e999", STALE),
        ("dir:near:<b>:45.53241:10.21278", STALE),
        ("dir:cat:<b>", STALE),
        ("dir:area:<i>:0", STALE),
        ("dir:" + "x" * 60, STALE),
        ("dir:area:meals:²", LIST_CHANGED),
        (f"dir:area:meals:{HUGE}", LIST_CHANGED),
    ],
)
async def test_a_forged_directory_button_is_answered_politely(
    bot: BotHarness, data: str, answer: str
) -> None:
    await load_example(bot)
    menu = (await bot.says(PERSON, "/services"))[-1]
    replies = await _forged_press(bot, PERSON, menu, data)
    await _handled_cleanly(bot)
    assert answer in texts(replies)


@pytest.mark.parametrize(
    "where", [(float("nan"), float("nan")), (91.0, 10.2), (45.5, 181.0), (float("inf"), 0.0)]
)
async def test_a_shared_location_off_the_globe_is_asked_again(
    bot: BotHarness, where: tuple[float, float]
) -> None:
    await load_example(bot)
    menu = (await bot.says(PERSON, "/services"))[-1]
    await bot.presses(PERSON, menu, "🍲 Pasti e cibo")
    answer = await bot.says(PERSON, location=where)
    await _handled_cleanly(bot)
    assert "Questa posizione non sembra corretta" in texts(answer)
    unasked = await bot.says(PERSON, location=where)  # and without a question pending
    await _handled_cleanly(bot)
    assert "Questa posizione non sembra corretta" in texts(unasked)


async def test_a_place_name_with_angle_brackets_is_shown_as_written(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 21, 0)
    async with bot.session() as session:
        session.add(
            KnownPlace(
                key="duomo", name="Piazza <Duomo> & co", latitude=STATION[0], longitude=STATION[1]
            )
        )
        await session.commit()
    menu = (await bot.says(PERSON, "/services"))[-1]
    await bot.presses(PERSON, menu, "🍲 Pasti e cibo")
    found = await bot.says(PERSON, "Piazza <Duomo> & co")
    await _handled_cleanly(bot)
    assert "più vicini a Piazza <Duomo> & co" in texts(found)


async def test_an_area_name_with_angle_brackets_is_shown_as_written(bot: BotHarness) -> None:
    await load_example(bot)
    async with bot.session() as session:
        for location in await session.scalars(select(Location)):
            location.area = "Piazza <Duomo>"
        await session.commit()
    menu = (await bot.says(PERSON, "/services"))[-1]
    asked = await bot.presses(PERSON, menu, "🍲 Pasti e cibo")
    listing = await bot.presses(PERSON, asked[-1], "Piazza <Duomo>")
    await _handled_cleanly(bot)
    assert "🍲 Pasti e cibo — Piazza <Duomo>:" in texts(listing)


# ---- shelter beds and service editing --------------------------------------------------------


async def _staff(bot: BotHarness) -> dict[str, Any]:
    await bot.grant(STAFF, Role.SHELTER_STAFF)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.says(OPERATOR, f"/staffof {STAFF} asilo-corsica")
    return (await bot.says(STAFF, "/beds"))[-1]


@pytest.mark.parametrize("data", ["beds:+:²", f"beds:+:{HUGE}", "beds:set:-1"])
async def test_a_forged_beds_button_changes_nothing(bot: BotHarness, data: str) -> None:
    await load_example(bot)
    card = await _staff(bot)
    answer = await _forged_press(bot, STAFF, card, data)
    await _handled_cleanly(bot)
    assert "Puoi aggiornare solo i dormitori che gestisci." in texts(answer)


@pytest.mark.parametrize("typed", ["²", "12²", HUGE, "5001", "-2"])
async def test_a_typed_bed_count_that_is_not_a_number_is_asked_again(
    bot: BotHarness, typed: str
) -> None:
    await load_example(bot)
    card = await _staff(bot)
    await bot.presses(STAFF, card, "✏️ Scrivi il numero")
    answer = await bot.says(STAFF, typed)
    await _handled_cleanly(bot)
    assert "Invia solo un numero" in texts(answer)
    saved = await bot.says(STAFF, "٤")  # still waiting; an Arabic keyboard's 4 is fine
    await _handled_cleanly(bot)
    assert "Salvato" in texts(saved)
    async with bot.session() as session:
        shelter = await service_by_key(session, "asilo-corsica")
        assert shelter is not None and shelter.beds is not None and shelter.beds.free == 4


NO_SERVICE = "Questo servizio non esiste più."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("edit:svc:²", NO_SERVICE),
        (f"edit:hours:{HUGE}", NO_SERVICE),
        ("edit:cat:<b>", STALE),
        ("edit:frobnicate:1", STALE),
    ],
)
async def test_a_forged_edit_button_is_answered(bot: BotHarness, data: str, expected: str) -> None:
    await load_example(bot)
    await bot.grant(OPERATOR, Role.OPERATOR)
    menu = (await bot.says(OPERATOR, "/editservice"))[-1]
    answer = await _forged_press(bot, OPERATOR, menu, data)
    await _handled_cleanly(bot)
    assert expected in texts(answer)


async def test_a_forged_reopen_date_is_answered(bot: BotHarness) -> None:
    await load_example(bot)
    await bot.grant(OPERATOR, Role.OPERATOR)
    async with bot.session() as session:
        shelter = await service_by_key(session, "asilo-corsica")
        assert shelter is not None
        sid = shelter.id
    menu = (await bot.says(OPERATOR, "/editservice"))[-1]
    answer = await _forged_press(bot, OPERATOR, menu, f"edit:reopen:{sid}:2026-13-45")
    await _handled_cleanly(bot)
    assert STALE in texts(answer)


async def _editing(bot: BotHarness, field: str) -> None:
    """An operator opens the wardrobe's card and presses ``field``'s button."""
    await bot.grant(OPERATOR, Role.OPERATOR)
    kinds = await bot.says(OPERATOR, "/editservice")
    services = await bot.presses(OPERATOR, kinds[-1], "👕 Vestiti")
    card = await bot.presses(OPERATOR, services[-1], "Guardaroba (vestiti)")
    await bot.presses(OPERATOR, card[-1], field)


@pytest.mark.parametrize(
    ("field", "typed"), [("📝 Note", "x" * 4000), ("🚫 Aggiungi chiusura", "24/12 " + "x" * 300)]
)
async def test_a_note_too_long_to_show_is_asked_shorter_and_nothing_is_lost(
    bot: BotHarness, field: str, typed: str
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await _editing(bot, field)
    answer = await bot.says(OPERATOR, typed)
    await _handled_cleanly(bot)
    assert "È un po' lungo" in texts(answer)
    saved = await bot.says(OPERATOR, typed[:150])  # still waiting for the answer
    await _handled_cleanly(bot)
    assert "Salvato" in texts(saved)


async def test_a_long_note_with_markup_characters_is_shown_to_people(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await _editing(bot, "📝 Note")
    note = ("Giacche <taglia L> & scarpe; " * 40)[:990]
    saved = await bot.says(OPERATOR, note)
    await _handled_cleanly(bot)
    assert note.strip() in texts(saved)
    menu = await bot.says(PERSON, "/services")
    await bot.presses(PERSON, menu[-1], "👕 Vestiti")
    found = await bot.says(PERSON, location=STATION)
    await _handled_cleanly(bot)
    assert "Giacche <taglia L> & scarpe" in texts(found)


def test_cutting_html_never_leaves_half_an_entity_or_tag() -> None:
    text = "<b>Name</b>\n" + "a &amp; b " * 500
    for limit in range(3990, 4001):
        cut = fit_html(text, limit)
        assert len(cut) <= limit and cut.endswith("…")
        assert not re.search(r"&[#0-9a-zA-Z]*…$", cut)
    assert fit_html("<b>x</b> <i", 12) == "<b>x</b> <i"
    assert fit_html("<b>x</b> <i>abc</i>", 12) == "<b>x</b> …"


@pytest.mark.parametrize(
    "command",
    [
        "/staffof ²² asilo-corsica",
        f"/staffof {HUGE} asilo-corsica",
        f"/staffof remove -{HUGE} asilo-corsica",
        "/staffof 123456 " + "x" * 4000,
    ],
)
async def test_staffof_with_odd_arguments_answers_politely(bot: BotHarness, command: str) -> None:
    await load_example(bot)
    await bot.grant(OPERATOR, Role.OPERATOR)
    answer = await bot.says(OPERATOR, command)
    await _handled_cleanly(bot)
    assert len(answer) == 1 and len(answer[0]["text"]) < 1000


# ---- cases -----------------------------------------------------------------------------------


async def _a_case(bot: BotHarness) -> int:
    """One open case, reported by a volunteer; returns its id."""
    await bot.grant(PERSON, Role.VOLUNTEER)
    async with bot.session() as session:
        reporter, _created = await get_or_create_account(session, PERSON)
        case = await open_case(
            session,
            reporter,
            NewCase(kind=CaseKind.REPORT, place="binario 1"),
            prefix="BS",
            tz=ZoneInfo("Europe/Rome"),
            first_escalation=timedelta(minutes=5),
        )
        await session.commit()
        return case.id


REFUSED = "Ora non puoi farlo su"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (f"case:show:{HUGE}", STALE),
        ("case:show:²", STALE),
        ("case:frobnicate:{id}", STALE),
        ("case:out:{id}:nowhere", STALE),
        ("case:dup:{id}:²", REFUSED),
        (f"case:dup:{{id}}:{HUGE}", REFUSED),
    ],
)
async def test_a_forged_case_button_is_answered(bot: BotHarness, data: str, expected: str) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    data = data.replace("{id}", str(await _a_case(bot)))
    menu = (await bot.says(OPERATOR, "/cases"))[-1]
    answer = await _forged_press(bot, OPERATOR, menu, data)
    await _handled_cleanly(bot)
    assert expected in texts(answer)


# ---- contacts --------------------------------------------------------------------------------


NO_RECORD = "Questa scheda non esiste più."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("mg:x:y", STALE),
        (f"mg:{HUGE}:1", STALE),
        ("mg:²:1", STALE),
        ("pp:consent:²", NO_RECORD),
        (f"pp:withdraw:{HUGE}", NO_RECORD),
        ("st:forever", STALE),
        ("ex:²", STALE),
        ("lang:<b>", STALE),
    ],
)
async def test_a_forged_people_button_is_answered(
    bot: BotHarness, data: str, expected: str
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    menu = (await bot.says(COORDINATOR, "/help"))[-1]
    answer = await _forged_press(bot, COORDINATOR, menu, data)
    await _handled_cleanly(bot)
    assert expected in texts(answer)
    assert bot.fake.callback_answers, "the press was not answered"


@pytest.mark.parametrize(
    "command",
    [
        "/audit person ²",
        f"/audit person {HUGE}",
        "/audit " + "x" * 4000,
        "/contact " + "x" * 4000,
        "/person " + "x" * 4000,
        "/person new " + "x" * 4000 + " 1985 M",
        "/merge " + "x" * 4000 + " y",
        "/stats 0001-01-01 9999-12-31",
        "/export 0001-01-01 9999-12-31",
        "/start " + "x" * 4000,
        "/invite " + "x" * 4000,
    ],
)
async def test_odd_command_arguments_get_one_polite_answer(bot: BotHarness, command: str) -> None:
    await bot.grant(COORDINATOR, Role.ADMIN)
    answer = await bot.says(COORDINATOR, command)
    await _handled_cleanly(bot)
    assert answer and all(len(m.get("text") or m.get("caption") or "") < 4096 for m in answer)


async def test_the_console_takes_a_superscript_button_number_as_text(tmp_path: Path) -> None:
    console, close = await open_console(
        Role.OPERATOR, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", "en"
    )
    try:
        await console.step("/language")
        answer = await console.step("#²")
        assert any("/help" in line for line in answer)  # the bot's "I did not understand"
    finally:
        await close()
