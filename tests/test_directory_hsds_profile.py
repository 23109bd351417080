"""Our own fields the standard's way: the local taxonomy, shelter capacity, translations.

Another city's tools read a dormitory's "men only, through the Help Center, dogs welcome" as
HSDS attributes of a published taxonomy, its beds as HSDS 3.1's service_capacity with the
count's age, its English and Arabic names as the profile's x_translations; and what we export
comes back unchanged. With ``HSDS_SPEC_DIR`` (a 3.0 checkout of openreferral/specification)
and ``HSDS_SPEC_31_DIR`` (3.1) the export is also validated against the spec's schemas with
the profile's patches merged in, and the capacity records against 3.1's own schemas.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bot.hsds_api import make_hsds_app
from models.base import clock
from models.directory import Admits, Category, Fee, service_by_key, set_beds
from models.directory_io import (
    DirectoryFileError,
    export_directory,
    import_directory,
    read_directory,
    read_yaml,
    to_yaml,
    write_directory,
)
from models.hsds_profile import (
    FACET_OF_CODE,
    FACETS,
    PROFILE_DIR,
    TAXONOMY_NAME,
    hsds_id,
    profile,
    taxonomy,
    term_id,
)
from tests.directory_helpers import load_example
from tests.test_directory_hsds import LOC, SERVICE, SERVICES_HEADER, hsds_folder, service_row
from tests.test_directory_hsds_export import package_problems

SPEC_DIR = os.environ.get("HSDS_SPEC_DIR")
SPEC_31_DIR = os.environ.get("HSDS_SPEC_31_DIR")
TODAY = date(2026, 12, 1)
# A service named only in English (another city's data), and notes in two languages.
MORE = """
services:
  - id: evening-meal
    category: meals
    organization: caritas-brescia
    name: {en: Evening meal, fr: Repas du soir}
    description: {fr: Un repas chaud}
    notes: {it: Chiuso per lavori, en: Closed for works}
    admits: women
    documents_required: true
    pets_allowed: false
    fee: small_fee
    fee_note: 1 euro
    hours: "mon-fri 19:00-20:00"
"""
COUNTED_AT = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)


def rows(folder: Path, table: str) -> list[dict[str, str]]:
    with (folder / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def _directory_with_counts(bot) -> None:
    """The example city, one more service, and tonight's count of one shelter."""
    await load_example(bot)
    clock.advance((COUNTED_AT - clock.now()).total_seconds())
    async with bot.session() as session:
        await import_directory(session, read_yaml(MORE))
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica is not None
        await set_beds(session, corsica, free=9, by=None)
        await session.commit()


async def _export(bot, path: Path) -> Path:
    async with bot.session() as session:
        directory = await export_directory(session)
    write_directory(directory, path)
    return path


def _codes(folder: Path, service_key: str) -> set[str]:
    service_id = hsds_id("service", service_key)
    codes = {t["id"]: t["code"] for t in rows(folder, "taxonomy_terms")}
    return {
        codes[a["taxonomy_term_id"]]
        for a in rows(folder, "attributes")
        if a["link_id"] == service_id
    }


def test_the_published_taxonomy_is_the_one_the_directory_speaks():
    """taxonomy.json has every category and condition, with the ids the export writes."""
    published = taxonomy()
    assert published["taxonomy"]["id"] == hsds_id("taxonomy", "helpcenter")
    assert published["taxonomy"]["name"] == TAXONOMY_NAME
    assert {"name", "description", "uri", "version"} <= set(published["taxonomy"])
    terms = published["taxonomy_terms"]
    assert [t["code"] for t in terms] == list(FACET_OF_CODE)
    assert all(t["id"] == term_id(t["code"]) and t["name"] and t["description"] for t in terms)
    facets = {facet.name: facet for facet in FACETS}
    assert set(facets["category"].values) == set(Category)
    assert set(facets["admits"].values.values()) == set(Admits) - {Admits.ALL}
    assert set(facets["fee"].values.values()) == set(Fee)
    listed = set(profile()["files"])
    on_disk = {p.relative_to(PROFILE_DIR).as_posix() for p in PROFILE_DIR.rglob("*.json")}
    assert on_disk - {"profile.json"} == listed


