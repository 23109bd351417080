"""The HSDS 3.0 API, read-only: ``GET /``, ``GET /services``, ``GET /services/{id}``.

The three endpoints HSDS 3.0 requires of an HSDS API, answering in the shapes of the spec's
``openapi.json``: a ``Page`` of services (one-to-one fields, or nested with ``full=true``) and
one fully nested service (``compiled/service.json``). The ids, fields and extensions are the
tabular export's (:mod:`models.hsds_export`), so the CSV package and the API always agree.

The directory's HSDS profile is served at ``/profile`` (its description, ``profile.json``)
and ``/profile/{file}`` (the schema patches and the local taxonomy): ``GET /`` names it, as
the spec asks of a profile's publication. Only the public directory is served: services and
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
from models.hsds_profile import PROFILE_DIR, profile

OPENAPI_URL = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/openapi.json"
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
    term = query.get("taxonomy_term_id")  # a term's id, or its code (night_shelter)
    return not term or any(
        term in (a["taxonomy_term"]["id"], a["taxonomy_term"].get("code"))
        for a in service.get("attributes", [])
    )


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
                "openapi_url": OPENAPI_URL,
            }
        )

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
        page = _int(request, "page", 1, 1, 1_000_000)
        per_page = _int(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        if page is None or per_page is None:
            return JSONResponse({"error": "page and per_page are whole numbers"}, 400)
        full = request.query_params.get("full", "").lower() == "true"
        minimal = request.query_params.get("minimal", "").lower() == "true"
        found = [s for s in await services_now() if _matches(s, request)]
        if minimal:
            found = [{"id": s["id"]} for s in found]
        elif not full:
            found = [{k: s[k] for k in ONE_TO_ONE if k in s} for s in found]
        return JSONResponse(_page(found, page, per_page))

    async def one_service(request: Request) -> Response:
        wanted = request.path_params["id"]
        for service in await services_now():
            if service["id"] == wanted:
                return JSONResponse(service)
        return JSONResponse({"error": "no service with this id"}, 404)

    return Starlette(
        routes=[
            Route("/", about, methods=["GET"]),
            Route("/services", list_services, methods=["GET"]),
            Route("/services/{id}", one_service, methods=["GET"]),
            Route("/profile", profile_description, methods=["GET"], name="profile"),
            Route("/profile/{path:path}", profile_file, methods=["GET"]),
        ]
    )
