"""Handlers never run SQL and never commit: they parse, call the domain and render.

The per-update session is the inbox worker's to commit (``bot.inbox``), a job's is the job
runner's (``bot.jobs``); what a handler reads or writes goes through a named function in
``models/``. Read from the source, so a handler that slips back to ``session.get`` or a
``select(...)`` fails here, with its file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parent.parent / "handlers"
# A handler may name the session's type (to pass it on), nothing else of SQLAlchemy: no
# select/update/delete/insert/text, no sessionmaker.
ALLOWED_IMPORTS = frozenset({("sqlalchemy.ext.asyncio", "AsyncSession")})
SESSION_CALLS = frozenset(
    {
        "get",
        "execute",
        "scalar",
        "scalars",
        "stream",
        "commit",
        "rollback",
        "flush",
        "begin",
        "refresh",
        "add",
        "add_all",
        "delete",
        "merge",
    }
)
RAW_SQL = re.compile(r"\b(SELECT\s.+\sFROM|UPDATE\s+\w+\s+SET|DELETE\s+FROM|INSERT\s+INTO)\b")


def _is_session(node: ast.expr) -> bool:
    """``session``, ``context.session``, ``self.session`` … and ``sessionmaker()``."""
    if isinstance(node, ast.Call):
        return _is_session(node.func)
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name == "session" or name.endswith("sessionmaker")


def violations(source: str, filename: str = "<handler>") -> list[str]:
    """Each way ``source`` reaches the database other than through ``models/``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [
                f"{where} imports {alias.name} from {node.module}"
                for alias in node.names
                if (node.module, alias.name) not in ALLOWED_IMPORTS
            ]
        elif isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if "sqlalchemy" in a.name]
        elif isinstance(node, ast.Attribute) and node.attr.endswith("sessionmaker"):
            found.append(f"{where} opens a session ({node.attr})")
        elif isinstance(node, ast.Name) and node.id.endswith("sessionmaker"):
            found.append(f"{where} opens a session ({node.id})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SESSION_CALLS and _is_session(node.func.value):
                found.append(f"{where} calls session.{node.func.attr}()")
        elif isinstance(node, ast.Constant) and RAW_SQL.search(str(node.value)):
            found.append(f"{where} holds raw SQL")
    return found


@pytest.mark.parametrize("path", sorted(HANDLERS.glob("*.py")), ids=lambda p: p.name)
def test_a_handler_module_runs_no_sql_and_commits_nothing(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


def test_the_check_sees_each_way_a_handler_could_reach_the_database() -> None:
    """The check itself: each line below is a violation but the last (passing the session
    on to a domain function is what handlers do)."""
    source = """
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
async def handler(update, context):
    account = await context.session.get(Account, 1)
    await context.session.execute(select(Account))
    rows = await session.scalars(query)
    await context.session.flush()
    await session.commit()
    async with context.runtime.sessionmaker() as session:
        pass
    async with sessionmaker() as session:
        pass
    sql = "UPDATE exchange SET payload = NULL WHERE update_id = 1"
    await people.read_person(context.session, context.account, code)
"""
    found = violations(source)
    lines = sorted({int(entry.split(":")[1].split(" ")[0]) for entry in found})
    assert lines == [2, 3, 5, 6, 7, 8, 9, 10, 12, 14], found
    assert len(found) == 11, found  # line 2 imports two
    clean = "from sqlalchemy.ext.asyncio import AsyncSession\ntext = _('Update your beds')\n"
    assert violations(clean) == []


MODELS = HANDLERS.parent / "models"


def test_who_is_told_what_is_decided_in_the_domain_without_telegram() -> None:
    """``models/`` (the decision of who hears of a case's move among it) imports nothing of
    Telegram, of the bot's wiring or of the handlers."""
    outside = ("telegram", "bot", "handlers")
    for path in sorted(MODELS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), path.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in outside], (path.name, names)
