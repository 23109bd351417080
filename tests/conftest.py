"""The test harness: the real bot, a fake Telegram at the HTTP boundary, a real database.

Every test that takes ``bot`` runs twice when ``TEST_DATABASE_URL`` points at PostgreSQL:
once on SQLite and once on PostgreSQL. The schema is made by the Alembic migrations (once
per run and backend), then emptied between tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import HelpCenterBot, build_application
from bot.dispatcher import dispatch_all
from config.settings import Settings
from fakebotapi import FakeRequest, FakeTelegram
from models.base import Base, clock
from models.db import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.roles import Role

TOKEN = "123456:TEST-TOKEN"
# The HSDS specification's own files (tests/data/hsds-spec/README.md): every run validates
# against them unless another checkout is named.
SPEC_DATA = Path(__file__).parent / "data" / "hsds-spec"
os.environ.setdefault("HSDS_SPEC_DIR", str(SPEC_DATA / "3.0"))
os.environ.setdefault("HSDS_SPEC_31_DIR", str(SPEC_DATA / "3.1"))
ADMIN_ID = 9000
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to the latest revision, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    assert POSTGRES_URL is not None
    asyncio.run(_reset_postgres(POSTGRES_URL))
    upgrade(POSTGRES_URL)
    return POSTGRES_URL


async def _reset_postgres(url: str) -> None:
    """Create the test database if needed and drop everything in it."""
    base, _, name = url.rpartition("/")
    admin = make_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "helpcenter.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_ready")
    asyncio.run(_truncate_all(url))
    yield url


async def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(autouse=True)
def reset_clock() -> Iterator[None]:
    yield
    clock._offset_seconds = 0.0


# Telegram's own send limits (the settings' defaults). The harness sends faster: every
# message leaves through the outbox and its limiter, and a story test should not wait a second
# between two messages to one chat; the tests of the limits use these.
TELEGRAM_RATES = {
    "rate_global_per_second": 30,
    "rate_private_chat_per_second": 1,
    "rate_group_per_minute": 20,
}
FAST_RATES = {
    "rate_global_per_second": 10_000,
    "rate_private_chat_per_second": 10_000,
    "rate_group_per_minute": 600_000,
}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "token": TOKEN,
        "database_url": database_url,
        "admin_ids": [ADMIN_ID],
        "default_language": "it",
        "inbox_concurrency": 4,
        "poll_timeout_seconds": 0,
        **FAST_RATES,
    }
    values.update(overrides)
    return Settings(**values)


class BotHarness:
    """The real application talking to a fake Telegram; tests read like a person's story."""

    def __init__(self, settings: Settings, fake: FakeTelegram | None = None) -> None:
        self.settings = settings
        self.fake = fake or FakeTelegram(token=TOKEN)
        self.engine = make_engine(settings.database_url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.application = build_application(
            settings, sessionmaker=self.sessionmaker, request=FakeRequest(self.fake)
        )
        self.running = HelpCenterBot(self.application)

    async def __aenter__(self) -> BotHarness:
        await self.application.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.application.shutdown()
        await self.engine.dispose()

    def restarted(self) -> BotHarness:
        """A new process on the same database and the same Telegram: nothing kept in memory."""
        return BotHarness(self.settings, fake=self.fake)

    async def deliver(self) -> None:
        """Fetch what Telegram holds (as the fetch loop does) and handle all of it.

        The final empty ``getUpdates`` confirms the last batch, as with Telegram.
        """
        while await self.running.poller.poll_once():
            await self.running.worker.drain()
        await self.running.worker.drain()
        await dispatch_all(self.application)

    async def says(
        self, user_id: int, text: str | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """A user writes; returns what the bot sent back to that chat."""
        before = len(self.fake.sent_messages(user_id))
        self.fake.user_writes(user_id, text, **kwargs)
        await self.deliver()
        return self.fake.sent_messages(user_id)[before:]

    async def presses(
        self, user_id: int, message: dict[str, Any], button: str
    ) -> list[dict[str, Any]]:
        before = len(self.fake.sent_messages(user_id))
        self.fake.user_presses(user_id, message, button)
        await self.deliver()
        return self.fake.sent_messages(user_id)[before:]

    def last(self, user_id: int) -> dict[str, Any]:
        return self.fake.sent_messages(user_id)[-1]

    async def grant(self, telegram_id: int, role: Role, **user: Any) -> None:
        from models.accounts import get_or_create_account
        from models.team import set_role

        self.fake.add_user(telegram_id, **user)
        async with self.sessionmaker() as session:
            account, _ = await get_or_create_account(session, telegram_id)
            await set_role(session, account, role, by=None)
            await session.commit()

    async def known(self, telegram_id: int, **user: Any) -> None:
        """A person who has written before and accepted the privacy notice (no notice now)."""
        from models.accounts import get_or_create_account

        self.fake.add_user(telegram_id, **user)
        async with self.sessionmaker() as session:
            account, _ = await get_or_create_account(session, telegram_id)
            account.privacy_accepted_at = clock.now()
            await session.commit()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[BotHarness]:
    async with BotHarness(make_settings(database_url)) as harness:
        yield harness


def fail_handling_of(harness: BotHarness, command: str, error: BaseException) -> None:
    """From now on, handling ``/command`` raises ``error`` (a fault in a handler), before any
    feature answers it."""
    from telegram.ext import CommandHandler

    async def failing(update: Any, context: Any) -> None:
        raise error

    harness.application.add_handler(CommandHandler(command, failing), group=-4)


def slow_handling_of(application: Any, command: str, seconds: float) -> None:
    """From now on, handling ``/command`` takes ``seconds`` longer (before the features)."""
    from telegram.ext import CommandHandler

    async def slow(update: Any, context: Any) -> None:
        await asyncio.sleep(seconds)

    application.add_handler(CommandHandler(command, slow), group=-4)
