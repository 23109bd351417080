"""Revision 0007 adds foreign keys to ``contact`` without losing a contact or its needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from models.db import make_engine
from models.migrate import upgrade

SEED = [
    "INSERT INTO account (id, telegram_id, role, on_duty, created_at, last_seen_at) VALUES "
    "(1, 11, 'operator', 0, '2026-01-01 10:00:00.000000', '2026-01-01 10:00:00.000000')",
    "INSERT INTO help_case (id, reference, kind, status, category, urgency, created_at, "
    "escalation_step) VALUES (7, 'BS-0101-01', 'report', 'closed', 'other', 'today', "
    "'2026-01-01 10:00:00.000000', 0)",
    "INSERT INTO case_event (id, case_id, at, action) VALUES (1, 7, "
    "'2026-01-01 10:00:00.000000', 'created')",
    "INSERT INTO contact (id, occurred_at, operator_id, channel, outcome, case_id, service_id, "
    "source, created_at) VALUES (1, '2026-01-01 11:00:00.000000', 1, 'street', 'resolved', 7, "
    "NULL, 'case', '2026-01-01 11:00:00.000000')",
    "INSERT INTO contact (id, occurred_at, channel, outcome, case_id, service_id, source, "
    "created_at) VALUES (2, '2026-01-02 11:00:00.000000', 'desk', 'none', 999, 555, 'import', "
    "'2026-01-02 11:00:00.000000')",
    "INSERT INTO contact_need (contact_id, need) VALUES (1, 'food'), (2, 'shelter')",
    "INSERT INTO contact_action (contact_id, action) VALUES (1, 'listening')",
]


async def test_upgrading_a_used_sqlite_database_keeps_every_contact_need_and_event(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0006")
    engine = make_engine(url)
    async with engine.begin() as connection:
        for statement in SEED:
            await connection.execute(text(statement))
    await engine.dispose()

    await asyncio.to_thread(upgrade, url)

    engine = make_engine(url)
    async with engine.connect() as connection:
        contacts = (
            await connection.execute(
                text("SELECT id, case_id, service_id FROM contact ORDER BY id")
            )
        ).all()
        needs = (await connection.execute(text("SELECT count(*) FROM contact_need"))).scalar()
        actions = (await connection.execute(text("SELECT count(*) FROM contact_action"))).scalar()
        events = (await connection.execute(text("SELECT count(*) FROM case_event"))).scalar()
        keys = (await connection.execute(text("PRAGMA foreign_key_list(contact)"))).all()
        # The new key holds: deleting the case keeps the contact, without its link.
        await connection.execute(text("DELETE FROM case_event"))
        await connection.execute(text("DELETE FROM help_case"))
        unlinked = (
            await connection.execute(text("SELECT case_id FROM contact WHERE id = 1"))
        ).scalar()
    await engine.dispose()
    assert [tuple(row) for row in contacts] == [(1, 7, None), (2, None, None)]
    assert (needs, actions, events) == (2, 1, 1)
    assert {row[2] for row in keys} >= {"help_case", "service", "person", "account"}
    assert unlinked is None
