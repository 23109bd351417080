"""The fake Bot API is part of the product but not of the running bot: ``helpcenter run``
imports neither it nor aiohttp (an optional extra), and the console's part of the fake works
where aiohttp is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every module of bot/ (but the console and the demo), handlers/, models/, config/: a superset
# of what ``helpcenter run`` imports, whatever the mode (polling, webhook, workers).
IMPORT_THE_RUN_PATH = """
import importlib, pkgutil, sys
import bot, config, handlers, models
NOT_RUN = {"bot.console", "bot.demo"}
for package in (bot, config, handlers, models):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name not in NOT_RUN:
            importlib.import_module(module.name)
from bot.cli import build_parser
build_parser()
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_running_the_bot_imports_neither_the_fake_nor_aiohttp() -> None:
    result = run_python(
        IMPORT_THE_RUN_PATH
        + "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'fakebotapi'))"
        + "\nprint(loaded)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_console_and_demo_work_without_aiohttp_and_the_server_says_what_is_missing() -> None:
    result = run_python(
        """
import sys
sys.modules["aiohttp"] = None  # as if not installed: importing it raises ImportError
import bot.console, bot.demo
from fakebotapi import FakeTelegram
fake = FakeTelegram()
fake.add_user(1001)
print(fake.handle_now("sendMessage", {"chat_id": 1001, "text": "hi"})[0])
try:
    import fakebotapi.server
except ImportError as exc:
    print(exc)
"""
    )
    assert result.returncode == 0, result.stderr
    status, problem = result.stdout.strip().splitlines()
    assert status == "200"
    assert "aiohttp" in problem and "helpcenter-bot[fake-server]" in problem
