"""Revision 0013 gives locations a structured address and keeps today's one-line address."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import text

from models.db import make_engine
from models.migrate import alembic_config, upgrade

SEED = (
    "INSERT INTO location (id, key, name, address, area, latitude, longitude) VALUES "
    "(1, 'via-carducci', 'Casa', 'Via Carducci, Brescia', '', 45.54, 10.21), "
    "(2, 'stazione', 'Help Center', 'Piazzale Stazione', '', 45.53, 10.21)"
)


async def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        rows = [tuple(row) for row in (await connection.execute(text(query))).all()]
    await engine.dispose()
    return rows


async def test_todays_addresses_survive_and_give_street_and_city(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(upgrade, url, "0009")
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text(SEED))
    await engine.dispose()

    await asyncio.to_thread(upgrade, url)
    upgraded = await _rows(url, "SELECT address, street, city, country FROM location ORDER BY id")
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0009")
    downgraded = await _rows(url, "SELECT address, latitude FROM location ORDER BY id")

    assert upgraded == [
        ("Via Carducci, Brescia", "Via Carducci", "Brescia", None),
        ("Piazzale Stazione", "Piazzale Stazione", None, None),
    ]
    assert downgraded == [("Via Carducci, Brescia", 45.54), ("Piazzale Stazione", 45.53)]
