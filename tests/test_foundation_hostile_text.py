"""What Telegram delivers never stops the intake for everyone.

Text a database cannot hold (U+0000 on PostgreSQL, lone surrogates anywhere) is stored with
U+FFFD in their place, in the log and everywhere the bot keeps what people wrote; an update
that still cannot be stored, or that the library cannot read, is parked on its own and the
people after it are answered.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.webhook import SECRET_HEADER
from fakebotapi import message_update
from models import exchange
from models.contacts import Contact
from models.exchange import Direction, Exchange, InboxStatus
from models.roles import Role
from models.storable import storable_text
from tests.cases_helpers import (
    ANNA,
    VOLUNTEER,
    alerts_in,
    deliver_outbox,
    only_case,
    set_language,
    team,
    texts,
)
from tests.conftest import BotHarness
from tests.contacts_helpers import IT
from tests.test_delivery_webhook import SECRET, an_update, client_for

ALBA, BRUNA, CARLO = 7001, 7002, 7003
OPERATOR = 7101
PERSON_CODE = re.compile(r"[A-Z]{2}\d{4}[FMX]\d*-[0-9A-Z]")

HOSTILE = [
    pytest.param("ciao\x00mondo", "ciao\ufffdmondo", id="nul"),
    pytest.param("ciao \ud83d", "ciao \ufffd", id="lone-surrogate"),
]


async def _inbound(bot: BotHarness) -> list[Exchange]:
    async with bot.session() as session:
        query = select(Exchange).where(Exchange.direction == Direction.IN)
        return list(await session.scalars(query.order_by(Exchange.update_id)))


async def _three_people(bot: BotHarness) -> None:
    for person in (ALBA, BRUNA, CARLO):
        await bot.known(person)


def test_what_is_replaced_with_what() -> None:
    assert storable_text("a\x00b") == "a\ufffdb"
    assert storable_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    # A pair written as two code points is the character it encodes.
    assert storable_text("\ud83d\ude00") == "😀"
    assert storable_text("città 😀 \x07\x1b[31m") == "città 😀 \x07\x1b[31m"


@pytest.mark.parametrize(("sent", "stored"), HOSTILE)
async def test_a_message_with_text_a_database_refuses_is_stored_and_everyone_is_answered(
    bot: BotHarness, sent: str, stored: str
) -> None:
    await _three_people(bot)
    bot.fake.user_writes(ALBA, "buongiorno")
    hostile = bot.fake.user_writes(BRUNA, sent)
    bot.fake.user_writes(CARLO, "buonasera")
    await bot.deliver()

    for person in (ALBA, BRUNA, CARLO):
        assert len(bot.fake.sent_messages(person)) == 1, person
    assert bot.fake.pending_updates() == [], "the batch is confirmed to Telegram"
    rows = {row.update_id: row for row in await _inbound(bot)}
    assert all(row.status is InboxStatus.DONE for row in rows.values())
    assert rows[hostile].text == stored
    assert rows[hostile].payload is not None
    assert rows[hostile].payload["message"]["text"] == stored


async def test_an_update_that_still_cannot_be_stored_is_parked_alone(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="models.exchange")
    await _three_people(bot)
    bot.fake.user_writes(ALBA, "buongiorno")
    odd = message_update(bot.fake.user(BRUNA), "ciao")
    odd["message"]["chat"] = {"id": 2**70, "type": "group", "title": "?"}  # beyond 64 bits
    unstorable = bot.fake.push_update(odd)
    bot.fake.user_writes(CARLO, "buonasera")
    await bot.deliver()

    assert len(bot.fake.sent_messages(ALBA)) == 1
    assert len(bot.fake.sent_messages(CARLO)) == 1
    assert bot.fake.pending_updates() == [], "the batch is confirmed to Telegram"
    rows = {row.update_id: row for row in await _inbound(bot)}
    assert rows[unstorable].status is InboxStatus.FAILED
    assert "not storable" in (rows[unstorable].error or "")
    assert rows[unstorable].kind == "text" and rows[unstorable].text is None
    assert f"update {unstorable} not storable" in caplog.text and "ciao" not in caplog.text


def _poll_from_an_older_server(user: dict[str, Any]) -> dict[str, Any]:
    """A poll without ``voter_count`` in its options, which PTB 22 requires."""
    update = message_update(user)
    update["message"]["poll"] = {
        "id": "5001",
        "question": "Dove dormo stanotte?",
        "options": [{"text": "Stazione"}, {"text": "Dormitorio"}],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    }
    return update


async def test_an_update_the_library_cannot_read_is_parked_at_once_and_the_chat_goes_on(
    bot: BotHarness,
) -> None:
    await bot.known(ALBA, language_code="fr")
    unreadable = bot.fake.push_update(_poll_from_an_older_server(bot.fake.user(ALBA)))
    bot.fake.user_writes(ALBA, "/help")
    await bot.deliver()

    rows = {row.update_id: row for row in await _inbound(bot)}
    assert rows[unreadable].status is InboxStatus.FAILED and rows[unreadable].attempts == 1
    assert rows[unreadable].kind == "poll"
    assert all(row.status is InboxStatus.DONE for uid, row in rows.items() if uid != unreadable)
    [apology, answer] = bot.fake.texts(ALBA)
    assert "Désolé" in apology and rows[unreadable].error is not None
    assert rows[unreadable].error.split()[0] in apology, "the incident code is the row's"
    assert "/help" not in apology and "/forget" in answer  # the answer to /help (#13: buttons)


@pytest.mark.parametrize(
    "payload",
    [
        {"update_id": 1},
        {"update_id": 1, "message": "not an object"},
        {"update_id": 1, "message": {"chat": {"id": "not a number"}}},
        {"update_id": 1, "callback_query": {"from": None, "message": []}},
    ],
)
async def test_the_apology_path_never_raises(bot: BotHarness, payload: dict[str, Any]) -> None:
    assert bot.running.apology_for(payload, "ABC123", None) is None


async def test_the_apology_reaches_a_chat_whose_update_the_library_cannot_read(
    bot: BotHarness,
) -> None:
    update = _poll_from_an_older_server(bot.fake.user(ALBA) | {"language_code": "ar"})
    update["update_id"] = 1
    apology = bot.running.apology_for(update, "ABC123", None)
    assert apology is not None
    chat_id, text = apology
    assert chat_id == ALBA and "ABC123" in text


@pytest.mark.parametrize(("sent", "stored"), HOSTILE)
async def test_a_report_with_such_text_reaches_the_operators_and_is_kept(
    bot: BotHarness, sent: str, stored: str
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER, "it")

    await bot.says(VOLUNTEER, "/report")
    out = await bot.says(VOLUNTEER, f"Binario 1 {sent}")
    out = await bot.presses(VOLUNTEER, out[-1], "Dorme in strada")
    out = await bot.presses(VOLUNTEER, out[-1], "Urgente, oggi")
    out = await bot.says(VOLUNTEER, f"Tossisce {sent}")
    out = await bot.says(VOLUNTEER, f"Giaccone verde {sent}")
    out = await bot.presses(VOLUNTEER, out[-1], "✅ Invia la segnalazione")

    case = await only_case(bot)
    assert f"registrata come {case.reference}" in texts(out)
    assert case.place == f"Binario 1 {stored}"
    assert case.seen == f"Tossisce {stored}" and case.person == f"Giaccone verde {stored}"
    await deliver_outbox(bot)
    [alert] = alerts_in(bot, ANNA)
    assert f"Binario 1 {stored}" in alert["text"]


@pytest.mark.parametrize(("sent", "stored"), HOSTILE)
async def test_a_contact_note_with_such_text_is_kept(
    bot: BotHarness, sent: str, stored: str
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    registered = (await bot.says(OPERATOR, "/person new MR 1985 M"))[-1]["text"]
    code = PERSON_CODE.search(registered)
    assert code is not None, registered
    message = (await bot.says(OPERATOR, f"/contact {code.group(0).lower()}"))[-1]
    for button in (IT("Street"), IT("Railway station"), IT("Food"), IT("Done"), IT("Done")):
        message = (await bot.presses(OPERATOR, message, button))[-1]
    message = (await bot.presses(OPERATOR, message, IT("Need met")))[-1]
    noted = (await bot.says(OPERATOR, f"/note dorme al binario 3 {sent}"))[-1]
    saved = (await bot.presses(OPERATOR, noted, IT("Save")))[-1]
    assert IT("Contact saved (number {id}).").format(id=1) in saved["text"]

    async with bot.session() as session:
        contact = (await session.scalars(select(Contact))).one()
    assert contact.notes == f"dorme al binario 3 {stored}"


async def test_the_webhook_stores_such_updates_and_answers_telegram_200(bot: BotHarness) -> None:
    nul, half_emoji = an_update(1, "/help\x00"), an_update(2, "/help \ud83d")
    beyond_64_bits = an_update(3)
    beyond_64_bits["message"]["chat"]["id"] = 2**70  # type: ignore[index]
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    async with client_for(bot.running.runtime) as client:
        answers = [
            await client.post("/telegram", content=json.dumps(update), headers=headers)
            for update in (nul, half_emoji, beyond_64_bits)
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    rows = await _inbound(bot)
    assert [(row.update_id, row.status) for row in rows] == [
        (1, InboxStatus.PENDING),
        (2, InboxStatus.PENDING),
        (3, InboxStatus.FAILED),
    ]
    assert [row.text for row in rows] == ["/help\ufffd", "/help \ufffd", None]


async def test_a_database_that_blinks_while_storing_confirms_nothing_and_parks_nothing(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = exchange.insert_ignore_many

    async def blinking(session: Any, table: Any, rows: list[dict[str, Any]], key: Any) -> None:
        if any(row["status"] is InboxStatus.PENDING for row in rows):  # not a husk
            raise OperationalError("INSERT", {}, ConnectionResetError("connection reset"))
        await real_insert(session, table, rows, key)

    monkeypatch.setattr(exchange, "insert_ignore_many", blinking)
    await bot.known(ALBA)
    bot.fake.user_writes(ALBA, "buongiorno")
    with pytest.raises(OperationalError):
        await bot.running.poller.poll_once()
    monkeypatch.undo()

    assert await _inbound(bot) == [], "an outage is no reason to park a message"
    await bot.deliver()
    [row] = await _inbound(bot)
    assert row.status is InboxStatus.DONE and len(bot.fake.sent_messages(ALBA)) == 1
