"""Least privilege: every contacts command, tried by every role."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers.contacts import COMMANDS
from models.accounts import AuditEntry
from models.contact_export import read_csv
from models.contacts import (
    Gender,
    PrivacyError,
    check_character,
    create_person,
    make_code,
    normalise_code,
    read_identity,
    record_consent,
    set_identity,
)
from models.roles import Role, can
from tests.conftest import BotHarness

STAFF_ROLES = [r for r in Role if r is not Role.PUBLIC]


async def test_role_matrix_for_every_contacts_command(bot: BotHarness) -> None:
    users = {role: 3000 + index for index, role in enumerate(Role)}
    for role, user in users.items():
        if role is Role.PUBLIC:
            bot.fake.add_user(user)
            await bot.says(user, "/start")
        else:
            await bot.grant(user, role)
    for command in COMMANDS:
        for role, user in users.items():
            async with bot.session() as session:
                before = await session.scalar(
                    select(func.count()).where(AuditEntry.action == "denied")
                )
            await bot.says(user, f"/{command.name}")
            async with bot.session() as session:
                after = await session.scalar(
                    select(func.count()).where(AuditEntry.action == "denied")
                )
            allowed = command.permission is None or can(role, command.permission)
            assert (after == before) is allowed, (command.name, role)


def test_who_may_do_what() -> None:
    from models.roles import Permission as P

    assert [r for r in Role if can(r, P.RECORD_CONTACTS)] == [
        Role.OPERATOR,
        Role.COORDINATOR,
        Role.ADMIN,
    ]
    assert [r for r in Role if can(r, P.VIEW_STATISTICS)] == [Role.COORDINATOR, Role.ADMIN]
    assert [r for r in Role if can(r, P.EXPORT_DATA)] == [Role.COORDINATOR]
    assert [r for r in Role if can(r, P.MERGE_PEOPLE)] == [Role.COORDINATOR]
    assert [r for r in Role if can(r, P.VIEW_AUDIT_LOG)] == [Role.ADMIN]


def test_pseudonymous_code_scheme() -> None:
    code = make_code("Mario Rossi", 1985, Gender.MALE)
    assert code.startswith("MA1985M-")
    assert make_code("MR", 1985, Gender.MALE) == "MR1985M-" + check_character("MR1985M")
    assert make_code("Élise", None, None) == "EL0000X-" + check_character("EL0000X")
    assert make_code("MR", 1985, Gender.MALE, serial=2).startswith("MR1985M2-")
    assert normalise_code(code.lower().replace("-", " ")) == code
    body, check = code.split("-")
    for wrong in (f"{body}-{'A' if check != 'A' else 'B'}", "MR1958M-" + check):
        assert normalise_code(wrong) is None  # a mistyped character or a swap is caught
    assert normalise_code("hello") is None


async def test_same_initials_year_and_sex_get_a_serial(bot: BotHarness) -> None:
    async with bot.session() as session:
        first = await create_person(session, initials="MR", birth_year=1985, gender=Gender.MALE)
        second = await create_person(session, initials="MR", birth_year=1985, gender=Gender.MALE)
    assert first.code.startswith("MR1985M-") and second.code.startswith("MR1985M2-")


async def test_name_and_phone_need_consent_and_key(bot: BotHarness) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    async with bot.session() as session:
        person = await create_person(session, initials="MR")
        with pytest.raises(PrivacyError):
            set_identity(person, name="Mario", phone=None, key=key)
        record_consent(person, None, session)
        with pytest.raises(PrivacyError):
            set_identity(person, name="Mario", phone=None, key=None)
        set_identity(person, name="Mario", phone="333", key=key)
        assert read_identity(person, key) == ("Mario", "333")
        assert "Mario" not in (person.name_token or "")


def test_cli_export_writes_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main
    from models.db import make_engine, make_sessionmaker
    from models.migrate import upgrade
    from tests.contacts_helpers import seed_march

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)

    async def seed() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            await seed_march(session)
            await session.commit()
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", url)
    out = tmp_path / "out"
    code = main(["export", "--from", "2025-03-01", "--to", "2025-03-31", "--out", str(out)])
    assert code == 0
    assert len(read_csv(out / "contacts.csv")) == 6
    assert (
        main(
            [
                "export",
                "--from",
                "2025-03-01",
                "--to",
                "2025-03-31",
                "--format",
                "xlsx",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / f"helpcenter-{date(2025, 3, 1)}-{date(2025, 3, 31)}.xlsx").stat().st_size > 0
    assert main(["retention", "run"]) == 0
