"""The layers keep their rules: no import cycles, models free of Telegram, handlers thin.

The import graph is built by grimp (the library behind import-linter) from the source, without
importing it. It holds every ``import`` statement, those inside functions too: an import put
in a function to dodge a cycle still makes the two modules need each other, so it counts.
Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("bot", "config", "handlers", "models")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(
        *PACKAGES,
        include_external_packages=True,
        exclude_type_checking_imports=True,
        cache_dir=None,
    )


def project_modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m.split(".")[0] in PACKAGES}


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each cycle once, as the shortest way from a module back to itself."""
    ours = project_modules(graph)
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for module in sorted(ours):
        for imported in sorted(graph.find_modules_directly_imported_by(module) & ours):
            if imported == module:  # ``python -m bot.cli`` importing its own module
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.setdefault(frozenset(back), (module, *back))
    return list(cycles.values())


def describe(graph: grimp.ImportGraph, cycle: tuple[str, ...]) -> str:
    """``a → b (a:12) → a (b:40)``: where each import of the cycle is written."""
    steps = [cycle[0]]
    for importer, imported in itertools.pairwise(cycle):
        lines = [
            d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)
        ]
        steps.append(f"{imported} ({importer}:{','.join(map(str, lines))})")
    return " → ".join(steps)


def test_no_module_needs_a_module_that_needs_it_back(graph: grimp.ImportGraph) -> None:
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(graph, c) for c in cycles)


@pytest.mark.parametrize("outside", ["telegram", "bot", "handlers"])
def test_models_know_nothing_of_telegram_or_the_bot(graph: grimp.ImportGraph, outside: str) -> None:
    chain = graph.find_shortest_chain(importer="models", imported=outside, as_packages=True)
    assert chain is None, " → ".join(chain or ())


# ---- handlers stay thin: no SQL, no commit ------------------------------------------------
# The per-update session is the inbox worker's to commit (``bot.inbox``), a job's is the job
# runner's (``bot.jobs``); what a handler reads or writes goes through a named function in
# ``models/``. Read from the source, so a handler that slips back to ``session.get`` or a
# ``select(...)`` fails here with its file and line.

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


def _names_read(packages: tuple[str, ...], leave_out: Path) -> set[str]:
    """Every attribute read and every string constant in these packages' source."""
    names: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if path == leave_out:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.add(node.value)
    return names


def test_every_setting_does_something_and_is_in_the_operations_table() -> None:
    """A setting an operator can set is read by the bot (``outbox_batch`` was documented as
    "outbox rows claimed at once" and read by nothing) and has a row in docs/operations.md."""
    from config.settings import Settings

    read = _names_read(PACKAGES, leave_out=ROOT / "config" / "settings.py")
    table = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    rows = {
        m
        for line in table.splitlines()
        if line.startswith("| `")
        for m in re.findall(r"`([a-z_]+)`", line.split(" | ")[0])
    }
    assert [name for name in Settings.model_fields if name not in read] == []
    assert [name for name in Settings.model_fields if name not in rows] == []
