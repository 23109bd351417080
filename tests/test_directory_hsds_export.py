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

# HSDS 3.0: "required" and "tabular_required" of each table's schema, by the resource names
# of the spec's datapackage.json (each named after its schema file: ``service``).
SPEC_REQUIRED = {
    "organization": {"id", "name", "description"},
    "location": {"id", "location_type"},
    "service": {"id", "name", "status", "organization_id"},
    "service_at_location": {"id", "service_id", "location_id"},
    "phone": {"id", "number"},
    "language": {"id"},
    "accessibility": {"id"},
    "schedule": {"id"},
    "attribute": {"id", "link_id", "taxonomy_term_id", "link_entity"},
    "taxonomy": {"id", "name", "description"},
    "taxonomy_term": {"id", "name", "description"},
}
# The spec's resources (datapackage.json: name and path) that the export writes.
SPEC_RESOURCES = {
    "organization": "organizations.csv",
    "location": "locations.csv",
    "service": "services.csv",
    "service_at_location": "service_at_location.csv",
    "phone": "phones.csv",
    "language": "languages.csv",
    "accessibility": "accessibility.csv",
    "schedule": "schedules.csv",
    "address": "addresses.csv",
    "attribute": "attributes.csv",
    "taxonomy": "taxonomies.csv",
    "taxonomy_term": "taxonomy_terms.csv",
}
SPEC_FILES = {name: name for name in SPEC_RESOURCES}  # the schema file of each resource
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
    _header, schedules = _table(folder, resources["schedule"])
    assert schedules and all(re.fullmatch(r"\d\d:\d\d:\d\d", r["opens_at"]) for r in schedules)
    _header, services = _table(folder, resources["service"])
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
    resource = next(r for r in package["resources"] if r["name"] == "address")
    _header, rows = _table(tmp_path / "out", resource)
    assert [(r["address_1"], r["city"], r["postal_code"], r["country"]) for r in rows] == [
        ("Via Moretto 5", "Brescia", "25122", "IT")
    ]


# ---- the spec's resource names; a service without an organization ---------------------------


async def test_resources_have_the_specs_names_and_paths(bot, tmp_path):
    """A consumer looking for the spec's ``service`` resource finds ``services.csv``."""
    package = await _exported(bot, tmp_path / "hsds")
    resources = {r["name"]: r for r in package["resources"]}
    for name, path in SPEC_RESOURCES.items():
        assert resources[name]["path"] == path, name
    assert (resources["service_capacity"]["path"], resources["unit"]["path"]) == (
        "service_capacity.csv",
        "units.csv",
    )
    assert {"x_translation", "x_closure", "x_place"} <= set(resources)
    for resource in package["resources"]:
        for fk in resource["schema"]["foreignKeys"]:
            assert fk["reference"]["resource"] in resources, (resource["name"], fk)


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_the_specs_datapackage_finds_every_standard_table_of_ours(bot, tmp_path):
    assert SPEC_DIR
    folder = tmp_path / "hsds"
    package = await _exported(bot, folder)
    spec = json.loads((Path(SPEC_DIR) / "datapackage.json").read_text(encoding="utf-8"))
    theirs = {r["name"]: r for r in spec["resources"]}
    spec_31 = os.environ.get("HSDS_SPEC_31_DIR")
    if spec_31:
        later = json.loads((Path(spec_31) / "datapackage.json").read_text(encoding="utf-8"))
        theirs |= {r["name"]: r for r in later["resources"] if r["name"] not in theirs}
    for resource in package["resources"]:
        if resource["name"].startswith("x_") or (resource.get("x_hsds_version") and not spec_31):
            continue  # the profile's own; or HSDS 3.1's without a 3.1 checkout
        assert resource["name"] in theirs, resource["name"]
        spec_resource = theirs[resource["name"]]
        assert resource["path"] == spec_resource["path"], resource["name"]
        header, _rows = _table(folder, spec_resource)  # opened by the spec's own path
        if resource.get("x_hsds_version"):
            continue  # 3.1-dev's datapackage lags its schemas: the columns are checked there
        spec_fields = {f["name"] for f in spec_resource["schema"]["fields"]}
        assert {c for c in header if not c.startswith("x_")} <= spec_fields, resource["name"]