async def test_categories_and_admission_are_attributes_of_the_local_taxonomy(bot, tmp_path):
    await _directory_with_counts(bot)
    folder = await _export(bot, tmp_path / "out")
    assert _codes(folder, "dormitorio-san-vincenzo") == {
        "night_shelter",
        "men_only",
        "referral_required",
        "pets_allowed",
        "free",
    }
    assert _codes(folder, "evening-meal") == {
        "meals",
        "women_only",
        "documents_required",
        "no_pets",
        "small_fee",
    }
    [listed] = rows(folder, "taxonomies")
    assert (listed["name"], listed["version"]) == (TAXONOMY_NAME, "1.0.0")
    assert listed["description"] and listed["uri"]
    used = {a["taxonomy_term_id"] for a in rows(folder, "attributes")}
    assert {t["id"] for t in rows(folder, "taxonomy_terms")} == used  # no unused terms
    header = rows(folder, "services")[0]
    assert not {"category", "admits", "referral_required", "pets_allowed", "fee"} & set(header)
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    tables = {r["name"] for r in package["resources"]}
    assert {"attribute", "taxonomy", "taxonomy_term"} <= tables
    assert package_problems(folder, package) == []
    page = json.loads((await _export(bot, tmp_path / "out.json")).read_text(encoding="utf-8"))
    [dorm] = [s for s in page["contents"] if s["x_local_id"] == "dormitorio-san-vincenzo"]
    term = next(a["taxonomy_term"] for a in dorm["attributes"] if a["link_type"] == "service_type")
    assert term["code"] == "night_shelter"
    assert term["taxonomy_detail"]["name"] == TAXONOMY_NAME


async def test_tonights_beds_are_service_capacity_with_the_counts_age(bot, tmp_path):
    await _directory_with_counts(bot)
    folder = await _export(bot, tmp_path / "out")
    [capacity] = rows(folder, "service_capacity")
    assert capacity["service_id"] == hsds_id("service", "asilo-corsica")
    assert (capacity["available"], capacity["maximum"]) == ("9", "60")
    assert abs((datetime.fromisoformat(capacity["updated"]) - COUNTED_AT).total_seconds()) < 60
    [unit] = rows(folder, "units")
    assert capacity["unit_id"] == unit["id"] and unit["name"] == "Bed"
    totals = {r["x_local_id"]: r["x_beds_total"] for r in rows(folder, "services")}
    assert totals["dormitorio-san-vincenzo"] == "57"  # no count yet: the total still says it
    page = json.loads((await _export(bot, tmp_path / "out.json")).read_text(encoding="utf-8"))
    [corsica] = [s for s in page["contents"] if s["x_local_id"] == "asilo-corsica"]
    [listed] = corsica["capacities"]
    assert (listed["available"], listed["maximum"], listed["unit"]["name"]) == (9, 60, "Bed")


async def test_the_export_comes_back_unchanged_and_tonights_count_stays(bot, tmp_path):
    """Every field, the attributes, translations and totals; a file never sets tonight's count."""
    await _directory_with_counts(bot)
    folder = await _export(bot, tmp_path / "out")
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica is not None
        clock.advance(3600)
        await set_beds(session, corsica, free=3, by=None)  # counted again after the export
        await session.commit()
        exported = await export_directory(session)
    again = read_directory(folder, today=TODAY)
    assert to_yaml(again) == to_yaml(exported)
    meal = next(s for s in again.services if s.id == "evening-meal")
    assert meal.name == {"en": "Evening meal", "fr": "Repas du soir"}
    assert meal.notes == {"it": "Chiuso per lavori", "en": "Closed for works"}
    assert any(w.startswith("service_capacity.csv line 2: 9 free beds") for w in again.warnings)
    async with bot.session() as session:
        summary = await import_directory(session, again)
        await session.commit()
    assert (summary.created, summary.updated) == (0, 0)
    async with bot.session() as session:
        corsica = await service_by_key(session, "asilo-corsica")
        assert corsica is not None and corsica.beds is not None
        assert (corsica.beds.free, corsica.beds.total) == (3, 60)


