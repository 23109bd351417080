"""The HSDS 3.0 API, read-only: services and the taxonomy, the shapes of the spec's openapi.json.

The three endpoints HSDS 3.0 requires of an HSDS API, ``GET /``, ``GET /services`` (a
``Page`` of services: one-to-one fields, or nested with ``full=true``) and
``GET /services/{id}`` (fully nested, ``compiled/service.json``), and the taxonomy's:
``GET /taxonomies``, ``/taxonomies/{id}``, ``/taxonomy_terms``, ``/taxonomy_terms/{id}``
(the local taxonomy published with the profile, every term of it). The ids, fields and
extensions are the tabular export's (:mod:`models.hsds_export`), so the CSV package and the
API always agree.

The directory's HSDS profile is served at ``/profile`` (its description, ``profile.json``)
and ``/profile/{file}`` (the schema patches and the local taxonomy): ``GET /`` names it, as
the spec asks of a profile's publication. ``GET /openapi.json`` is the OpenAPI document of
this API (``openapi_url``): the spec's own paths this API serves, with the spec's schemas,
and the profile's. Only the public directory is served: services and
the free beds each shelter's staff gave, with the time they gave them (``capacities``, as the
bot shows them); never staff or anything about people. It is mounted at ``/hsds`` on the
webhook app, and runs alone with ``helpcenter api``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from models.directory_io import export_directory
from models.hsds_export import hsds_rows, nested_services
from models.hsds_profile import PROFILE_DIR, profile, taxonomy

SCHEMAS = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
PER_PAGE = 50
MAX_PER_PAGE = 200
ONE_TO_ONE = (
    "id",
    "organization_id",
    "name",
    "description",
    "url",
    "email",
    "status",
    "application_process",
    "fees_description",
    "eligibility_description",
)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        return None
    return min(max(int(text), low), high)


def _matches(service: dict[str, Any], request: Request) -> bool:
    query = request.query_params
    search = (query.get("search") or "").casefold()
    if search and not any(
        search in str(service.get(f, "")).casefold() for f in ("name", "description")
    ):
        return False
    if query.get("organization_id") and service.get("organization_id") != query["organization_id"]:
        return False
    terms = [a["taxonomy_term"] for a in service.get("attributes", [])]
    if query.get("taxonomy_id") and not any(
        t.get("taxonomy_id") == query["taxonomy_id"] for t in terms
    ):
        return False
    term = query.get("taxonomy_term_id")  # a term's id, or its code (night_shelter)
    return not term or any(term in (t["id"], t.get("code")) for t in terms)


def _taxonomy_terms() -> list[dict[str, Any]]:
    """Every term of the local taxonomy, each with its ``taxonomy_detail`` (as in services)."""
    detail = dict(taxonomy()["taxonomy"])
    return [dict(term) | {"taxonomy_detail": detail} for term in taxonomy()["taxonomy_terms"]]


def _term_matches(term: dict[str, Any], request: Request) -> bool:
    query = request.query_params
    search = (query.get("search") or "").casefold()
    if search and not any(
        search in str(term.get(f, "")).casefold() for f in ("name", "description", "code")
    ):
        return False
    if query.get("taxonomy_id") and term.get("taxonomy_id") != query["taxonomy_id"]:
        return False
    # The local taxonomy is flat: no term has a parent (top_only changes nothing).
    return not query.get("parent_id") or term.get("parent_id") == query["parent_id"]


def _searched(record: dict[str, Any], request: Request) -> bool:
    search = (request.query_params.get("search") or "").casefold()
    return not search or any(
        search in str(record.get(f, "")).casefold() for f in ("name", "description")
    )


def _paging(request: Request) -> tuple[int, int] | None:
    """(page, per_page) of the query, None if either is not a whole number."""
    page = _int(request, "page", 1, 1, 1_000_000)
    per_page = _int(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    return None if page is None or per_page is None else (page, per_page)


def _page(items: list[dict[str, Any]], page: int, per_page: int) -> dict[str, Any]:
    total_pages = max(1, -(-len(items) // per_page))
    contents = items[(page - 1) * per_page : page * per_page]
    return {
        "total_items": len(items),
        "total_pages": total_pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= total_pages,
        "empty": not contents,
        "contents": contents,
    }


def make_hsds_app(sessionmaker: async_sessionmaker[AsyncSession]) -> Starlette:
    async def services_now() -> list[dict[str, Any]]:
        async with sessionmaker() as session:
            directory = await export_directory(session)
        return nested_services(hsds_rows(directory))

    async def about(request: Request) -> Response:
        return JSONResponse(
            {
                "version": "3.0",
                "profile": str(request.url_for("profile")),
                "openapi_url": str(request.url_for("openapi")),
            }
        )

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(str(request.url_for("about")).rstrip("/")))

    async def profile_description(_request: Request) -> Response:
        return JSONResponse(profile())

    async def profile_file(request: Request) -> Response:
        """One file of the profile: ``taxonomy.json`` or ``profile/service.json`` and the like."""
        wanted = request.path_params["path"]
        files = {path: PROFILE_DIR / path for path in profile()["files"]}
        if wanted not in files:
            return JSONResponse({"error": "no such file in the profile"}, 404)
        return FileResponse(files[wanted], media_type="application/json")

    async def list_services(request: Request) -> Response:
        paging = _paging(request)
        if paging is None:
            return JSONResponse({"error": "page and per_page are whole numbers"}, 400)
        full = request.query_params.get("full", "").lower() == "true"
        minimal = request.query_params.get("minimal", "").lower() == "true"
        found = [s for s in await services_now() if _matches(s, request)]
        if minimal:
            found = [{"id": s["id"]} for s in found]
        elif not full:
            found = [{k: s[k] for k in ONE_TO_ONE if k in s} for s in found]
        return JSONResponse(_page(found, *paging))

    async def one_service(request: Request) -> Response:
        wanted = request.path_params["id"]
        for service in await services_now():
            if service["id"] == wanted:
                return JSONResponse(service)
        return JSONResponse({"error": "no service with this id"}, 404)

    async def list_taxonomies(request: Request) -> Response:
        paging = _paging(request)
        if paging is None:
            return JSONResponse({"error": "page and per_page are whole numbers"}, 400)
        found = [t for t in [dict(taxonomy()["taxonomy"])] if _searched(t, request)]
        return JSONResponse(_page(found, *paging))

    async def one_taxonomy(request: Request) -> Response:
        if request.path_params["id"] != taxonomy()["taxonomy"]["id"]:
            return JSONResponse({"error": "no taxonomy with this id"}, 404)
        return JSONResponse(taxonomy()["taxonomy"])

    async def list_terms(request: Request) -> Response:
        paging = _paging(request)
        if paging is None:
            return JSONResponse({"error": "page and per_page are whole numbers"}, 400)
        found = [t for t in _taxonomy_terms() if _term_matches(t, request)]
        return JSONResponse(_page(found, *paging))

    async def one_term(request: Request) -> Response:
        for term in _taxonomy_terms():
            if term["id"] == request.path_params["id"]:
                return JSONResponse(term)
        return JSONResponse({"error": "no taxonomy term with this id"}, 404)

    return Starlette(
        routes=[
            Route("/", about, methods=["GET"], name="about"),
            Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
            Route("/services", list_services, methods=["GET"]),
            Route("/services/{id}", one_service, methods=["GET"]),
            Route("/taxonomies", list_taxonomies, methods=["GET"]),
            Route("/taxonomies/{id}", one_taxonomy, methods=["GET"]),
            Route("/taxonomy_terms", list_terms, methods=["GET"]),
            Route("/taxonomy_terms/{id}", one_term, methods=["GET"]),
            Route("/profile", profile_description, methods=["GET"], name="profile"),
            Route("/profile/{path:path}", profile_file, methods=["GET"]),
        ]
    )


# ---- the OpenAPI document of this API (openapi_url) -------------------------------------------

API_VERSION = "1.0.0"  # of this document; HSDS's version is 3.0, the profile's its own
PAGING = ["search", "page", "per_page"]
_PAGE = {
    "type": "object",
    "properties": {
        "total_items": {"type": "integer", "description": "How many records match."},
        "total_pages": {"type": "integer", "description": "How many pages they make."},
        "page_number": {"type": "integer", "description": "This page's number (from 1)."},
        "size": {"type": "integer", "description": "How many records are in this page."},
        "first_page": {"type": "boolean", "description": "This is the first page."},
        "last_page": {"type": "boolean", "description": "This is the last page."},
        "empty": {"type": "boolean", "description": "This page has no records."},
    },
}
_PARAMETERS = {
    "search": ("Records whose name or description contains this text.", "string"),
    "page": ("The page wanted (1 unless given).", "integer"),
    "per_page": (f"Records in a page ({PER_PAGE} unless given, up to {MAX_PER_PAGE}).", "integer"),
    "taxonomy_term_id": (
        "Services with this taxonomy term: its id, or its code in the local taxonomy "
        "(night_shelter, women_only...).",
        "string",
    ),
    "taxonomy_id": ("Only what belongs to (or has a term of) this taxonomy.", "string"),
    "organization_id": ("Services this organization provides.", "string"),
    "minimal": ("true: each service's id only.", "boolean"),
    "full": ("true: fully nested services (compiled/service.json).", "boolean"),
}
_PROFILE_SCHEMA = {
    "type": "object",
    "description": "profile.json: the HSDS profile this API follows, and its files.",
    "required": ["name", "version", "hsds_version", "files"],
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "version": {"type": "string"},
        "hsds_version": {"type": "string"},
        "based_on": {"type": "string", "format": "uri"},
        "description": {"type": "array", "items": {"type": "string"}},
        "conventions": {"type": "object", "additionalProperties": {"type": "string"}},
        "files": {
            "type": "object",
            "description": "Each file of the profile (GET /profile/{path}) and what it is.",
            "additionalProperties": {"type": "string"},
        },
        "capacity_schema": {"type": "string", "format": "uri"},
    },
}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page_of(schema_file: str) -> dict[str, Any]:
    """The spec's own shape of a paginated answer: a ``Page`` of ``schema_file`` records."""
    return {
        "properties": {"contents": {"type": "array", "items": {"$ref": SCHEMAS + schema_file}}},
        "allOf": [{"$ref": "#/components/schemas/Page"}],
    }


