"""Writing the directory as an HSDS 3.0 tabular data package (CSV tables + datapackage.json).

Ids are UUIDs, as HSDS requires: a key that already is a UUID (data imported from HSDS) is
kept, any other key (``asilo-corsica``) becomes ``uuid5(NAMESPACE, "<table>/<key>")``, the
same on every export; the key itself travels in the ``x_local_id`` extension column, so that
importing the export again matches the same rows. Times are ``HH:MM:SS`` local times of the
directory's time zone, named in ``datapackage.json`` (HSDS's numeric ``timezone`` column
cannot say "Europe/Rome", whose offset changes with summer time).

The package follows the directory's HSDS profile (:mod:`models.hsds_profile`, a copy is
written beside the tables): category and admission are ``attributes`` of the local taxonomy
(``taxonomies``, ``taxonomy_terms``); tonight's free beds and the beds of a shelter are HSDS
3.1's ``service_capacity`` and ``units``; texts are Italian in the standard fields, the other
languages ``x_translations``; what HSDS has no field for is an ``x_`` column or table,
described in ``datapackage.json`` with the profile's own words.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.hsds import BYDAY, DEFAULT_LANGUAGE, TEXT_COLUMNS
from models.hsds_profile import (
    BED_UNIT,
    FACET_OF_CODE,
    HSDS_30,
    PROFILE_DIR,
    PROFILE_FOLDER,
    SCHEMA_OF_TABLE,
    extension_description,
    hsds_id,
    profile_reference,
    taxonomy,
    term_id,
    terms_by_code,
    terms_of,
)

if TYPE_CHECKING:
    from models.directory_io import BedCount, Directory

__all__ = [
    "IncompletePackageError",
    "hsds_id",
    "hsds_rows",
    "nested_services",
    "write_json",
    "write_package",
]

_STANDARD_TYPES = {
    "latitude": "number",
    "longitude": "number",
    "valid_from": "date",
    "valid_to": "date",
    "opens_at": "time",
    "closes_at": "time",
    "interval": "number",
    "x_beds_total": "integer",
    "available": "number",
    "maximum": "number",
    "updated": "datetime",
    "date": "date",
}
# table -> [(column, required)]; the descriptions of extension columns are the profile's.
COLUMNS: dict[str, list[tuple[str, bool]]] = {
    "organizations": [
        ("id", True),
        ("name", True),
        ("description", True),
        ("email", False),
        ("website", False),
        ("x_local_id", False),
    ],
    "locations": [
        ("id", True),
        ("location_type", True),
        ("name", False),
        ("latitude", False),
        ("longitude", False),
        ("x_local_id", False),
        ("x_address", False),
        ("x_area", False),
    ],
    "services": [
        ("id", True),
        ("organization_id", True),
        ("name", True),
        ("description", False),
        ("url", False),
        ("email", False),
        ("status", True),
        ("application_process", False),
        ("fees_description", False),
        ("eligibility_description", False),
        ("x_local_id", False),
        ("x_language", True),
        ("x_notes", False),
        ("x_beds_total", False),
    ],
    "service_at_location": [("id", True), ("service_id", True), ("location_id", True)],
    "phones": [("id", True), ("organization_id", False), ("service_id", False), ("number", True)],
    "languages": [("id", True), ("service_id", False), ("code", False)],
    "accessibility": [("id", True), ("location_id", False), ("description", False)],
    "addresses": [
        ("id", True),
        ("location_id", False),
        ("address_1", True),
        ("city", True),
        ("state_province", True),
        ("postal_code", True),
        ("country", True),
        ("address_type", True),
    ],
    "schedules": [
        ("id", True),
        ("service_id", False),
        ("freq", False),
        ("byday", False),
        ("opens_at", False),
        ("closes_at", False),
        ("interval", False),
        ("valid_from", False),
        ("valid_to", False),
        ("description", False),
        ("x_season_start", False),
        ("x_season_end", False),
    ],
    "attributes": [
        ("id", True),
        ("link_id", True),
        ("taxonomy_term_id", True),
        ("link_type", False),
        ("link_entity", True),
        ("value", False),
    ],
    "taxonomies": [
        ("id", True),
        ("name", True),
        ("description", True),
        ("uri", False),
        ("version", False),
    ],
    "taxonomy_terms": [
        ("id", True),
        ("code", False),
        ("name", True),
        ("description", True),
        ("taxonomy", False),
        ("language", False),
        ("taxonomy_id", False),
    ],
    "service_capacity": [
        ("id", True),
        ("service_id", True),
        ("unit_id", True),
        ("available", True),
        ("maximum", False),
        ("description", False),
        ("updated", True),
    ],
    "units": [("id", True), ("name", True), ("identifier", False)],
    "x_translations": [
        ("id", True),
        ("service_id", True),
        ("language", True),
        *[(column, False) for column in TEXT_COLUMNS.values()],
    ],
    "x_closures": [("id", True), ("service_id", True), ("date", True), ("note", False)],
    "x_places": [
        ("id", True),
        ("x_local_id", False),
        ("name", True),
        ("aliases", False),
        ("latitude", True),
        ("longitude", True),
    ],
}
EXTENSION_TABLES = ("x_translations", "x_closures", "x_places")
# HSDS 3.1's tables, used ahead: their descriptions (3.1's schema files are not copied here).
HSDS_31_TABLES = {
    "service_capacity": {
        "id": "The identifier of the service_capacity record.",
        "service_id": "The shelter.",
        "unit_id": "The unit counted (units.csv): beds.",
        "available": "Tonight's free beds, as the shelter's staff gave them.",
        "maximum": "The shelter's beds.",
        "description": "What is counted.",
        "updated": "When the staff gave the count (UTC): how old it is.",
    },
    "units": {
        "id": "The identifier of the unit.",
        "name": "The unit's name.",
        "identifier": "The unit's code.",
    },
}
FOREIGN_KEYS = {
    "services": [("organization_id", "organizations")],
    "service_at_location": [("service_id", "services"), ("location_id", "locations")],
    "phones": [("organization_id", "organizations"), ("service_id", "services")],
    "languages": [("service_id", "services")],
    "accessibility": [("location_id", "locations")],
    "addresses": [("location_id", "locations")],
    "schedules": [("service_id", "services")],
    "attributes": [("link_id", "services"), ("taxonomy_term_id", "taxonomy_terms")],
    "taxonomy_terms": [("taxonomy_id", "taxonomies")],
    "service_capacity": [("service_id", "services"), ("unit_id", "units")],
    "x_translations": [("service_id", "services")],
    "x_closures": [("service_id", "services")],
}


class IncompletePackageError(Exception):
    """The directory cannot be written as a valid package; the message says what to do."""


def _with_provider(directory: Directory, provider: str | None) -> Directory:
    """The directory, each service without an organization given ``provider``'s.

    HSDS's tables require every service's ``organization_id`` ("the organization that
    provides this service"); the JSON form does not. No provider is ever made up: without
    ``provider`` (an organization the operator names) such services refuse the package.
    """
    orphans = [s.id for s in directory.services if not s.organization]
    if not orphans:
        return directory
    if provider is None:
        raise IncompletePackageError(
            f"{len(orphans)} services have no organization, and HSDS tables require one "
            f"(organization_id): {', '.join(orphans)}. Give each its organization in the "
            "directory file and import it again, or name the organization that provides "
            "them (--organization ID), or export the JSON form (FILE.json), where HSDS "
            "does not require one."
        )
    if provider not in {o.id for o in directory.organizations}:
        raise IncompletePackageError(f"no organization with id {provider!r} in the directory")
    services = [
        s if s.organization else s.model_copy(update={"organization": provider})
        for s in directory.services
    ]
    return replace(directory, services=services)


def write_package(
    directory: Directory, folder: Path, zone: str, provider: str | None = None
) -> None:
    """The tables, their ``datapackage.json`` and a copy of the profile in ``folder``.

    ``provider``: the organization named for services without one (see :func:`_with_provider`).
    """
    rows = hsds_rows(_with_provider(directory, provider))
    folder.mkdir(parents=True, exist_ok=True)
    for table, columns in COLUMNS.items():
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[c for c, _r in columns], extrasaction="raise")
        writer.writeheader()
        for row in rows[table]:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        (folder / f"{table}.csv").write_text(buffer.getvalue(), encoding="utf-8")
    shutil.copytree(PROFILE_DIR, folder / PROFILE_FOLDER, dirs_exist_ok=True)
    (folder / "datapackage.json").write_text(
        json.dumps(datapackage(zone), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def hsds_rows(directory: Directory) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table, as written to CSV and served by the API."""
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in COLUMNS}
    for org in directory.organizations:
        org_id = hsds_id("organization", org.id)
        rows["organizations"].append(
            {
                "id": org_id,
                "name": org.name,
                # Required by HSDS: the name stands in for a missing description (and is
                # read back as none, see models.hsds).
                "description": org.description or org.name,
                "email": org.email,
                "website": org.url,
                "x_local_id": org.id,
            }
        )
        if org.phone:
            rows["phones"].append(
                {"id": hsds_id("phone", f"organization/{org.id}"), "organization_id": org_id}
                | {"number": org.phone}
            )
    for loc in directory.locations:
        _location_rows(loc, rows)
    for place in directory.places:
        rows["x_places"].append(
            {"id": hsds_id("place", place.id), "x_local_id": place.id}
            | place.model_dump(include={"name", "latitude", "longitude"})
            | {"aliases": "|".join(place.aliases)}
        )
    for service in directory.services:
        _service_rows(service, directory.bed_counts.get(service.id), rows)
    _taxonomy_rows(rows)
    if rows["service_capacity"]:
        rows["units"].append(dict(BED_UNIT))
    return rows