async def test_the_standard_fields_are_italian_the_others_translations(bot, tmp_path):
    await _directory_with_counts(bot)
    folder = await _export(bot, tmp_path / "out")
    services = {r["x_local_id"]: r for r in rows(folder, "services")}
    assert services["help-center"]["name"] == "Help Center della stazione"
    assert services["help-center"]["x_language"] == "it"
    assert (services["evening-meal"]["name"], services["evening-meal"]["x_language"]) == (
        "Evening meal",
        "en",
    )
    assert services["evening-meal"]["x_notes"] == "Closed for works"
    translated = {(t["service_id"], t["language"]): t for t in rows(folder, "x_translations")}
    arabic = translated[(hsds_id("service", "help-center"), "ar")]
    assert arabic["name"] == "مركز المساعدة في المحطة"
    assert translated[(hsds_id("service", "evening-meal"), "it")]["x_notes"] == "Chiuso per lavori"
    assert translated[(hsds_id("service", "evening-meal"), "fr")]["description"] == "Un repas chaud"
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert package["x_hsds_profile"]["name"] == profile()["name"]
    copied = folder / package["x_hsds_profile"]["path"]
    assert json.loads(copied.read_text(encoding="utf-8")) == profile()


async def test_every_extension_is_described_by_the_profile(bot, tmp_path):
    await _directory_with_counts(bot)
    folder = await _export(bot, tmp_path / "out")
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    for resource in package["resources"]:
        for field in resource["schema"]["fields"]:
            if field["name"].startswith("x_") or resource["name"].startswith("x_"):
                assert field.get("x_extension") and field["description"], field["name"]
    page = json.loads((await _export(bot, tmp_path / "out.json")).read_text(encoding="utf-8"))
    patch = json.loads((PROFILE_DIR / "profile" / "service.json").read_text(encoding="utf-8"))
    for service in page["contents"]:
        extensions = {k for k in service if k.startswith("x_")} | {"capacities"} & set(service)
        assert extensions <= set(patch["properties"]), extensions - set(patch["properties"])


def _attributes(*lines: str) -> str:
    return "id,link_id,taxonomy_term_id,link_type,link_entity,value\n" + "".join(
        f"a{n},{SERVICE},{term},,service,\n" for n, term in enumerate(lines)
    )


async def test_another_citys_file_with_our_attributes_is_read_without_our_columns(bot, tmp_path):
    services = SERVICES_HEADER.replace(",category", "") + service_row().replace(",meals", "")
    folder = hsds_folder(
        tmp_path,
        services=services,
        attributes=_attributes(term_id("night_shelter"), term_id("women_only")),
    )
    [service] = read_directory(folder, today=TODAY).services
    assert (service.category, service.admits) == (Category.NIGHT_SHELTER, Admits.WOMEN)


async def test_attributes_of_another_taxonomy_are_reported_and_left(tmp_path):
    other = "11111111-2222-4333-8444-555555555555"
    folder = hsds_folder(
        tmp_path,
        attributes=_attributes(other, term_id("men_only")),
        taxonomy_terms=(
            "id,code,name,description,taxonomy,taxonomy_id\n"
            f"{other},BD-1800,Food Pantries,Food,Open Eligibility,oe\n"
        ),
        taxonomies="id,name,description\noe,Open Eligibility,A taxonomy\n",
    )
    directory = read_directory(folder, today=TODAY)
    assert any(
        w.startswith("attributes.csv line 2:") and "'Open Eligibility'" in w and "not imported" in w
        for w in directory.warnings
    )
    [service] = directory.services
    assert (service.category, service.admits) == (Category.MEALS, Admits.MEN)