def _listing(what: str, schema_file: str, parameters: list[str]) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"Paginated listing of {what}.",
            "operationId": f"list_{what.replace(' ', '_')}",
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in parameters],
            "responses": {
                "200": _ok(f"A page of {what}.", _page_of(schema_file)),
                "400": {"description": "page or per_page is not a whole number."},
            },
        }
    }


def _one(what: str, schema_file: str) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "in": "path",
                "name": "id",
                "required": True,
                "description": f"The id of the {what}.",
                "schema": {"type": "string"},
            }
        ],
        "get": {
            "summary": f"Full information on a {what}.",
            "operationId": f"get_{what.replace(' ', '_')}",
            "responses": {
                "200": _ok(f"The {what}.", {"$ref": SCHEMAS + schema_file}),
                "404": {"description": f"No {what} with this id."},
            },
        },
    }


def openapi_document(server: str) -> dict[str, Any]:
    """This API as OpenAPI 3.1: the spec's paths it serves, with the spec's schemas, and the
    profile's. ``server`` is the API's base URL (``https://example.org/hsds``)."""
    about_schema = {
        "type": "object",
        "properties": {
            "version": {"type": "string", "description": "HSDS version of this API."},
            "profile": {
                "type": "string",
                "format": "uri",
                "description": "URL of the HSDS profile of this API (GET /profile).",
            },
            "openapi_url": {
                "type": "string",
                "format": "uri",
                "description": "URL of this document.",
            },
        },
    }
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "This API and its relationship with HSDS.",
                "operationId": "about",
                "responses": {"200": _ok("HSDS version, profile, this document.", about_schema)},
            }
        },
        "/services": _listing(
            "services",
            "compiled/service_list.json",
            [*PAGING, "taxonomy_term_id", "taxonomy_id", "organization_id", "minimal", "full"],
        ),
        "/services/{id}": _one("service", "compiled/service.json"),
        "/taxonomies": _listing("taxonomies", "taxonomy.json", PAGING),
        "/taxonomies/{id}": _one("taxonomy", "taxonomy.json"),
        "/taxonomy_terms": _listing(
            "taxonomy terms", "taxonomy_term.json", [*PAGING, "taxonomy_id"]
        ),
        "/taxonomy_terms/{id}": _one("taxonomy term", "taxonomy_term.json"),
        "/profile": {
            "get": {
                "summary": "The HSDS profile of this API (profile.json).",
                "operationId": "get_profile",
                "responses": {"200": _ok("The profile's description.", _PROFILE_SCHEMA)},
            }
        },
        "/profile/{path}": {
            "parameters": [
                {
                    "in": "path",
                    "name": "path",
                    "required": True,
                    "description": "A file named in the profile's files: taxonomy.json, "
                    "profile/service.json...",
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "summary": "One file of the profile.",
                "operationId": "get_profile_file",
                "responses": {
                    "200": _ok(
                        "A JSON Merge Patch of the spec's schema file of the same name, a new "
                        "object's JSON Schema, or the local taxonomy (taxonomy.json).",
                        {"type": "object"},
                    ),
                    "404": {"description": "No such file in the profile."},
                },
            },
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "operationId": "get_openapi",
                "responses": {"200": _ok("The OpenAPI document of this API.", {"type": "object"})},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Help Center directory of low-threshold services: HSDS 3.0 API",
            "version": API_VERSION,
            "summary": "Read-only Open Referral HSDS 3.0 API of the directory, in the profile "
            f"{profile()['name']} {profile()['version']}.",
            "description": "The public directory: services, their places, hours, phones, "
            "the local taxonomy's terms and tonight's free beds with the time each count was "
            "given. Never anything about the people who use the services.",
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": {"Page": _PAGE},
            "parameters": {
                name: {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": description,
                    "schema": {"type": kind},
                }
                for name, (description, kind) in _PARAMETERS.items()
            },
        },
    }
