"""Writing the directory as an HSDS 3.0 tabular data package (CSV tables + datapackage.json).

Ids are UUIDs, as HSDS requires: a key that already is a UUID (data imported from HSDS) is
kept, any other key (``asilo-corsica``) becomes ``uuid5(NAMESPACE, "<table>/<key>")``, the
same on every export; the key itself travels in the ``local_id`` extension column, so that
importing the export again matches the same rows. Times are ``HH:MM:SS`` local times of the
directory's time zone, named in ``datapackage.json`` (HSDS's numeric ``timezone`` column
cannot say "Europe/Rome", whose offset changes with summer time).

What HSDS has no field for is written as documented extension columns and tables, described
in the ``datapackage.json`` beside the tables (``x_extensions``): category, admission,
referral, documents, pets, fee, beds, notes, translations, seasons, closures, landmarks.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.hsds import BYDAY, DEFAULT_LANGUAGE, TEXT_COLUMNS

if TYPE_CHECKING:
    from models.directory_io import Directory

NAMESPACE = uuid.UUID("5b0e6f1c-2a0d-5d8e-9a57-8c2f3b1d4e60")
PROFILE = "https://github.com/openreferral/specification/tree/3.0"

# (table, column) -> (type, required, description of an extension or "" for HSDS's own).
_STANDARD_TYPES = {
    "latitude": "number",
    "longitude": "number",
    "valid_from": "date",
    "valid_to": "date",
    "opens_at": "time",
    "closes_at": "time",
    "interval": "number",
}
COLUMNS: dict[str, list[tuple[str, bool, str]]] = {
    "organizations": [
        ("id", True, ""),
        ("name", True, ""),
        ("description", True, ""),
        ("email", False, ""),
        ("website", False, ""),
        ("local_id", False, "The directory's own key of the row (stable across exports)."),
    ],
    "locations": [
        ("id", True, ""),
        ("location_type", True, ""),
        ("name", False, ""),
        ("latitude", False, ""),
        ("longitude", False, ""),
        ("local_id", False, "The directory's own key of the row."),
        ("address", False, "The address as one line of text, as shown to people."),
        ("area", False, "The part of town, for listing services by area."),
    ],
    "services": [
        ("id", True, ""),
        ("organization_id", True, ""),
        ("name", True, ""),
        ("description", False, ""),
        ("url", False, ""),
        ("email", False, ""),
        ("status", True, ""),
        ("application_process", False, ""),
        ("fees_description", False, ""),
        ("eligibility_description", False, ""),
        ("local_id", False, "The directory's own key of the row."),
        ("category", False, "One code of the local category taxonomy (see x_taxonomies)."),
        ("admits", False, "Who is admitted: all, men or women."),
        ("referral_required", False, "yes/no: a referral by the social services is needed."),
        ("documents_required", False, "yes/no: identity documents are needed."),
        ("pets_allowed", False, "yes/no/empty (unknown): pets are accepted."),
        ("fee", False, "free or small_fee; fees_description says how much."),
        ("beds_total", False, "Beds of a shelter (HSDS 3.1 service_capacity)."),
        ("notes", False, "Operators' notes of the day, in Italian."),
    ],
    "service_at_location": [
        ("id", True, ""),
        ("service_id", True, ""),
        ("location_id", True, ""),
    ],
    "phones": [
        ("id", True, ""),
        ("organization_id", False, ""),
        ("service_id", False, ""),
        ("number", True, ""),
    ],
    "languages": [("id", True, ""), ("service_id", False, ""), ("code", False, "")],
    "accessibility": [("id", True, ""), ("location_id", False, ""), ("description", False, "")],
    "addresses": [
        ("id", True, ""),
        ("location_id", False, ""),
        ("address_1", True, ""),
        ("city", True, ""),
        ("state_province", True, ""),
        ("postal_code", True, ""),
        ("country", True, ""),
        ("address_type", True, ""),
    ],
    "schedules": [
        ("id", True, ""),
        ("service_id", False, ""),
        ("freq", False, ""),
        ("byday", False, ""),
        ("opens_at", False, ""),
        ("closes_at", False, ""),
        ("interval", False, ""),
        ("valid_from", False, ""),
        ("valid_to", False, ""),
        ("description", False, ""),
        ("season_start", False, "MM-DD: first day of a season repeating every year."),
        ("season_end", False, "MM-DD: last day of the yearly season (may wrap over New Year)."),
    ],
    "closures": [
        ("service_id", True, "Extension table: a date on which the service does not open."),
        ("date", True, "The date (YYYY-MM-DD)."),
        ("note", False, "Why (holiday, strike)."),
    ],
    "places": [
        ("id", True, "Extension table: landmarks a person may type instead of a location."),
        ("name", True, "The landmark's name."),
        ("aliases", False, "Other names, separated by |."),
        ("latitude", True, "Latitude (WGS 84)."),
        ("longitude", True, "Longitude (WGS 84)."),
    ],
}
EXTENSION_TABLES = ("closures", "places")
FOREIGN_KEYS = {
    "services": [("organization_id", "organizations")],
    "service_at_location": [("service_id", "services"), ("location_id", "locations")],
    "phones": [("organization_id", "organizations"), ("service_id", "services")],
    "languages": [("service_id", "services")],
    "accessibility": [("location_id", "locations")],
    "addresses": [("location_id", "locations")],
    "schedules": [("service_id", "services")],
    "closures": [("service_id", "services")],
}


def hsds_id(table: str, key: str) -> str:
    """The row's UUID: its key if that already is one, else a uuid5 stable across exports."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, f"{table}/{key}"))


