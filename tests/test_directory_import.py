"""Import and export: stable ids, round trips through YAML and HSDS CSV, bad files refused whole."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from models.directory import Location, Service, haversine_m, nearest, service_by_key, set_beds
from models.directory_io import (
    DirectoryFileError,
    export_directory,
    import_directory,
    read_directory,
    read_yaml,
    to_yaml,
    write_directory,
)
from tests.directory_helpers import EXAMPLE, load_example

GOOD_SERVICE = """
services:
  - id: mensa
    category: meals
    name: {it: Mensa}
    hours: "mon-fri 12:00-14:00"
"""


async def _count(bot, model) -> int:
    async with bot.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_example_covers_every_category_and_is_marked_as_example() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.startswith("# EXAMPLE DATA: REPLACE BEFORE USE")
    assert "APPROXIMATE" in text and "PLACEHOLDERS" in text
    directory = read_yaml(text)
    from models.directory import Category

    assert {s.category for s in directory.services} == set(Category)
    for location in directory.locations:  # within a few km of the station
        assert haversine_m(45.532408, 10.212783, location.latitude, location.longitude) < 5000


async def test_importing_the_same_file_twice_changes_nothing(bot):
    await load_example(bot)
    services = await _count(bot, Service)
    directory = read_directory(EXAMPLE)
    async with bot.session() as session:
        summary = await import_directory(session, directory)
        await session.commit()
    assert (summary.created, summary.updated) == (0, 0)
    assert await _count(bot, Service) == services == 18


async def test_a_reimport_keeps_tonights_free_beds_and_updates_what_changed(bot):
    await load_example(bot)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica
        await set_beds(session, corsica, free=9, by=None)
        await session.commit()
    changed = EXAMPLE.read_text(encoding="utf-8").replace("beds_total: 60", "beds_total: 62")
    async with bot.session() as session:
        summary = await import_directory(session, read_yaml(changed))
        await session.commit()
    assert summary.updated == 1
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica and corsica.beds and (corsica.beds.total, corsica.beds.free) == (62, 9)


@pytest.mark.parametrize("shape", ["directory.yaml", "hsds-csv"])
async def test_export_then_import_elsewhere_gives_the_same_directory(bot, tmp_path: Path, shape):
    await load_example(bot)
    async with bot.session() as session:
        exported = await export_directory(session)
    target = tmp_path / shape
    write_directory(exported, target)
    again = read_directory(target)
    assert to_yaml(again) == to_yaml(exported)
    if shape == "hsds-csv":
        header = (target / "schedules.csv").read_text().splitlines()[0]
        assert header.startswith("id,service_id,freq,byday,opens_at,closes_at")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("services: [\n  - id: x\n    category: [", "city.yaml line 2: not valid YAML"),
        (
            GOOD_SERVICE + "  - id: bad\n    category: casino\n    name: {it: X}\n",
            "line 7: category",
        ),
        (GOOD_SERVICE + "  - id: mensa\n    category: meals\n    name: {it: Y}\n", "duplicate id"),
        (
            GOOD_SERVICE
            + "  - id: h\n    category: meals\n    name: {it: H}\n    hours: all day\n",
            "line 7: hours",
        ),
        (GOOD_SERVICE + "  - id: n\n    category: meals\n    name: {}\n", "line 7: name"),
        (
            "locations:\n  - id: far\n    name: X\n    address: Y\n    latitude: 123\n"
            "    longitude: 10\n",
            "line 2: latitude",
        ),
        ("- just a list\n", "expected a mapping"),
    ],
)
async def test_a_bad_row_is_reported_with_its_line_and_nothing_is_imported(text, problem):
    with pytest.raises(DirectoryFileError) as caught:
        read_yaml(text, "city.yaml")
    assert problem in str(caught.value)


async def test_an_unknown_reference_stops_the_whole_import(bot):
    await load_example(bot)
    before = await _count(bot, Service)
    bad = GOOD_SERVICE + "    location: nowhere\n"
    with pytest.raises(DirectoryFileError, match="unknown location 'nowhere'"):
        async with bot.session() as session:
            await import_directory(session, read_yaml(bad))
    assert await _count(bot, Service) == before


async def test_bad_csv_rows_are_reported_with_file_and_line(tmp_path: Path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "services.csv").write_text(
        "id,category,name_it\nok,meals,Mensa\nbad,meals,\n", encoding="utf-8"
    )
    (folder / "schedules.csv").write_text(
        "id,service_id,byday,opens_at,closes_at\n1,ok,XX,10:00,12:00\n", encoding="utf-8"
    )
    with pytest.raises(DirectoryFileError) as caught:
        read_directory(folder)
    problems = caught.value.problems
    assert any(p.startswith("schedules.csv line 2") for p in problems)
    assert any(p.startswith("services.csv line 3") and "name" in p for p in problems)


def test_the_cli_imports_exports_and_refuses_a_bad_file(tmp_path: Path, monkeypatch, capsys):
    from models.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", url)
    monkeypatch.delenv("HELPCENTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    example = tmp_path / "services.yaml"
    shutil.copy(EXAMPLE, example)
    assert main(["services", "import", str(example)]) == 0
    assert main(["services", "import", str(example)]) == 0
    assert "0 created, 0 updated" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_SERVICE + "  - id: x\n    category: nope\n    name: {it: X}\n")
    assert main(["services", "import", str(bad)]) == 1
    assert "line 7" in capsys.readouterr().err
    assert main(["services", "export", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "services.csv").is_file()
    assert main(["services", "staff", "42", "asilo-corsica"]) == 1  # no such account yet
    assert "must /start" in capsys.readouterr().err


async def test_nearest_matches_a_full_scan_on_random_cities(bot):
    """The box query with its expansion gives exactly the brute-force nearest."""
    rng = random.Random(7)
    text = ["locations:"]
    services = ["services:"]
    for n in range(150):
        lat = 45.53 + rng.uniform(-0.2, 0.2) ** 3 * 20
        lon = 10.21 + rng.uniform(-0.2, 0.2) ** 3 * 20
        text.append(
            f"  - {{id: l{n}, name: L{n}, address: A{n}, latitude: {lat}, longitude: {lon}}}"
        )
        category = "meals" if n % 3 else "showers"
        services.append(
            f"  - {{id: s{n}, category: {category}, location: l{n}, name: {{it: S{n}}}}}"
        )
    async with bot.session() as session:
        await import_directory(session, read_yaml("\n".join(text + services)))
        await session.commit()
    async with bot.session() as session:
        rows = list(await session.scalars(select(Service)))
        where = {loc.id: loc for loc in await session.scalars(select(Location))}
        for _ in range(25):
            lat, lon = 45.53 + rng.uniform(-0.1, 0.1), 10.21 + rng.uniform(-0.1, 0.1)
            got = await nearest(session, lat, lon, ["meals"], limit=5, max_distance_m=50_000)
            expected = sorted(
                (
                    haversine_m(
                        lat, lon, where[s.location_id].latitude, where[s.location_id].longitude
                    ),
                    s.key,
                )
                for s in rows
                if s.category == "meals"
            )[:5]
            assert [n.service.key for n in got] == [key for _d, key in expected]
