"""Revision 0015 makes drafts and awaited answers open flows of one conversation: everything
in progress at the upgrade survives it, and the way back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from alembic import command
from sqlalchemy import text

from models.db import make_engine
from models.migrate import alembic_config, upgrade
from tests.cases_helpers import only_case, texts
from tests.conftest import BotHarness, make_settings

BEFORE = "0014"
AT = "'2026-01-01 10:00:00.000000'"
UNTIL = "'2099-01-01 10:30:00.000000'"
VOLUNTEER, OPERATOR, OTHER_OPERATOR, PERSON, MEMBER = 3101, 3102, 3103, 3104, 3105
GROUP = -100777
REPORT = {"place": "Sottopassaggio", "category": "other"}
CONTACT = {"started_at": "2026-01-01T10:00:00+00:00", "channel": "street", "needs": ["food"]}
NEW_CONTACT = {"started_at": "2026-01-01T10:00:00+00:00", "needs": [], "actions": []}


def _account(account_id: int, telegram_id: int, role: str) -> str:
    return (
        "INSERT INTO account (id, telegram_id, role, on_duty, created_at, last_seen_at, "
        f"privacy_accepted_at) VALUES ({account_id}, {telegram_id}, '{role}', false, {AT}, "
        f"{AT}, {AT})"
    )


def _json(value: dict[str, Any]) -> str:
    return "'" + json.dumps(value) + "'"


SEED = [
    _account(901, VOLUNTEER, "volunteer"),
    _account(902, OPERATOR, "operator"),
    _account(903, OTHER_OPERATOR, "operator"),
    _account(904, PERSON, "public"),
    _account(905, MEMBER, "public"),
    "INSERT INTO case_draft (account_id, flow, state, data, updated_at) VALUES "
    f"(901, 'report', 'urgency', {_json(REPORT)}, {AT})",
    "INSERT INTO contact_draft (account_id, data, updated_at) VALUES "
    f"(902, {_json({**CONTACT, 'step': 'needs', 'notes': 'binario 1'})}, {AT}), "
    f"(903, {_json(NEW_CONTACT)}, {AT})",
    "INSERT INTO chat_prompt (account_id, chat_id, kind, value, until) VALUES "
    f"(904, {PERSON}, 'place', 'legal', {UNTIL}), (905, {GROUP}, 'beds', '7', {UNTIL})",
]


async def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        rows = [tuple(row) for row in (await connection.execute(text(query))).all()]
    await engine.dispose()
    return rows


@asynccontextmanager
async def seeded_before_the_upgrade(url: str) -> AsyncIterator[None]:
    """The database as revision 0014 left it, with work in progress; at the head after."""
    await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE)
    try:
        engine = make_engine(url)
        async with engine.begin() as connection:
            for statement in SEED:
                await connection.execute(text(statement))
        await engine.dispose()
        yield
    finally:
        await asyncio.to_thread(upgrade, url)  # the other tests share a PostgreSQL database


def _decoded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """JSON as a dict on every backend (SQLite hands text back to a plain query)."""
    return [
        tuple(json.loads(v) if isinstance(v, str) and v[:1] == "{" else v for v in row)
        for row in rows
    ]


async def test_drafts_and_questions_in_progress_survive_the_upgrade_and_the_way_back(
    database_url: str,
) -> None:
    async with seeded_before_the_upgrade(database_url):
        await asyncio.to_thread(upgrade, database_url)
        flows = _decoded(
            await _rows(
                database_url,
                "SELECT account_id, flow, step, chat_id, data FROM open_flow "
                "ORDER BY account_id, flow",
            )
        )
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), BEFORE)
        drafts = _decoded(
            await _rows(database_url, "SELECT account_id, flow, state, data FROM case_draft")
        )
        contacts = _decoded(
            await _rows(database_url, "SELECT account_id, data FROM contact_draft ORDER BY 1")
        )
        prompts = await _rows(
            database_url, "SELECT account_id, chat_id, kind, value FROM chat_prompt ORDER BY 1"
        )

    assert flows == [
        (901, "report", "urgency", VOLUNTEER, REPORT),
        (902, "contact", "needs", OPERATOR, {**CONTACT, "notes": "binario 1"}),
        (903, "contact", "channel", OTHER_OPERATOR, NEW_CONTACT),
        (904, "question", "place", PERSON, {"value": "legal"}),
        (905, "question", "beds", GROUP, {"value": "7"}),
    ]
    assert drafts == [(901, "report", "urgency", REPORT)]
    assert contacts == [
        (902, {**CONTACT, "step": "needs", "notes": "binario 1"}),
        (903, NEW_CONTACT),
    ]
    assert prompts == [(904, PERSON, "place", "legal"), (905, GROUP, "beds", "7")]


async def test_a_report_half_written_at_the_upgrade_is_finished_after_it(
    database_url: str,
) -> None:
    async with seeded_before_the_upgrade(database_url):
        await asyncio.to_thread(upgrade, database_url)
        async with BotHarness(make_settings(database_url)) as bot:
            bot.fake.add_user(VOLUNTEER, first_name="Vera", language_code="it")
            out = await bot.says(VOLUNTEER, "Ho scritto invece di premere")
            assert "Per favore usa i pulsanti qui sopra." in texts(out), "still 'how urgent'"
            out = await bot.presses(VOLUNTEER, out[-1], "Non urgente")
            out = await bot.says(VOLUNTEER, "Persona che chiede aiuto")
            out = await bot.presses(VOLUNTEER, out[-1], "Salta")
            assert "Sottopassaggio" in texts(out)
            out = await bot.presses(VOLUNTEER, out[-1], "✅ Invia la segnalazione")
            case = await only_case(bot)
            assert case.reference in texts(out)
            assert (case.place, case.seen) == ("Sottopassaggio", "Persona che chiede aiuto")
