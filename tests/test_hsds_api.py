"""Another city's tools read our directory through the HSDS 3.0 API, the way the spec says.

The answers are checked against the ``Page`` schema and the service's required fields as the
spec's ``openapi.json`` gives them (written down here: the spec's files are not copied into
this repository); with ``HSDS_SPEC_DIR`` pointing at a checkout of the specification, also
against its own ``openapi.json`` and ``schema/compiled/service.json`` / ``service_list.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from bot.hsds_api import make_hsds_app
from tests.directory_helpers import load_example

PAGE = {  # openapi.json, components.schemas.Page, with the services' contents
    "type": "object",
    "required": [
        "total_items",
        "total_pages",
        "page_number",
        "size",
        "first_page",
        "last_page",
        "empty",
        "contents",
    ],
    "properties": {
        "total_items": {"type": "integer"},
        "total_pages": {"type": "integer"},
        "page_number": {"type": "integer"},
        "size": {"type": "integer"},
        "first_page": {"type": "boolean"},
        "last_page": {"type": "boolean"},
        "empty": {"type": "boolean"},
        "contents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "status"],
                "properties": {"status": {"enum": ["active", "inactive", "defunct"]}},
            },
        },
    },
}
SPEC_DIR = os.environ.get("HSDS_SPEC_DIR")


def client(bot) -> httpx.AsyncClient:
    app = make_hsds_app(bot.sessionmaker)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hsds")


async def get(bot, path: str, **params: Any) -> Any:
    async with client(bot) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_root_says_which_hsds_this_is(bot):
    about = await get(bot, "/")
    assert about["version"] == "3.0"
    # The OpenAPI document of this API (the spec's "openapi_url": "which defines this API").
    assert about["openapi_url"] == "http://hsds/openapi.json"
    document = await get(bot, "/openapi.json")
    assert document["openapi"].startswith("3.1") and document["servers"] == [{"url": "http://hsds"}]


async def test_services_come_in_pages_of_the_specs_shape(bot):
    await load_example(bot)
    first = await get(bot, "/services", per_page=5)
    jsonschema.validate(first, PAGE)
    assert (first["total_items"], first["total_pages"], first["size"]) == (18, 4, 5)
    assert first["first_page"] and not first["last_page"]
    last = await get(bot, "/services", per_page=5, page=4)
    assert last["size"] == 3 and last["last_page"]
    assert not {s["id"] for s in first["contents"]} & {s["id"] for s in last["contents"]}


async def test_search_and_organization_narrow_the_list(bot):
    await load_example(bot)
    found = await get(bot, "/services", search="dormitorio")
    assert found["total_items"] >= 1
    assert all("dormitorio" in s["name"].casefold() for s in found["contents"])
    organization = found["contents"][0]["organization_id"]
    same = await get(bot, "/services", organization_id=organization)
    assert {s["organization_id"] for s in same["contents"]} == {organization}


async def test_one_service_is_fully_nested(bot):
    await load_example(bot)
    listing = await get(bot, "/services", search="Help Center")
    service = await get(bot, f"/services/{listing['contents'][0]['id']}")
    assert service["organization"]["name"].startswith("Cooperativa sociale La Rete")
    location = service["service_at_locations"][0]["location"]
    assert location["location_type"] == "physical" and location["latitude"] == 45.532408
    assert service["phones"][0]["number"] == "+39 030 000 0001"
    assert {s["opens_at"] for s in service["schedules"]} >= {"09:00:00", "14:00:00"}
    assert service["x_closures"][0]["date"] == "2026-12-25"


async def test_an_unknown_service_and_a_bad_page_are_refused(bot):
    async with client(bot) as http:
        assert (await http.get("/services/nope")).status_code == 404
        assert (await http.get("/services", params={"page": "x"})).status_code == 400


async def test_the_webhook_app_serves_the_api_under_hsds(bot):
    from types import SimpleNamespace

    from bot.webhook import make_asgi_app

    await load_example(bot)
    runtime = SimpleNamespace(settings=bot.settings, sessionmaker=bot.sessionmaker)
    app = make_asgi_app(runtime, "secret")  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
        response = await http.get("/hsds/services")
    assert response.status_code == 200 and response.json()["total_items"] == 18


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_answers_validate_against_the_specifications_own_schemas(bot):
    assert SPEC_DIR
    schema_dir = Path(SPEC_DIR) / "schema"
    openapi = json.loads((schema_dir / "openapi.json").read_text(encoding="utf-8"))
    service_schema = json.loads((schema_dir / "compiled" / "service.json").read_text())
    list_schema = json.loads((schema_dir / "compiled" / "service_list.json").read_text())
    await load_example(bot)
    page = await get(bot, "/services", per_page=100)
    jsonschema.validate(page, openapi["components"]["schemas"]["Page"])
    for item in page["contents"]:
        jsonschema.validate(item, list_schema)
        jsonschema.validate(await get(bot, f"/services/{item['id']}"), service_schema)
    assert set(openapi["paths"]) >= {"/", "/services", "/services/{id}"}


async def test_the_json_export_is_a_page_of_nested_services(bot, tmp_path):
    from models.directory_io import export_directory, write_directory

    await load_example(bot)
    async with bot.session() as session:
        directory = await export_directory(session)
    write_directory(directory, tmp_path / "services.json")
    page = json.loads((tmp_path / "services.json").read_text(encoding="utf-8"))
    jsonschema.validate(page, PAGE)
    assert page["total_items"] == 18 and page["contents"] == await _all_nested(bot)
    if SPEC_DIR:
        schema = Path(SPEC_DIR) / "schema" / "compiled" / "service.json"
        for service in page["contents"]:
            jsonschema.validate(service, json.loads(schema.read_text(encoding="utf-8")))


async def _all_nested(bot) -> list[dict[str, Any]]:
    listing = await get(bot, "/services", per_page=100)
    return [await get(bot, f"/services/{s['id']}") for s in listing["contents"]]


# ---- the taxonomy ----------------------------------------------------------------------------


async def test_the_local_taxonomy_is_served_with_all_its_terms(bot):
    from models.hsds_profile import TAXONOMY_NAME, taxonomy, term_id

    taxonomies = await get(bot, "/taxonomies")
    jsonschema.validate(taxonomies, PAGE_OF_RECORDS)
    [listed] = taxonomies["contents"]
    assert (listed["name"], listed["version"]) == (TAXONOMY_NAME, "1.0.0")
    assert await get(bot, f"/taxonomies/{listed['id']}") == listed
    terms = await get(bot, "/taxonomy_terms", per_page=200)
    published = taxonomy()["taxonomy_terms"]
    assert terms["total_items"] == len(published) and terms["last_page"]
    assert [t["code"] for t in terms["contents"]] == [t["code"] for t in published]
    assert {t["taxonomy_detail"]["id"] for t in terms["contents"]} == {listed["id"]}
    women = await get(bot, f"/taxonomy_terms/{term_id('women_only')}")
    assert (women["code"], women["name"]) == ("women_only", published[11]["name"])


async def test_taxonomy_terms_come_in_pages_and_can_be_searched(bot):
    first = await get(bot, "/taxonomy_terms", per_page=5)
    assert (first["size"], first["first_page"], first["last_page"]) == (5, True, False)
    second = await get(bot, "/taxonomy_terms", per_page=5, page=2)
    assert not {t["id"] for t in first["contents"]} & {t["id"] for t in second["contents"]}
    shelters = await get(bot, "/taxonomy_terms", search="shelter")
    assert "night_shelter" in {t["code"] for t in shelters["contents"]}
    other = await get(bot, "/taxonomy_terms", taxonomy_id="11111111-2222-4333-8444-555555555555")
    assert other["empty"] and other["total_items"] == 0


async def test_an_unknown_taxonomy_or_term_is_a_404(bot):
    async with client(bot) as http:
        assert (await http.get("/taxonomies/nope")).status_code == 404
        assert (await http.get("/taxonomy_terms/nope")).status_code == 404
        assert (await http.get("/taxonomy_terms", params={"per_page": "x"})).status_code == 400


async def test_services_of_a_taxonomy(bot):
    from models.hsds_profile import taxonomy_id

    await load_example(bot)
    ours = await get(bot, "/services", taxonomy_id=taxonomy_id(), per_page=100)
    assert ours["total_items"] == 18  # every example service has its category
    other = await get(bot, "/services", taxonomy_id="11111111-2222-4333-8444-555555555555")
    assert other["total_items"] == 0


PAGE_OF_RECORDS = PAGE | {
    "properties": PAGE["properties"]
    | {"contents": {"type": "array", "items": {"required": ["id", "name", "description"]}}}
}


# ---- the OpenAPI document --------------------------------------------------------------------


def _response_schema(document: dict[str, Any], path: str, status: str = "200") -> dict[str, Any]:
    operation = document["paths"][path]["get"]
    return operation["responses"][status]["content"]["application/json"]["schema"]


def _parameters(document: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    """A path's parameters by name, ``$ref``s to the document's components resolved."""
    found = {}
    item = document["paths"][path]
    for parameter in item.get("parameters", []) + item["get"].get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        found[parameter["name"]] = parameter
    return found


async def test_the_openapi_document_describes_every_route_and_the_profile(bot):
    from starlette.routing import Route

    document = await get(bot, "/openapi.json")
    app = make_hsds_app(bot.sessionmaker)
    routes = {r.path.replace("{path:path}", "{path}") for r in app.routes if isinstance(r, Route)}
    assert set(document["paths"]) == routes
    profile_schema = _response_schema(document, "/profile")
    jsonschema.validate(await get(bot, "/profile"), profile_schema)
    assert "path" in _parameters(document, "/profile/{path}")
    about = _response_schema(document, "/")
    jsonschema.validate(await get(bot, "/"), about)
    jsonschema.validate(await get(bot, "/taxonomies"), _local_schema(document, "/taxonomies"))


def _local_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    """A response schema of the document with its own components (the spec's refs allowed)."""
    schema = dict(_response_schema(document, path))
    schema["allOf"] = [document["components"]["schemas"]["Page"]]
    schema["properties"] = {"contents": {"type": "array"}}
    return schema


def _spec_registry(schema_dir: Path, openapi: dict[str, Any]) -> Any:
    """The spec's schema files at the addresses its openapi.json gives them, and openapi.json."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    base = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
    registry: Registry = Registry()
    for path in [*schema_dir.glob("*.json"), *(schema_dir / "compiled").glob("*.json")]:
        if path.name == "openapi.json":
            continue
        name = path.relative_to(schema_dir).as_posix()
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        registry = registry.with_resource(base + name, resource)
    resource = Resource.from_contents(openapi, default_specification=DRAFT202012)
    return registry.with_resource(OPENAPI_URI, resource)


OPENAPI_URI = "urn:hsds:openapi.json"


def _shape(schema: Any) -> Any:
    """A schema without its descriptions (the words are this API's, the shape the spec's)."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _pointer(path: str) -> str:
    """The JSON pointer of a path's 200 answer in openapi.json."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{escaped}/get/responses/200/content/application~1json/schema"


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_taxonomy_answers_validate_against_the_specifications_openapi(bot):
    from models.hsds_profile import taxonomy_id, term_id

    assert SPEC_DIR
    schema_dir = Path(SPEC_DIR) / "schema"
    openapi = json.loads((schema_dir / "openapi.json").read_text(encoding="utf-8"))
    registry = _spec_registry(schema_dir, openapi)

    def validate(path: str, answer: Any) -> None:
        schema = {"$ref": OPENAPI_URI + _pointer(path)}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(answer)

    await load_example(bot)
    validate("/taxonomies", await get(bot, "/taxonomies"))
    validate("/taxonomies/{id}", await get(bot, f"/taxonomies/{taxonomy_id()}"))
    terms = await get(bot, "/taxonomy_terms", per_page=7)
    validate("/taxonomy_terms", terms)
    assert terms["size"] == 7
    validate("/taxonomy_terms/{id}", await get(bot, f"/taxonomy_terms/{term_id('free')}"))
    validate("/services", await get(bot, "/services", taxonomy_id=taxonomy_id()))
    broken = dict(terms, contents=[{"code": "no id, no name"}])
    with pytest.raises(jsonschema.ValidationError):
        validate("/taxonomy_terms", broken)  # the spec's schemas do bite


@pytest.mark.skipif(not SPEC_DIR, reason="HSDS_SPEC_DIR not set (a specification checkout)")
async def test_the_openapi_document_describes_the_specs_paths_as_the_spec_does(bot):
    """Each of the spec's paths this API serves: the spec's answer schema, and only the
    spec's parameters (those this API honours); the profile's paths are this API's own."""
    assert SPEC_DIR
    openapi = json.loads((Path(SPEC_DIR) / "schema" / "openapi.json").read_text("utf-8"))
    document = await get(bot, "/openapi.json")
    shared = set(document["paths"]) & set(openapi["paths"])
    assert shared == {
        "/",
        "/services",
        "/services/{id}",
        "/taxonomies",
        "/taxonomies/{id}",
        "/taxonomy_terms",
        "/taxonomy_terms/{id}",
    }
    assert set(document["paths"]) - shared == {"/profile", "/profile/{path}", "/openapi.json"}
    for path in shared:
        ours_schema, spec_schema = _response_schema(document, path), _response_schema(openapi, path)
        assert _shape(ours_schema) == _shape(spec_schema), path
        ours, theirs = _parameters(document, path), _parameters(openapi, path)
        assert set(ours) <= set(theirs), path
        for name, parameter in ours.items():
            assert (parameter["in"], parameter["schema"]) == (
                theirs[name]["in"],
                theirs[name]["schema"],
            ), (path, name)
    assert document["components"]["schemas"]["Page"]["properties"].keys() == (
        openapi["components"]["schemas"]["Page"]["properties"].keys()
    )
