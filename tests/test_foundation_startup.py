"""Start-up: a bad setting is one clear line and a non-zero exit; an old schema is refused."""

from __future__ import annotations

import os
import subprocess
import sys
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
