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
    assert about["openapi_url"].endswith("/schema/openapi.json")


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