async def test_two_terms_of_one_kind_are_refused_with_their_line(tmp_path):
    folder = hsds_folder(
        tmp_path, attributes=_attributes(term_id("men_only"), term_id("women_only"))
    )
    with pytest.raises(DirectoryFileError) as caught:
        read_directory(folder, today=TODAY)
    assert any(
        p.startswith("attributes.csv line 3: taxonomy_term_id") for p in caught.value.problems
    )


async def test_a_capacity_in_beds_gives_the_total_never_tonights_count(tmp_path):
    unit = "99999999-2222-4333-8444-555555555555"
    folder = hsds_folder(
        tmp_path,
        service_capacity=(
            "id,service_id,unit_id,available,maximum,description,updated\n"
            f"c1,{SERVICE},{unit},12,40,Beds,2026-11-30T20:00:00.000+01:00\n"
        ),
        units=f"id,name,scheme,identifier,uri\n{unit},Beds,,,\n",
    )
    directory = read_directory(folder, today=TODAY)
    assert directory.services[0].beds_total == 40
    assert any(
        w.startswith("service_capacity.csv line 2: 12 free beds") for w in directory.warnings
    )
    assert directory.bed_counts == {}


async def test_an_older_export_still_imports(tmp_path):
    """local_id, category, admits, name_fr, beds_total, seasons, closures.csv, places.csv."""
    folder = tmp_path / "old"
    folder.mkdir()
    files = {
        "services": "id,name,category,admits,pets_allowed,beds_total,name_fr,notes,local_id\n"
        "u1,Dormitorio,night_shelter,men,yes,12,Dortoir,Nota,dormitorio\n",
        "schedules": "id,service_id,byday,opens_at,closes_at,season_start,season_end\n"
        "s1,u1,MO,19:00:00,08:00:00,11-15,03-31\n",
        "closures": "service_id,date,note\nu1,2026-12-25,Natale\n",
        "places": "id,name,aliases,latitude,longitude\nstazione,Stazione,station|gare,45.5,10.2\n",
        "locations": "id,location_type,name,address,area,local_id\n"
        f"{LOC},physical,Casa,Via Rose,Centro,casa\n",
    }
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    directory = read_directory(folder, today=TODAY)
    [service] = directory.services
    assert (service.id, service.category, service.admits, service.beds_total) == (
        "dormitorio",
        Category.NIGHT_SHELTER,
        Admits.MEN,
        12,
    )
    assert service.pets_allowed and service.name == {"it": "Dormitorio", "fr": "Dortoir"}
    assert service.notes == {"it": "Nota"} and service.season == "11-15..03-31"
    assert [c.note for c in service.closures] == ["Natale"]
    [place] = directory.places
    assert (place.id, place.aliases) == ("stazione", ["station", "gare"])
    assert (directory.locations[0].id, directory.locations[0].area) == ("casa", "Centro")
    assert not any("not imported" in w for w in directory.warnings)


def _client(bot) -> httpx.AsyncClient:
    app = make_hsds_app(bot.sessionmaker)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hsds")


async def test_the_api_names_its_profile_and_serves_it(bot):
    async with _client(bot) as http:
        about = (await http.get("/")).json()
        described = await http.get(about["profile"])
        taxonomy_file = await http.get(about["profile"] + "/taxonomy.json")
        patch = await http.get(about["profile"] + "/profile/service.json")
        outside = await http.get(about["profile"] + "/%2E%2E/%2E%2E/pyproject.toml")
    assert about["profile"] == "http://hsds/profile"
    assert described.json()["name"] == profile()["name"]
    assert taxonomy_file.json() == taxonomy()
    assert "x_translations" in patch.json()["properties"]
    assert outside.status_code == 404