def _location_rows(loc: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    loc_id = hsds_id("location", loc.id)
    rows["locations"].append(
        {
            "id": loc_id,
            "location_type": "physical",
            "name": loc.name,
            "latitude": loc.latitude,
            "longitude": loc.longitude,
            "x_local_id": loc.id,
            "x_address": loc.address,
            "x_area": loc.area,
        }
    )
    parts = (loc.street, loc.city, loc.province, loc.postal_code, loc.country)
    if all(parts):  # HSDS requires every part; else the one-line address says it
        rows["addresses"].append(
            {"id": hsds_id("address", loc.id), "location_id": loc_id}
            | {"address_1": loc.street, "city": loc.city, "state_province": loc.province}
            | {"postal_code": loc.postal_code, "country": loc.country}
            | {"address_type": "physical"}
        )
    if loc.accessibility:
        rows["accessibility"].append(
            {"id": hsds_id("accessibility", loc.id), "location_id": loc_id}
            | {"description": loc.accessibility}
        )


def text_language(service: Any) -> str:
    """The language of a service's standard text fields: Italian whenever its name has it."""
    named = [lang for lang, text in service.name.items() if text]
    return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in named else named[0]


def _service_rows(
    service: Any, beds: BedCount | None, rows: dict[str, list[dict[str, Any]]]
) -> None:
    service_id = hsds_id("service", service.id)
    language = text_language(service)
    row: dict[str, Any] = {
        "id": service_id,
        "organization_id": hsds_id("organization", service.organization)
        if service.organization
        else None,
        "url": service.url,
        "email": service.email,
        "status": "active" if service.active else "inactive",
        "fees_description": service.fee_note,
        "x_local_id": service.id,
        "x_language": language,
        "x_beds_total": service.beds_total,
    }
    translations: dict[str, dict[str, Any]] = {}
    for name, column in TEXT_COLUMNS.items():
        for lang, text in getattr(service, name).items():
            if lang == language:
                row[column] = text
            elif text:
                translations.setdefault(lang, {})[column] = text
    rows["services"].append(row)
    rows["x_translations"].extend(
        {"id": hsds_id("translation", f"{service.id}/{lang}"), "service_id": service_id}
        | {"language": lang}
        | texts
        for lang, texts in translations.items()
    )
    rows["attributes"].extend(_attribute_rows(service, service_id))
    if beds is not None:
        rows["service_capacity"].append(
            {
                "id": hsds_id("service_capacity", service.id),
                "service_id": service_id,
                "unit_id": BED_UNIT["id"],
                "available": beds.free,
                "maximum": service.beds_total,
                "description": "Free beds tonight, as the shelter's staff gave them.",
                "updated": beds.updated.astimezone(UTC).isoformat(timespec="milliseconds"),
            }
        )
    _linked_rows(service, service_id, rows)


def _attribute_rows(service: Any, service_id: str) -> list[dict[str, Any]]:
    """The service's terms of the local taxonomy, as HSDS ``attribute`` records."""
    values = {
        "category": service.category.value if service.category else None,
        "admits": service.admits.value,
        "referral_required": service.referral_required,
        "documents_required": service.documents_required,
        "pets_allowed": service.pets_allowed,
        "fee": service.fee.value,
    }
    return [
        {
            "id": hsds_id("attribute", f"{service.id}/{code}"),
            "link_id": service_id,
            "taxonomy_term_id": term_id(code),
            "link_type": FACET_OF_CODE[code].link_type,
            "link_entity": "service",
            "value": None,
        }
        for code in terms_of(values)
    ]


def _linked_rows(service: Any, service_id: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    if service.location:
        rows["service_at_location"].append(
            {
                "id": hsds_id("service_at_location", service.id),
                "service_id": service_id,
                "location_id": hsds_id("location", service.location),
            }
        )
    if service.phone:
        rows["phones"].append(
            {"id": hsds_id("phone", f"service/{service.id}"), "service_id": service_id}
            | {"number": service.phone}
        )
    for code in service.languages:
        rows["languages"].append(
            {"id": hsds_id("language", f"{service.id}/{code}"), "service_id": service_id}
            | {"code": code}
        )
    rows["schedules"].extend(_schedule_rows(service.id, service_id, service.slots()))
    rows["x_closures"].extend(
        {
            "id": hsds_id("closure", f"{service.id}/{c.date.isoformat()}"),
            "service_id": service_id,
            "date": c.date.isoformat(),
            "note": c.note,
        }
        for c in service.closures
    )


def _taxonomy_rows(rows: dict[str, list[dict[str, Any]]]) -> None:
    """The taxonomy and the terms the attributes use (HSDS: no unused terms in a package)."""
    used = {row["taxonomy_term_id"] for row in rows["attributes"]}
    if not used:
        return
    rows["taxonomies"].append(dict(taxonomy()["taxonomy"]))
    rows["taxonomy_terms"].extend(
        {column: term.get(column) for column, _r in COLUMNS["taxonomy_terms"]}
        for term in terms_by_code().values()
        if term["id"] in used
    )


def _schedule_rows(key: str, service_id: str, slots: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for n, slot in enumerate(slots, start=1):
        out.append(
            {
                "id": hsds_id("schedule", f"{key}/{n}"),
                "service_id": service_id,
                "valid_from": slot.valid_from.isoformat() if slot.valid_from else None,
                "valid_to": slot.valid_to.isoformat() if slot.valid_to else None,
                "freq": "WEEKLY",
                "interval": 1,
                "byday": BYDAY[slot.weekday],
                "opens_at": f"{slot.opens:%H:%M:%S}",
                "closes_at": f"{slot.closes:%H:%M:%S}",
                "description": "local time"
                + (" (closes the next day)" if slot.closes <= slot.opens else ""),
                "x_season_start": str(slot.season.start) if slot.season else None,
                "x_season_end": str(slot.season.end) if slot.season else None,
            }
        )
    return out


def _field(table: str, column: str, required: bool) -> dict[str, Any]:
    """A Table Schema field; an extension is marked and described in the profile's words."""
    field: dict[str, Any] = {"name": column, "type": _STANDARD_TYPES.get(column, "string")}
    if field["type"] == "datetime":
        field["format"] = "any"  # ISO 8601 with milliseconds, as HSDS 3.1 asks
    if required:
        field["constraints"] = {"required": True}
    if table in HSDS_31_TABLES:
        field["description"] = HSDS_31_TABLES[table][column]
        return field
    description = extension_description(table, column)
    if table in EXTENSION_TABLES or column.startswith("x_"):
        if description is None:
            raise LookupError(f"{table}.{column}: an extension the profile does not describe")
        field["description"] = description
        field["x_extension"] = True
    return field


def datapackage(zone: str) -> dict[str, Any]:
    """The Frictionless tabular data package descriptor, extensions described."""
    resources = []
    for table, columns in COLUMNS.items():
        schema: dict[str, Any] = {
            "fields": [_field(table, column, required) for column, required in columns],
            "primaryKey": ["id"],
            "foreignKeys": [
                {
                    "fields": [column],
                    "reference": {"resource": SCHEMA_OF_TABLE[target], "fields": ["id"]},
                }
                for column, target in FOREIGN_KEYS.get(table, [])
            ],
        }
        resource: dict[str, Any] = {
            # The spec's datapackage.json's own name (``service``) and path (``services.csv``).
            "name": SCHEMA_OF_TABLE[table],
            "path": f"{table}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": schema,
        }
        if table in EXTENSION_TABLES:
            resource["x_extension"] = True
        if table in HSDS_31_TABLES:
            resource |= {"x_extension": True, "x_hsds_version": "3.1"}
        resources.append(resource)
    return {
        "name": "helpcenter-directory",
        # Frictionless's own key: the descriptor's shape. The HSDS profile is x_hsds_profile.
        "profile": "tabular-data-package",
        "title": "Help Center directory of low-threshold services (HSDS 3.0)",
        "description": (
            f"Open Referral HSDS 3.0 ({HSDS_30}) in the profile x_hsds_profile (a copy is in "
            f"{PROFILE_FOLDER}/). opens_at and closes_at are local times in {zone}; a closing "
            "time not after the opening time is on the next day. Texts are in the language of "
            "x_language (Italian whenever there is Italian), the others in x_translations."
        ),
        "x_hsds_version": "3.0",
        "x_hsds_profile": profile_reference() | {"path": f"{PROFILE_FOLDER}/profile.json"},
        "x_timezone": zone,
        "resources": resources,
    }


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON object: no empty values."""
    return {key: value for key, value in row.items() if value is not None and value != ""}


def nested_services(tables: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each service with everything linked to it, nested as ``compiled/service.json`` says."""
    organizations = {o["id"]: _clean(o) for o in tables["organizations"]}
    for phone in tables["phones"]:
        organization = organizations.get(phone.get("organization_id") or "")
        if organization is not None:
            organization.setdefault("phones", []).append(_clean(phone))
    locations = {loc["id"]: _clean(loc) for loc in tables["locations"]}
    for table in ("accessibility", "addresses"):
        for row in tables[table]:
            location = locations.get(row["location_id"])
            if location is not None:
                location.setdefault(table, []).append(_clean(row))
    taxonomies = {t["id"]: _clean(t) for t in tables["taxonomies"]}
    terms = {
        t["id"]: _clean(t) | {"taxonomy_detail": taxonomies[t["taxonomy_id"]]}
        for t in tables["taxonomy_terms"]
    }
    units = {u["id"]: _clean(u) for u in tables["units"]}

    def of(table: str, service_id: str) -> list[dict[str, Any]]:
        return [_clean(r) for r in tables[table] if r.get("service_id") == service_id]

    services = []
    for row in tables["services"]:
        service = _clean(row)
        service["organization"] = organizations.get(row["organization_id"])
        service["service_at_locations"] = [
            link | {"location": locations.get(link["location_id"])}
            for link in of("service_at_location", row["id"])
        ]
        for table in ("phones", "languages", "schedules", "x_translations", "x_closures"):
            service[table] = of(table, row["id"])
        service["attributes"] = [
            _clean(a) | {"taxonomy_term": terms[a["taxonomy_term_id"]]}
            for a in tables["attributes"]
            if a["link_id"] == row["id"]
        ]
        service["capacities"] = [
            capacity | {"unit": units[capacity["unit_id"]]}
            for capacity in of("service_capacity", row["id"])
        ]
        services.append({k: v for k, v in service.items() if v is not None})
    return services


def write_json(directory: Directory, path: Path) -> None:
    """The JSON form: a ``Page`` (openapi.json) of fully nested services (service.json)."""
    services = nested_services(hsds_rows(directory))
    page = {
        "total_items": len(services),
        "total_pages": 1,
        "page_number": 1,
        "size": len(services),
        "first_page": True,
        "last_page": True,
        "empty": not services,
        "contents": services,
    }
    path.write_text(json.dumps(page, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
