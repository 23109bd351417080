"""The HSDS 3.0 profile this directory publishes: its local taxonomy and its extension fields.

HSDS lets a publisher add what it has no field for as documented properties, and a *profile*
(the spec's ``docs/hsds/profiles.md``) is the formal way: files named like the spec's schema
files, each a JSON Merge Patch (RFC 7386) onto it, plus new objects. Ours is in
``config/hsds-profile``: ``profile.json`` describes it, ``profile/*.json`` are the patches and
the new objects, ``taxonomy.json`` is the local taxonomy. The export describes each extension
column with the profile's own words (:func:`extension_description`), so the two cannot drift.

What the directory says about a service that HSDS 3.0 classifies with ``attribute`` records
(its category; who is admitted; referral, documents, dogs; the fee) is written as attributes
linking the service to a term of the local taxonomy, and read back from them
(:func:`terms_of`, :func:`fields_from_terms`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PROFILE_DIR = Path(__file__).resolve().parent.parent / "config" / "hsds-profile"
PROFILE_FOLDER = "hsds-profile"  # the profile's copy beside an export's tables
NAMESPACE = uuid.UUID("5b0e6f1c-2a0d-5d8e-9a57-8c2f3b1d4e60")
HSDS_30 = "https://github.com/openreferral/specification/tree/3.0"
TAXONOMY_NAME = "Help Center low-threshold services"
# Tables of the CSV package (the file is ``<table>.csv``) and the schema file (spec's or the
# profile's) describing each. The spec's own ``datapackage.json`` names each resource after its
# schema (``service``, path ``services.csv``), and so does ours: this is the resource's name.
SCHEMA_OF_TABLE = {
    "organizations": "organization",
    "locations": "location",
    "services": "service",
    "service_at_location": "service_at_location",
    "phones": "phone",
    "languages": "language",
    "accessibility": "accessibility",
    "addresses": "address",
    "schedules": "schedule",
    "attributes": "attribute",
    "taxonomies": "taxonomy",
    "taxonomy_terms": "taxonomy_term",
    "service_capacity": "service_capacity",  # HSDS 3.1's
    "units": "unit",  # HSDS 3.1's
    "x_translations": "x_translation",
    "x_closures": "x_closure",
    "x_places": "x_place",
}


def hsds_id(table: str, key: str) -> str:
    """The row's UUID: its key if that already is one, else a uuid5 stable across exports."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, f"{table}/{key}"))


@cache
def profile() -> dict[str, Any]:
    """``profile.json``: name, version, description, the files of the profile."""
    data: dict[str, Any] = json.loads((PROFILE_DIR / "profile.json").read_text(encoding="utf-8"))
    return data


@cache
def profile_file(name: str) -> dict[str, Any] | None:
    """One of ``profile/*.json`` (a patch of the spec's ``name`` or a new object), if any."""
    path = PROFILE_DIR / "profile" / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def extension_description(table: str, column: str) -> str | None:
    """The profile's description of an extension column, None for one it does not define."""
    schema = profile_file(SCHEMA_OF_TABLE.get(table, table)) or {}
    declared = schema.get("properties", {}).get(column)
    return declared.get("description") if declared else None


# HSDS 3.1's unit of the shelters' capacities.
BED_UNIT = {"id": hsds_id("unit", "bed"), "name": "Bed", "identifier": "bed"}


def profile_reference() -> dict[str, str]:
    """How a package or an answer names the profile it follows."""
    about = profile()
    return {"name": about["name"], "version": about["version"], "hsds": HSDS_30}


# ---- the local taxonomy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Facet:
    """What a group of terms says of a service: ``field`` takes ``values[code]``."""

    name: str
    field: str
    values: dict[str, Any]
    link_type: str
    default: Any


# One term per code; a service has at most one term of each facet. No term of a facet means
# its default (admitted: all; no referral, no documents needed; dogs unknown; free).
FACETS = (
    Facet(
        "category",
        "category",
        {
            code: code
            for code in (
                "night_shelter",
                "cold_weather_beds",
                "meals",
                "showers",
                "clothing",
                "health",
                "day_center",
                "left_luggage",
                "legal",
                "help_center",
            )
        },
        "service_type",
        None,
    ),
    Facet("admits", "admits", {"men_only": "men", "women_only": "women"}, "eligibility", "all"),
    Facet("referral", "referral_required", {"referral_required": True}, "eligibility", False),
    Facet("documents", "documents_required", {"documents_required": True}, "eligibility", False),
    Facet("pets", "pets_allowed", {"pets_allowed": True, "no_pets": False}, "eligibility", None),
    Facet("fee", "fee", {"free": "free", "small_fee": "small_fee"}, "cost", None),
)
FACET_OF_CODE = {code: facet for facet in FACETS for code in facet.values}


@cache
def taxonomy() -> dict[str, Any]:
    """``taxonomy.json``: the ``taxonomy`` record and every ``taxonomy_term`` of it."""
    data: dict[str, Any] = json.loads((PROFILE_DIR / "taxonomy.json").read_text(encoding="utf-8"))
    return data


def taxonomy_id() -> str:
    return str(taxonomy()["taxonomy"]["id"])


def term_id(code: str) -> str:
    return hsds_id("taxonomy_term", code)


@cache
def terms_by_code() -> dict[str, dict[str, Any]]:
    return {term["code"]: term for term in taxonomy()["taxonomy_terms"]}


def terms_of(values: dict[str, Any]) -> list[str]:
    """The codes of the terms a service's values take (``values``: field -> value)."""
    codes = []
    for facet in FACETS:
        value = values.get(facet.field)
        for code, meaning in facet.values.items():
            if value is not None and meaning == value and value != facet.default:
                codes.append(code)
    return codes


def fields_from_terms(codes: list[str]) -> dict[str, Any]:
    """The fields the terms say (only the facets that have a term)."""
    return {FACET_OF_CODE[code].field: FACET_OF_CODE[code].values[code] for code in codes}
