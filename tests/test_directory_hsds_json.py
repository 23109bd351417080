"""HSDS's JSON form imports with the tables' rules: never misread, every refusal at its path.

Another city's API answer (a ``Page`` of services, or one fully nested service) is read the
way its CSV tables would be: a monthly schedule is refused at the JSONPath of its ``freq``,
what has no place here is reported by its path, and our own JSON export comes back as it went.
With ``HSDS_SPEC_DIR`` the spec's own JSON examples are imported too.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from models.directory import service_by_key
from models.directory_io import (
    DirectoryFileError,
    export_directory,
    import_directory,
    read_directory,
    write_directory,
)
from models.hsds_profile import term_id
from models.schedule import format_hours
from tests.directory_helpers import ROME
from tests.test_directory_hsds_profile import _directory_with_counts

SPEC_DIR = os.environ.get("HSDS_SPEC_DIR")
TODAY = date(2026, 12, 1)
ORG = "d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610"
LOC = "3a19ff88-4620-4d17-9830-ac1d859eb5d5"


def service(n: int, **fields: Any) -> dict[str, Any]:
    """A nested service as another city's HSDS API gives it (no foreign keys: nesting)."""
    return {
        "id": f"0000000{n}-d857-441c-9679-408f346de14b",
        "name": f"Mensa {n}",
        "status": "active",
        "organization": {"id": ORG, "name": "Caritas", "description": "Diocesan charity"},
        "service_at_locations": [
            {
                "id": f"sal-{n}",
                "location": {
                    "id": LOC,
                    "location_type": "physical",
                    "name": "Via Moretto",
                    "latitude": 45.536,
                    "longitude": 10.214,
                },
            }
        ],
        "schedules": [
            {
                "id": f"s-{n}",
                "freq": "WEEKLY",
                "interval": 1,
                "byday": "MO,TU",
                "opens_at": "19:00:00",
                "closes_at": "21:00:00",
            }
        ],
        "attributes": [
            {"id": f"a-{n}", "taxonomy_term_id": term_id("meals"), "link_type": "service_type"}
        ],
    } | fields


def page(*services: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_items": len(services),
        "total_pages": 1,
        "page_number": 1,
        "size": len(services),
        "first_page": True,
        "last_page": True,
        "empty": not services,
        "contents": list(services),
    }


