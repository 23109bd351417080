"""No personal data in application logs: database errors do not quote what was stored."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from models.db import make_engine


async def test_a_database_error_does_not_quote_the_values(database_url: str) -> None:
    engine = make_engine(database_url)
    secret = "Mario Rossi dorme sotto il ponte"
    try:
        async with engine.begin() as connection:
            with pytest.raises(IntegrityError) as raised:
                await connection.execute(
                    text(
                        "INSERT INTO account (id, telegram_id, role, on_duty, created_at, "
                        "last_seen_at, display_name) VALUES (NULL, NULL, 'public', false, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :name)"
                    ),
                    {"name": secret},
                )
    finally:
        await engine.dispose()
    assert secret not in str(raised.value)