def _rewrite_package(folder: Path, rename: dict[str, str], subfolder: str) -> None:
    """Move the tables into ``subfolder`` and rename their resources as ``rename`` says."""
    descriptor = folder / "datapackage.json"
    package = json.loads(descriptor.read_text(encoding="utf-8"))
    (folder / subfolder).mkdir()
    for resource in package["resources"]:
        (folder / resource["path"]).rename(folder / subfolder / resource["path"])
        resource["path"] = f"{subfolder}/{resource['path']}"
        resource["name"] = rename.get(resource["name"], resource["name"])
    descriptor.write_text(json.dumps(package), encoding="utf-8")


async def test_tables_are_found_by_the_specs_names_and_our_older_plural_ones(bot, tmp_path):
    from models.directory_io import to_yaml
    from models.hsds_profile import SCHEMA_OF_TABLE

    await _exported(bot, tmp_path / "plain")
    async with bot.session() as session:
        exported = to_yaml(await export_directory(session))
    plural = {name: table for table, name in SCHEMA_OF_TABLE.items()}  # service -> services
    for folder, rename in ((tmp_path / "spec", {}), (tmp_path / "older", plural)):
        await _exported(bot, folder)
        _rewrite_package(folder, rename, "data")
        directory = read_directory(folder, today=date(2026, 12, 1))
        assert to_yaml(directory) == exported, folder.name
        assert not [w for w in directory.warnings if "not imported" in w or "not read" in w]


async def test_a_service_without_an_organization_refuses_the_tables_and_says_which(bot, tmp_path):
    from models.directory_io import read_yaml, write_directory
    from models.hsds_export import IncompletePackageError

    await load_example(bot)
    orphan = "services:\n  - {id: soup-run, category: meals, name: {it: Giro serale}}\n"
    async with bot.session() as session:
        await import_directory(session, read_yaml(orphan))
        await session.commit()
        directory = await export_directory(session)
    with pytest.raises(IncompletePackageError) as refused:
        write_directory(directory, tmp_path / "out")
    assert "soup-run" in str(refused.value) and "organization_id" in str(refused.value)
    assert not (tmp_path / "out").exists()  # nothing half-written
    write_directory(directory, tmp_path / "out.json")  # HSDS's JSON does not require one
    page = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    [soup] = [s for s in page["contents"] if s["x_local_id"] == "soup-run"]
    assert "organization" not in soup and "organization_id" not in soup
    if SPEC_DIR:
        import jsonschema

        schema = Path(SPEC_DIR) / "schema" / "compiled" / "service.json"
        jsonschema.validate(soup, json.loads(schema.read_text(encoding="utf-8")))


async def test_the_operator_may_name_the_provider_of_services_without_one(bot, tmp_path):
    from models.directory_io import read_yaml, write_directory
    from models.hsds_export import IncompletePackageError
    from models.hsds_profile import hsds_id

    await load_example(bot)
    orphan = "services:\n  - {id: soup-run, category: meals, name: {it: Giro serale}}\n"
    async with bot.session() as session:
        await import_directory(session, read_yaml(orphan))
        await session.commit()
        directory = await export_directory(session)
    with pytest.raises(IncompletePackageError, match="no organization with id 'nobody'"):
        write_directory(directory, tmp_path / "bad", provider="nobody")
    write_directory(directory, tmp_path / "out", provider="street-volunteers")
    package = json.loads((tmp_path / "out" / "datapackage.json").read_text(encoding="utf-8"))
    assert package_problems(tmp_path / "out", package) == []
    _header, services = _table(tmp_path / "out", {"path": "services.csv"})
    providers = {s["x_local_id"]: s["organization_id"] for s in services}
    assert providers["soup-run"] == hsds_id("organization", "street-volunteers")
    assert providers["help-center"] == hsds_id("organization", "coop-la-rete")  # its own kept


def test_the_cli_refuses_the_tables_naming_the_services(tmp_path: Path, monkeypatch, capsys):
    from bot.cli import main
    from models.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", url)
    monkeypatch.delenv("HELPCENTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.yaml").write_text(
        "services:\n  - {id: soup-run, category: meals, name: {it: Giro serale}}\n", "utf-8"
    )
    assert main(["services", "import", str(tmp_path / "d.yaml")]) == 0
    assert main(["services", "export", str(tmp_path / "out")]) != 0
    error = capsys.readouterr().err
    assert "nothing exported" in error and "soup-run" in error and "--organization" in error
    (tmp_path / "o.yaml").write_text("organizations:\n  - {id: caritas, name: Caritas}\n", "utf-8")
    assert main(["services", "import", str(tmp_path / "o.yaml")]) == 0
    assert main(["services", "export", str(tmp_path / "out"), "--organization", "caritas"]) == 0
    assert (tmp_path / "out" / "services.csv").is_file()