async def test_the_api_lists_services_by_taxonomy_term(bot):
    await load_example(bot)
    async with _client(bot) as http:
        women = {"taxonomy_term_id": term_id("women_only")}
        by_id = (await http.get("/services", params=women)).json()
        by_code = (await http.get("/services", params={"taxonomy_term_id": "night_shelter"})).json()
    assert [s["name"] for s in by_id["contents"]] == ["Casa Betel (donne)"]
    assert by_code["total_items"] == 4


# ---- against the specification's own files ---------------------------------------------------

HSDS_30_BASE = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, the way a profile's files modify the spec's."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _profile_registry() -> tuple[Registry, dict[str, dict[str, Any]]]:
    """The spec's schema files with the profile's patches merged, and its new objects."""
    assert SPEC_DIR and SPEC_31_DIR
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(SPEC_DIR) / "schema").glob("*.json")):
        if path.name != "openapi.json":
            schemas[path.name] = json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((PROFILE_DIR / "profile").glob("*.json")):
        patch = json.loads(path.read_text(encoding="utf-8"))
        schemas[path.name] = merge_patch(schemas.get(path.name, {}), patch)
    registry: Registry = Registry()
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        registry = registry.with_resource(
            HSDS_30_BASE + name, Resource.from_contents(schema, default_specification=DRAFT202012)
        )
    base_31 = profile()["capacity_schema"].rsplit("/", 1)[0] + "/"
    for path in sorted((Path(SPEC_31_DIR) / "schema").glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        registry = registry.with_resource(base_31 + path.name, resource)
    return registry, schemas


both_specs = pytest.mark.skipif(
    not (SPEC_DIR and SPEC_31_DIR), reason="HSDS_SPEC_DIR and HSDS_SPEC_31_DIR not both set"
)


@both_specs
async def test_the_json_export_validates_against_the_profile_merged_into_the_spec(bot, tmp_path):
    registry, schemas = _profile_registry()
    service_schema = {"$ref": HSDS_30_BASE + "service.json"}
    validator = jsonschema.Draft202012Validator(service_schema, registry=registry)
    await _directory_with_counts(bot)
    page = json.loads((await _export(bot, tmp_path / "out.json")).read_text(encoding="utf-8"))
    for service in page["contents"]:
        validator.validate(service)
    assert "x_translations" in schemas["service.json"]["properties"]
    broken = dict(page["contents"][0], x_translations=[{"name": "no language"}])
    assert not validator.is_valid(broken)  # the profile's rules do bite


@pytest.mark.skipif(not SPEC_31_DIR, reason="HSDS_SPEC_31_DIR not set (a 3.1 checkout)")
async def test_capacity_records_are_hsds_31s_own(bot, tmp_path):
    assert SPEC_31_DIR
    schema_dir = Path(SPEC_31_DIR) / "schema"
    registry: Registry = Registry()
    for path in schema_dir.glob("*.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(
            path.name, Resource.from_contents(contents, default_specification=DRAFT202012)
        )
    capacity_schema = json.loads((schema_dir / "service_capacity.json").read_text())
    unit_schema = json.loads((schema_dir / "unit.json").read_text())
    await _directory_with_counts(bot)
    page = json.loads((await _export(bot, tmp_path / "out.json")).read_text(encoding="utf-8"))
    capacities = [c for s in page["contents"] for c in s.get("capacities", [])]
    assert capacities
    for capacity in capacities:
        jsonschema.Draft202012Validator(capacity_schema, registry=registry).validate(capacity)
    folder = await _export(bot, tmp_path / "out")
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    for table, schema in (("service_capacity", capacity_schema), ("units", unit_schema)):
        resource = next(r for r in package["resources"] if r["path"] == f"{table}.csv")
        columns = [f["name"] for f in resource["schema"]["fields"]]
        assert set(columns) <= set(schema["properties"]), table
        required = set(schema["required"]) | set(schema.get("tabular_required", []))
        assert required - {"unit"} <= set(columns), table  # unit: unit_id in the tables
        for row in rows(folder, table):
            assert all(row[column] for column in required - {"unit"}), table