def _translations(directory: Directory) -> list[str]:
    """Languages other than Italian, in order of first appearance (for a stable header)."""
    return [
        lang
        for lang in dict.fromkeys(
            lang for s in directory.services for name in TEXT_COLUMNS for lang in getattr(s, name)
        )
        if lang != DEFAULT_LANGUAGE
    ]


def _yes(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


def write_package(directory: Directory, folder: Path, zone: str) -> None:
    """The tables and their ``datapackage.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    languages = _translations(directory)
    columns = {table: [c for c, _r, _d in cols] for table, cols in COLUMNS.items()}
    columns["services"] += [
        f"{TEXT_COLUMNS[name]}_{lang}" for name in TEXT_COLUMNS for lang in languages
    ]
    rows = hsds_rows(directory)
    for table, header in columns.items():
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="raise")
        writer.writeheader()
        for row in rows[table]:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        (folder / f"{table}.csv").write_text(buffer.getvalue(), encoding="utf-8")
    descriptor = datapackage(columns, zone)
    (folder / "datapackage.json").write_text(
        json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
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
                "local_id": org.id,
            }
        )
        if org.phone:
            rows["phones"].append(
                {"id": hsds_id("phone", f"organization/{org.id}"), "organization_id": org_id}
                | {"number": org.phone}
            )
    for loc in directory.locations:
        loc_id = hsds_id("location", loc.id)
        rows["locations"].append(
            {
                "id": loc_id,
                "location_type": "physical",
                "name": loc.name,
                "latitude": loc.latitude,
                "longitude": loc.longitude,
                "local_id": loc.id,
                "address": loc.address,
                "area": loc.area,
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
    for place in directory.places:
        rows["places"].append(
            place.model_dump(include={"id", "name", "latitude", "longitude"})
            | {"aliases": "|".join(place.aliases)}
        )
    for service in directory.services:
        _service_rows(service, rows)
    return rows


def _service_rows(service: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    service_id = hsds_id("service", service.id)
    row: dict[str, Any] = {
        "id": service_id,
        "organization_id": hsds_id("organization", service.organization)
        if service.organization
        else None,
        "url": service.url,
        "email": service.email,
        "status": "active" if service.active else "inactive",
        "fees_description": service.fee_note,
        "local_id": service.id,
        "category": service.category.value if service.category else None,
        "admits": service.admits.value,
        "referral_required": _yes(service.referral_required),
        "documents_required": _yes(service.documents_required),
        "pets_allowed": _yes(service.pets_allowed),
        "fee": service.fee.value,
        "beds_total": service.beds_total,
    }
    for name, column in TEXT_COLUMNS.items():
        for lang, text in getattr(service, name).items():
            row[column if lang == DEFAULT_LANGUAGE else f"{column}_{lang}"] = text
    if not row.get("name"):  # HSDS requires a name; the Italian one, else the first given
        row["name"] = next(iter(service.name.values()))
    rows["services"].append(row)
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
    rows["closures"].extend(
        {"service_id": service_id, "date": c.date.isoformat(), "note": c.note}
        for c in service.closures
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
                "season_start": str(slot.season.start) if slot.season else None,
                "season_end": str(slot.season.end) if slot.season else None,
            }
        )
    return out


def datapackage(columns: dict[str, list[str]], zone: str) -> dict[str, Any]:
    """The Frictionless tabular data package descriptor, extensions described."""
    described = {t: {c: (r, d) for c, r, d in cols} for t, cols in COLUMNS.items()}
    resources = []
    for table, header in columns.items():
        fields = []
        for column in header:
            required, note = described[table].get(column, (False, "Translation (extension)."))
            field: dict[str, Any] = {
                "name": column,
                "type": _STANDARD_TYPES.get(column, "string"),
            }
            if column == "beds_total":
                field["type"] = "integer"
            if required:
                field["constraints"] = {"required": True}
            if note:
                field["description"] = note
                field["x_extension"] = True
            fields.append(field)
        schema: dict[str, Any] = {"fields": fields}
        if "id" in header:
            schema["primaryKey"] = ["id"]
        schema["foreignKeys"] = [
            {"fields": [column], "reference": {"resource": target, "fields": ["id"]}}
            for column, target in FOREIGN_KEYS.get(table, [])
        ]
        resources.append(
            {
                "name": table,
                "path": f"{table}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schema,
                **({"x_extension": True} if table in EXTENSION_TABLES else {}),
            }
        )
    return {
        "name": "helpcenter-directory",
        "profile": "tabular-data-package",
        "title": "Help Center directory of low-threshold services (HSDS 3.0)",
        "x_hsds_version": "3.0",
        "x_hsds_profile": PROFILE,
        "x_timezone": zone,
        "x_notes": [
            f"opens_at and closes_at are local times in {zone}; a closing time not after the "
            "opening time is on the next day.",
            "season_start/season_end (MM-DD) repeat every year: an extension of schedules.",
            "Texts without a language suffix are Italian; name_fr and the like are "
            "translations (extension columns).",
            "closures.csv and places.csv are extension tables.",
        ],
        "resources": resources,
    }


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON object: no empty values, numbers as numbers."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        out[key] = value
    return out


def nested_services(tables: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each service with its organization, locations, phones, languages and schedules."""
    organizations = {o["id"]: _clean(o) for o in tables["organizations"]}
    locations = {loc["id"]: _clean(loc) for loc in tables["locations"]}
    for access in tables["accessibility"]:
        location = locations.get(access["location_id"])
        if location is not None:
            location.setdefault("accessibility", []).append(_clean(access))

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
        service["phones"] = of("phones", row["id"])
        service["languages"] = of("languages", row["id"])
        service["schedules"] = of("schedules", row["id"])
        service["x_closures"] = [
            {"date": c["date"], **({"note": c["note"]} if c.get("note") else {})}
            for c in of("closures", row["id"])
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
