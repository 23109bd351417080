"""Alembic is the only way the schema changes: upgrading an empty database gives the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from models import Base
from models.db import make_engine
from models.migrate import head_revision


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_produce_exactly_the_models_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
        revision = await connection.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )
    await engine.dispose()
    assert differences == []
    assert revision == head_revision(database_url)
