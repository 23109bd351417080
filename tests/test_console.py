"""The offline console drives the same bot: a trainer can try a flow without Telegram."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from bot.console import open_console
from models.roles import Role

ROOT = Path(__file__).resolve().parent.parent


async def test_console_answers_and_presses_buttons(tmp_path: Path) -> None:
    console, close = await open_console(
        Role.OPERATOR, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", "en"
    )
    try:
        help_lines = await console.step("/help")
        assert any("Help Center operator" in line for line in help_lines)
        menu = await console.step("/language")
        assert any("[#" in line for line in menu)
        chosen = await console.step("#" + _number_of(menu[-1], "Italiano"))
        assert any("Italiano" in line for line in chosen)
        assert "usage" in (await console.step("/where nowhere"))[0]
    finally:
        await close()


async def test_leaving_the_console_closes_its_database(tmp_path: Path) -> None:
    """No connection is left for the garbage collector: one closed that late stops its thread
    against an event loop already closed, a traceback after the console said goodbye."""
    before = {thread.ident for thread in threading.enumerate()}
    console, close = await open_console(
        Role.OPERATOR, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", "en"
    )
    await console.step("/help")
    await close()
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert [name for name in left if "_connection_worker_thread" in name] == []  # aiosqlite's


def _number_of(buttons_line: str, label: str) -> str:
    for part in buttons_line.split("[#")[1:]:
        number, text = part.split("]", 1)
        if text.strip() == label:
            return number
    raise AssertionError(f"no button {label}")


def test_console_command_runs_from_the_shell(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--as",
            "volunteer",
            "--language",
            "en",
            "--database",
            f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
        ],
        input="/help\n/quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "street volunteer" in result.stdout