def write(tmp_path: Path, document: Any, name: str = "city.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def refusals(path: Path) -> list[str]:
    with pytest.raises(DirectoryFileError) as caught:
        read_directory(path, ROME, TODAY)
    return caught.value.problems


async def test_a_page_of_nested_services_imports_with_its_links(bot, tmp_path):
    directory = read_directory(write(tmp_path, page(service(1), service(2))), ROME, TODAY)
    assert [s.name for s in directory.services] == [{"it": "Mensa 1"}, {"it": "Mensa 2"}]
    assert [o.id for o in directory.organizations] == [ORG]
    assert [loc.id for loc in directory.locations] == [LOC]  # one location, nested twice
    first = directory.services[0]
    assert (first.organization, first.location, first.category) == (ORG, LOC, "meals")
    assert format_hours(first.slots()) == "mon-tue 19:00-21:00"
    async with bot.session() as session:
        summary = await import_directory(session, directory)
        await session.commit()
        mensa = await service_by_key(session, first.id)
        assert mensa is not None and mensa.location and mensa.location.latitude == 45.536
    assert summary.created == 4


async def test_hours_that_cannot_be_honoured_are_refused_at_their_path(tmp_path):
    monthly = service(2)
    monthly["schedules"][0] |= {"freq": "MONTHLY", "byday": "1MO"}
    problems = refusals(write(tmp_path, page(service(1), monthly, service(3, status="maybe"))))
    assert any(p.startswith("city.json: $.contents[1].schedules[0].freq: ") for p in problems)
    assert any(p.startswith("city.json: $.contents[1].schedules[0].byday: ") for p in problems)
    assert any(p.startswith("city.json: $.contents[2].status: ") for p in problems)


async def test_what_has_no_place_here_is_reported_by_its_path(tmp_path):
    busy = service(
        1,
        wait_time="2 days",
        funding=[{"id": "f1", "source": "City"}],
        contacts=[],  # empty: nothing left aside
    )
    busy["schedules"][0]["notes"] = "Closed at lunch"
    directory = read_directory(write(tmp_path, page(busy)), ROME, TODAY)
    assert "city.json: $.contents[].funding: not imported (this directory has no place for it)" in (
        directory.warnings
    )
    [fields] = [w for w in directory.warnings if "fields not imported" in w]
    assert "$.contents[].wait_time" in fields and "$.contents[].schedules[].notes" in fields
    assert "contacts" not in " ".join(directory.warnings)


async def test_a_second_page_says_only_its_records_are_imported(tmp_path):
    document = page(service(1)) | {"total_pages": 3, "page_number": 2, "last_page": False}
    directory = read_directory(write(tmp_path, document), ROME, TODAY)
    assert "city.json: page 2 of 3: only the records of this page (1) are imported" in (
        directory.warnings
    )


async def test_two_copies_of_a_record_that_disagree_are_refused(tmp_path):
    moved = service(2)
    moved["service_at_locations"][0]["location"]["latitude"] = 45.6
    problems = refusals(write(tmp_path, page(service(1), moved)))
    assert any(
        p.startswith("city.json: $.contents[1].service_at_locations[0].location.latitude: ")
        and "$.contents[0].service_at_locations[0].location" in p
        for p in problems
    )


async def test_a_nested_record_naming_another_parent_is_refused(tmp_path):
    confused = service(1)
    confused["schedules"][0]["service_id"] = "someone-else"
    problems = refusals(write(tmp_path, page(confused)))
    assert any(p.startswith("city.json: $.contents[0].schedules[0].service_id: ") for p in problems)


async def test_a_document_that_is_not_services_is_refused_whole(tmp_path):
    taxonomies = page({"id": "t1", "name": "Open Eligibility", "description": "A taxonomy"})
    [problem] = refusals(write(tmp_path, taxonomies))
    assert problem.startswith("city.json: $.contents[0]: not a service")
    (tmp_path / "broken.json").write_text('{"contents": [', encoding="utf-8")
    assert refusals(tmp_path / "broken.json") == ["broken.json line 1: not valid JSON"]


async def test_the_json_export_comes_back_unchanged(bot, tmp_path):
    """Every service, its organization (with its phone), location, hours, terms,
    translations, notes, closures and beds; tonight's count is never taken from a file."""
    await _directory_with_counts(bot)
    async with bot.session() as session:
        exported = await export_directory(session)
    write_directory(exported, tmp_path / "out.json")
    again = read_directory(tmp_path / "out.json", ROME, TODAY)
    assert again.services == exported.services
    by_id = {o.id: o for o in exported.organizations}
    assert again.organizations and all(o == by_id[o.id] for o in again.organizations)
    assert any(o.phone for o in again.organizations)
    locations = {loc.id: loc for loc in exported.locations}
    assert again.locations and all(loc == locations[loc.id] for loc in again.locations)
    assert any("9 free beds" in w and "never taken from a file" in w for w in again.warnings)
    assert not [w for w in again.warnings if "not imported" in w or "not read" in w]
    async with bot.session() as session:
        summary = await import_directory(session, again)
        await session.commit()
    assert (summary.created, summary.updated) == (0, 0)


def test_the_cli_imports_json_and_says_what_it_left_aside(tmp_path: Path, monkeypatch, capsys):
    from bot.cli import main
    from models.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", url)
    monkeypatch.delenv("HELPCENTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, page(service(1, funding=[{"id": "f1", "source": "City"}])))
    assert main(["services", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "left aside: city.json: $.contents[].funding: not imported" in out
    assert "3 created" in out
    monthly = service(1)
    monthly["schedules"][0]["freq"] = "MONTHLY"
    assert main(["services", "import", str(write(tmp_path, page(monthly)))]) != 0
    assert "$.contents[0].schedules[0].freq" in capsys.readouterr().err


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
@pytest.mark.parametrize(
    "example",
    [
        "service_full.json",
        "service_list.json",
        "organization_full.json",
        "service_at_location_full.json",
        "service_at_location_list.json",
    ],
)
async def test_the_specifications_json_examples_import_and_say_what_they_drop(bot, example):
    assert SPEC_DIR
    path = Path(SPEC_DIR) / "examples" / example
    directory = read_directory(path, ROME, TODAY)
    [counselling] = directory.services
    assert counselling.name == {"it": "Community Counselling"}
    assert counselling.organization == ORG
    warnings = directory.warnings
    assert any("fields not imported" in w and "alternate_name" in w for w in warnings)
    assert any("no category of the local taxonomy" in w for w in warnings)
    if example.endswith("_full.json"):
        assert counselling.location == LOC
        assert any(
            w.endswith("funding: not imported (this directory has no place for it)")
            or "contacts: not imported" in w
            for w in warnings
        )
        assert any("coordinates out of range (100, 101)" in w for w in warnings)
        assert any("already past: not imported" in w for w in warnings)
        assert any("a term of another taxonomy: not imported" in w for w in warnings)
    if example.endswith("_list.json"):
        assert any("page 1 of 10" in w for w in warnings)
    async with bot.session() as session:
        summary = await import_directory(session, directory)
        await session.commit()
    assert summary.created == len(directory.organizations) + len(directory.locations) + 1


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
@pytest.mark.parametrize("example", ["organization_list.json", "taxonomy_list.json"])
async def test_the_specifications_other_json_examples_are_refused_not_misread(example):
    assert SPEC_DIR
    problems = refusals(Path(SPEC_DIR) / "examples" / example)
    assert problems and all("not a service" in p for p in problems)
