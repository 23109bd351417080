"""Start-up: a bad setting is one clear line and a non-zero exit; an old schema is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def helpcenter(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HELPCENTER_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**base, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "HELPCENTER_TOKEN"),
        ({"HELPCENTER_TOKEN": "1:x", "HELPCENTER_TIMEZONE": "Mars/Olympus"}, "HELPCENTER_TIMEZONE"),
        ({"HELPCENTER_TOKEN": "1:x", "HELPCENTER_ADMIN_IDS": "alice"}, "HELPCENTER_ADMIN_IDS"),
        (
            {"HELPCENTER_TOKEN": "1:x", "HELPCENTER_DATABASE_URL": "mysql://x"},
            "HELPCENTER_DATABASE_URL",
        ),
        (
            {"HELPCENTER_TOKEN": "1:x", "HELPCENTER_INBOX_MAX_ATTEMPTS": "0"},
            "HELPCENTER_INBOX_MAX_ATTEMPTS",
        ),
        ({"HELPCENTER_CONFIG": "/nonexistent/helpcenter.toml"}, "HELPCENTER_CONFIG"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = helpcenter("run", env=env, cwd=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr


def test_a_malformed_toml_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "helpcenter.toml").write_text('token = "1:x"\ndefault_language = \n')
    result = helpcenter("run", env={}, cwd=tmp_path)
    assert result.returncode != 0
    assert "helpcenter.toml" in result.stderr and "Traceback" not in result.stderr


def test_the_toml_file_is_read_and_env_wins(tmp_path: Path) -> None:
    (tmp_path / "helpcenter.toml").write_text('token = "1:x"\ntimezone = "Mars/Olympus"\n')
    result = helpcenter("run", env={"HELPCENTER_TIMEZONE": "Nowhere/Land"}, cwd=tmp_path)
    assert "Nowhere/Land" in result.stderr


def test_run_refuses_an_out_of_date_schema_and_says_how_to_fix(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    result = helpcenter(
        "run", env={"HELPCENTER_TOKEN": "1:x", "HELPCENTER_DATABASE_URL": url}, cwd=tmp_path
    )
    assert result.returncode == 3
    assert "helpcenter db upgrade" in result.stderr


def test_db_upgrade_then_users_grant_and_list(tmp_path: Path) -> None:
    env = {"HELPCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"}
    assert helpcenter("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert helpcenter("users", "grant", "424242", "operator", env=env, cwd=tmp_path).returncode == 0
    listing = helpcenter("users", "list", env=env, cwd=tmp_path)
    assert "424242\toperator" in listing.stdout


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    result = helpcenter("run", "--workers", "2", env={"HELPCENTER_TOKEN": "1:x"}, cwd=tmp_path)
    assert result.returncode != 0 and "PostgreSQL" in result.stderr


# Every subcommand of ``helpcenter --help``, with the arguments it needs.
SUBCOMMANDS = [
    ("run",),
    ("db", "upgrade"),
    ("db", "current"),
    ("users", "grant", "424242", "operator"),
    ("users", "list"),
    ("inbox", "failed"),
    ("console",),
    ("demo",),
    ("services", "import", "directory.yaml"),
    ("services", "export", "directory.yaml"),
    ("services", "staff", "424242", "shelter-1"),
    ("export", "--from", "2026-01-01", "--to", "2026-01-31"),
    ("retention", "run"),
]
UNREACHABLE_DATABASE = "postgresql+asyncpg://helpcenter:s3cr3t-pw@127.0.0.1:1/helpcenter"


def one_clear_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with ``code`` and said why in one line, without a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, result.stderr
    assert lines[0].startswith("helpcenter")
    return lines[0]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_names_a_bad_setting_in_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "directory.yaml").write_text("services: []\n")
    env = {"HELPCENTER_TOKEN": "1:x", "HELPCENTER_TIMEZONE": "Mars/Olympus"}
    result = helpcenter(*command, env=env, cwd=tmp_path)
    assert "HELPCENTER_TIMEZONE" in one_clear_line(result, 2)


@pytest.mark.parametrize("command", [c for c in SUBCOMMANDS if c != ("console",)], ids=" ".join)
def test_every_subcommand_says_in_one_line_that_the_database_cannot_be_reached(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "directory.yaml").write_text("services: []\n")
    env = {"HELPCENTER_TOKEN": "1:x", "HELPCENTER_DATABASE_URL": UNREACHABLE_DATABASE}
    result = helpcenter(*command, env=env, cwd=tmp_path)
    line = one_clear_line(result, 1)
    assert "127.0.0.1:1" in line and "cannot be used" in line
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_the_console_says_in_one_line_that_its_database_cannot_be_opened(tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/console.db"
    result = helpcenter("console", "--database", missing, env={}, cwd=tmp_path)
    assert "cannot be used" in one_clear_line(result, 1)
    wrong = helpcenter("console", "--database", "mysql://x", env={}, cwd=tmp_path)
    assert "HELPCENTER_DATABASE_URL" in one_clear_line(wrong, 2)


def test_a_missing_or_unwritable_file_is_one_line(tmp_path: Path) -> None:
    env = {"HELPCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"}
    assert helpcenter("db", "upgrade", env=env, cwd=tmp_path).returncode == 0

    missing = helpcenter("services", "import", "nowhere.yaml", env=env, cwd=tmp_path)
    assert "nowhere.yaml" in one_clear_line(missing, 1)
    unwritable = helpcenter("services", "export", "no/such/dir/out.yaml", env=env, cwd=tmp_path)
    assert "no/such/dir/out.yaml" in one_clear_line(unwritable, 1)


@pytest.mark.parametrize(
    ("env", "named", "secret"),
    [
        ({"HELPCENTER_DEFAULT_LANGUAGE": "klingon"}, "HELPCENTER_DEFAULT_LANGUAGE", None),
        ({"HELPCENTER_TOKEN": "bot123456:ABC-secret"}, "HELPCENTER_TOKEN", "ABC-secret"),
        ({"HELPCENTER_TOKEN": '"123456:ABC-secret"'}, "HELPCENTER_TOKEN", "ABC-secret"),
        ({"HELPCENTER_ENCRYPTION_KEY": "not-a-key-xyz"}, "HELPCENTER_ENCRYPTION_KEY", "xyz"),
    ],
)
def test_run_checks_language_token_and_encryption_key_at_start_up(
    tmp_path: Path, env: dict[str, str], named: str, secret: str | None
) -> None:
    database = {"HELPCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"}
    upgrade(database["HELPCENTER_DATABASE_URL"])
    result = helpcenter("run", env={"HELPCENTER_TOKEN": "1:x", **database, **env}, cwd=tmp_path)
    assert named in one_clear_line(result, 2)
    if secret is not None:
        assert secret not in result.stderr


async def test_a_token_telegram_refuses_stops_start_up_without_showing_it(
    tmp_path: Path,
) -> None:
    from fakebotapi import FakeTelegram
    from fakebotapi.server import FakeTelegramServer

    url = f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"
    await asyncio.to_thread(upgrade, url)
    async with FakeTelegramServer(FakeTelegram(token="123456:THE-RIGHT-ONE")) as server:
        env = {
            "HELPCENTER_TOKEN": "123456:REVOKED-TOKEN",
            "HELPCENTER_DATABASE_URL": url,
            "HELPCENTER_API_BASE_URL": server.base_url,
        }
        result = await asyncio.to_thread(helpcenter, "run", env=env, cwd=tmp_path)
    assert "Telegram refused the bot token" in result.stderr
    assert "Traceback" not in result.stderr and result.returncode == 2
    assert "REVOKED-TOKEN" not in result.stderr + result.stdout


def test_run_waits_for_telegram_with_one_line_per_attempt_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}"
    upgrade(url)
    base = {k: v for k, v in os.environ.items() if not k.startswith("HELPCENTER_")}
    env = {
        **base,
        "PYTHONPATH": str(ROOT),
        "HELPCENTER_TOKEN": "1:x",
        "HELPCENTER_DATABASE_URL": url,
        "HELPCENTER_API_BASE_URL": "http://127.0.0.1:1/bot",  # nobody listens there
    }
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
        )
    try:
        deadline = time.monotonic() + 40
        while log.read_text().count("Telegram cannot be reached") < 2:  # after 1 s, 2 s
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = log.read_text()
    assert "Traceback" not in stderr
    attempts = [line for line in stderr.splitlines() if "Telegram cannot be reached" in line]
    assert "retrying in 1s" in attempts[0] and "retrying in 2s" in attempts[1]
    assert process.returncode == 0
