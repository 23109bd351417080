"""Revision 0009 keys the typed answers awaited by person: open questions of private chats
survive the upgrade (and the way back); those asked in groups are dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import text

from models.db import make_engine
from models.migrate import alembic_config, upgrade

UNTIL = "2026-01-01 10:30:00.000000"
# After it, questions are open flows (tests/test_conversation_migration.py).
LAST_WITH_CHAT_PROMPT = "0014"
SEED = [
    "INSERT INTO account (id, telegram_id, role, on_duty, created_at, last_seen_at) VALUES "
    "(4, 3201, 'public', 0, '2026-01-01 10:00:00.000000', '2026-01-01 10:00:00.000000')",
    f"INSERT INTO chat_prompt (chat_id, kind, value, until) VALUES (3201, 'place', 'meals', "
    f"'{UNTIL}'), (-100777, 'place', 'legal', '{UNTIL}')",
]


async def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        rows = [tuple(row) for row in (await connection.execute(text(query))).all()]
    await engine.dispose()
    return rows


async def test_a_question_open_in_a_private_chat_survives_the_upgrade_and_the_way_back(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0007")
    engine = make_engine(url)
    async with engine.begin() as connection:
        for statement in SEED:
            await connection.execute(text(statement))
    await engine.dispose()

    await asyncio.to_thread(upgrade, url, LAST_WITH_CHAT_PROMPT)
    upgraded = await _rows(url, "SELECT account_id, chat_id, kind, value FROM chat_prompt")
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
    downgraded = await _rows(url, "SELECT chat_id, kind, value FROM chat_prompt")

    assert upgraded == [(4, 3201, "place", "meals")]
    assert downgraded == [(3201, "place", "meals")]
