"""The exported directory is an HSDS 3.0 tabular data package another city's tools can read.

No package on the index ships HSDS 3.0's schema files (``hsds-validator`` 0.1.2 has its own
hand-written models of 3.1 and needs Python 3.13), and the specification's files are not
copied into this repository. So the package is checked here against the data package rules
(header = fields, required filled, types, unique ids, foreign keys) and the spec's required
fields, written down below; with ``HSDS_SPEC_DIR`` pointing at a checkout of
openreferral/specification (3.0), every standard column is also checked against the spec's
own ``schema/*.json``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import uuid
from datetime import date
from pathlib import Path

import pytest

from models.directory_io import export_directory, import_directory, read_directory
from tests.directory_helpers import load_example

# HSDS 3.0: "required" and "tabular_required" of each table's schema.
SPEC_REQUIRED = {
    "organizations": {"id", "name", "description"},
    "locations": {"id", "location_type"},
    "services": {"id", "name", "status", "organization_id"},
    "service_at_location": {"id", "service_id", "location_id"},
    "phones": {"id", "number"},
    "languages": {"id"},
    "accessibility": {"id"},
    "schedules": {"id"},
    "attributes": {"id", "link_id", "taxonomy_term_id", "link_entity"},
    "taxonomies": {"id", "name", "description"},
    "taxonomy_terms": {"id", "name", "description"},
}
SPEC_FILES = {
    "organizations": "organization",
    "locations": "location",
    "services": "service",
    "service_at_location": "service_at_location",
    "phones": "phone",
    "languages": "language",
    "accessibility": "accessibility",
    "schedules": "schedule",
    "addresses": "address",
    "attributes": "attribute",
    "taxonomies": "taxonomy",
    "taxonomy_terms": "taxonomy_term",
}
TYPE_CHECKS = {
    "time": re.compile(r"\d{2}:\d{2}:\d{2}"),
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "number": re.compile(r"-?\d+(\.\d+)?"),
    "integer": re.compile(r"-?\d+"),
}


async def _exported(bot, folder: Path) -> dict:
    await load_example(bot)
    async with bot.session() as session:
        directory = await export_directory(session)
    from models.directory_io import write_directory

    write_directory(directory, folder)
    return json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))


def _table(folder: Path, resource: dict) -> tuple[list[str], list[dict[str, str]]]:
    with (folder / resource["path"]).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def package_problems(folder: Path, package: dict) -> list[str]:
    """The tabular data package rules, resource by resource."""
    problems: list[str] = []
    ids: dict[str, set[str]] = {}
    tables = {}
    for resource in package["resources"]:
        header, rows = _table(folder, resource)
        tables[resource["name"]] = (resource, rows)
        fields = resource["schema"]["fields"]
        if header != [f["name"] for f in fields]:
            problems.append(f"{resource['name']}: header is not the schema's fields")
        for n, row in enumerate(rows, start=2):
            for f in fields:
                value = row[f["name"]]
                if not value:
                    if f.get("constraints", {}).get("required"):
                        problems.append(f"{resource['name']} line {n}: {f['name']} required")
                    continue
                check = TYPE_CHECKS.get(f["type"])
                if check and not check.fullmatch(value):
                    problems.append(f"{resource['name']} line {n}: {f['name']} not a {f['type']}")
        if "primaryKey" in resource["schema"]:
            keys = [row["id"] for row in rows]
            if len(set(keys)) != len(keys):
                problems.append(f"{resource['name']}: duplicate ids")
            ids[resource["name"]] = set(keys)
    for name, (resource, rows) in tables.items():
        for fk in resource["schema"].get("foreignKeys", []):
            column, target = fk["fields"][0], fk["reference"]["resource"]
            for row in rows:
                if row[column] and row[column] not in ids[target]:
                    problems.append(f"{name}: {column} {row[column]} not in {target}")
    return problems


async def test_the_export_is_a_valid_tabular_data_package(bot, tmp_path):
    folder = tmp_path / "hsds"
    package = await _exported(bot, folder)
    assert package["profile"] == "tabular-data-package"
    assert {r["name"] for r in package["resources"]} >= set(SPEC_REQUIRED)
    assert package_problems(folder, package) == []


async def test_standard_tables_have_uuids_and_the_required_fields_filled(bot, tmp_path):
    folder = tmp_path / "hsds"
    package = await _exported(bot, folder)
    resources = {r["name"]: r for r in package["resources"]}
    for table, required in SPEC_REQUIRED.items():
        header, rows = _table(folder, resources[table])
        assert required <= set(header), table
        for row in rows:
            uuid.UUID(row["id"])
            assert all(row[column] for column in required), (table, row["id"])
    _header, schedules = _table(folder, resources["schedules"])
    assert schedules and all(re.fullmatch(r"\d\d:\d\d:\d\d", r["opens_at"]) for r in schedules)
    _header, services = _table(folder, resources["services"])
    assert {r["status"] for r in services} == {"active"}
    assert package["x_timezone"] == "Europe/Rome"


async def test_exporting_twice_gives_the_same_ids_and_reimporting_changes_nothing(bot, tmp_path):
    await _exported(bot, tmp_path / "one")
    await _exported(bot, tmp_path / "two")
    for name in ("services.csv", "schedules.csv", "datapackage.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    directory = read_directory(tmp_path / "one", today=date(2026, 12, 1))
    async with bot.session() as session:
        summary = await import_directory(session, directory)
        await session.rollback()
    assert (summary.created, summary.updated) == (0, 0)


SPEC_DIR = os.environ.get("HSDS_SPEC_DIR")


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_every_standard_column_is_the_specifications_own(bot, tmp_path):
    folder = tmp_path / "hsds"
    package = await _exported(bot, folder)
    assert SPEC_DIR
    for resource in package["resources"]:
        if resource.get("x_extension") or resource["name"] not in SPEC_FILES:
            continue
        spec_path = Path(SPEC_DIR) / "schema" / f"{SPEC_FILES[resource['name']]}.json"
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        properties = spec["properties"]
        for f in resource["schema"]["fields"]:
            if f.get("x_extension"):
                continue
            assert f["name"] in properties, (resource["name"], f["name"])
            declared = properties[f["name"]]
            expected = declared.get("datapackage_type") or declared.get("type")
            assert f["type"] == expected, (resource["name"], f["name"], expected)
        required = set(spec.get("required", [])) | set(spec.get("tabular_required", []))
        standard = {f["name"] for f in resource["schema"]["fields"] if not f.get("x_extension")}
        assert required <= standard, resource["name"]


async def test_an_imported_hsds_folder_validates_when_exported(bot, tmp_path):
    from tests.test_directory_hsds import hsds_folder

    directory = read_directory(hsds_folder(tmp_path), today=date(2026, 12, 1))
    async with bot.session() as session:
        await import_directory(session, directory)
        await session.commit()
    async with bot.session() as session:
        exported = await export_directory(session)
    from models.directory_io import write_directory

    write_directory(exported, tmp_path / "out")
    package = json.loads((tmp_path / "out" / "datapackage.json").read_text(encoding="utf-8"))
    assert package_problems(tmp_path / "out", package) == []
    _header, services = _table(tmp_path / "out", package["resources"][2])
    assert services[0]["id"] == "ac148810-d857-441c-9679-408f346de14b"  # its HSDS id kept


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_the_specifications_own_example_imports_and_says_what_it_drops(bot, tmp_path):
    assert SPEC_DIR
    directory = read_directory(Path(SPEC_DIR) / "examples" / "csv", today=date(2026, 12, 1))
    assert [s.name for s in directory.services] == [{"it": "Community Counselling"}]
    assert any("funding.csv: table not imported" in w for w in directory.warnings)
    assert any("already past: not imported" in w for w in directory.warnings)
    assert any("coordinates out of range" in w for w in directory.warnings)
    async with bot.session() as session:
        summary = await import_directory(session, directory)
        await session.commit()
    assert summary.created == 3


async def test_a_structured_address_is_exported_as_an_hsds_address(bot, tmp_path):
    from tests.test_directory_hsds import LOC, hsds_folder

    addresses = (
        "id,location_id,address_1,city,state_province,postal_code,country,address_type\n"
        f"a1,{LOC},Via Moretto 5,Brescia,BS,25122,it,physical\n"
    )
    directory = read_directory(hsds_folder(tmp_path, addresses=addresses), today=date(2026, 12, 1))
    async with bot.session() as session:
        await import_directory(session, directory)
        await session.commit()
    async with bot.session() as session:
        exported = await export_directory(session)
    from models.directory_io import write_directory

    write_directory(exported, tmp_path / "out")
    package = json.loads((tmp_path / "out" / "datapackage.json").read_text(encoding="utf-8"))
    assert package_problems(tmp_path / "out", package) == []
    resource = next(r for r in package["resources"] if r["name"] == "addresses")
    _header, rows = _table(tmp_path / "out", resource)
    assert [(r["address_1"], r["city"], r["postal_code"], r["country"]) for r in rows] == [
        ("Via Moretto 5", "Brescia", "25122", "IT")
    ]
