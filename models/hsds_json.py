"""HSDS 3.0's JSON form flattened into the rows of its tabular form, each with its JSONPath.

The JSON form (a ``Page`` of services as ``GET /services`` and our JSON export give, or one
record as ``GET /services/{id}``: ``schema/compiled/service.json``) nests what the tables
link by id: a service's ``organization``, its ``service_at_locations`` with their
``location``, its ``schedules``, ``phones``, ``attributes`` with their ``taxonomy_term``...
Here each nested record becomes a row of its table (``schedules``, ``locations``), given the
id of the record it is nested in (``service_id``), so that :mod:`models.hsds` reads both forms
with the same rules. Each row says where it was, ``services.json: $.contents[3].schedules[0]``,
so that a refusal names the field (``...schedules[0].freq``).

A record repeated (the same location under two services, a taxonomy term under every
attribute) is one row; two copies that disagree on a field are refused. What has no table
here (``funding``, ``contacts``, ``program``, ``metadata``...) is reported by its path, never
dropped in silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Nest:
    """A record nested under a key: the table its rows join and how it is linked.

    ``many``: a list, each item given its parent's id in ``link`` (a schedule's
    ``service_id``). One object: its id goes in the parent's ``link`` (``organization_id``).
    """

    table: str
    kind: str
    link: str
    many: bool = True


_ATTRIBUTES = Nest("attributes", "attribute", "link_id")
# What each kind of record nests, by key. Anything else nested is reported as not imported.
NESTS: dict[str, dict[str, Nest]] = {
    "service": {
        "organization": Nest("organizations", "organization", "organization_id", many=False),
        "service_at_locations": Nest("service_at_location", "service_at_location", "service_id"),
        "schedules": Nest("schedules", "schedule", "service_id"),
        "phones": Nest("phones", "phone", "service_id"),
        "languages": Nest("languages", "language", "service_id"),
        "attributes": _ATTRIBUTES,
        "capacities": Nest("service_capacity", "service_capacity", "service_id"),  # HSDS 3.1
        "x_translations": Nest("x_translations", "x_translation", "service_id"),
        "x_closures": Nest("x_closures", "x_closure", "service_id"),
    },
    "service_at_location": {
        "service": Nest("services", "service", "service_id", many=False),
        "location": Nest("locations", "location", "location_id", many=False),
        "schedules": Nest("schedules", "schedule", "service_at_location_id"),
        "attributes": _ATTRIBUTES,
    },
    "location": {
        "addresses": Nest("addresses", "address", "location_id"),
        "accessibility": Nest("accessibility", "accessibility", "location_id"),
        "schedules": Nest("schedules", "schedule", "location_id"),
        "attributes": _ATTRIBUTES,
    },
    "organization": {
        "services": Nest("services", "service", "organization_id"),
        "locations": Nest("locations", "location", "organization_id"),
        "phones": Nest("phones", "phone", "organization_id"),
        "attributes": _ATTRIBUTES,
    },
    "attribute": {
        "taxonomy_term": Nest("taxonomy_terms", "taxonomy_term", "taxonomy_term_id", many=False)
    },
    "taxonomy_term": {"taxonomy_detail": Nest("taxonomies", "taxonomy", "taxonomy_id", many=False)},
    "service_capacity": {"unit": Nest("units", "unit", "unit_id", many=False)},
}
ROOT_TABLES = {
    "service": "services",
    "organization": "organizations",
    "service_at_location": "service_at_location",
}


@dataclass
class Flattened:
    """The rows of each table, with what was linked by nesting and what was not read."""

    rows: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)
    # Per table, the columns given by the nesting (never reported as left aside).
    linked: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def text(value: Any) -> str:
    """A JSON scalar as the tables write it: ``true``, ``1``, ``45.532408``; null is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def root_kind(record: Any) -> str | None:
    """What a top-level record is: a service (HSDS requires its ``status``), an organization
    with its ``services``, or a service at a location (with its ``service``); else None."""
    if not isinstance(record, dict):
        return None
    if "status" in record:
        return "service"
    if isinstance(record.get("services"), list):
        return "organization"
    if isinstance(record.get("service"), dict):
        return "service_at_location"
    return None


class _Flattener:
    def __init__(self, name: str) -> None:
        self.name = name
        self.out = Flattened()
        self.seen: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
        self.not_read: set[str] = set()

    def where(self, path: str) -> str:
        return f"{self.name}: {path}"

    def refuse(self, path: str, why: str) -> None:
        self.out.problems.append(f"{self.where(path)}: {why}")

    def record(
        self, kind: str, table: str, data: Any, path: str, parent: tuple[str, str, str] | None
    ) -> str:
        """Flatten ``data`` into ``table``; its id. ``parent``: (column, id, kind) it is under."""
        if not isinstance(data, dict):
            self.refuse(path, "not an object: nothing of it imported")
            return ""
        nests = NESTS.get(kind, {})
        row: dict[str, str] = {}
        for key, value in data.items():
            if key in nests:
                continue
            if isinstance(value, dict | list):
                if value:
                    self.not_read.add(re.sub(r"\[\d+\]", "[]", f"{path}.{key}"))
                continue
            row[key] = text(value)
        if parent is not None:
            column, parent_id, parent_kind = parent
            self.link(table, row, path, column, parent_id)
            if table == "attributes" and not row.get("link_entity"):
                row["link_entity"] = parent_kind
                self.out.linked.setdefault(table, set()).add("link_entity")
        for key, nest in nests.items():
            if not nest.many and data.get(key) is not None:
                child_id = self.record(nest.kind, nest.table, data[key], f"{path}.{key}", None)
                self.link(table, row, path, nest.link, child_id)
        self.add(table, path, row)
        for key, nest in nests.items():
            value = data.get(key)
            if not nest.many or value is None:
                continue
            if not isinstance(value, list):
                self.refuse(f"{path}.{key}", "not a list: nothing of it imported")
                continue
            for n, item in enumerate(value):
                link = (nest.link, row.get("id", ""), kind)
                self.record(nest.kind, nest.table, item, f"{path}.{key}[{n}]", link)
        return row.get("id", "")

    def link(self, table: str, row: dict[str, str], path: str, column: str, value: str) -> None:
        """``row[column] = value`` from the nesting; a different id given is refused."""
        if not value:
            return
        given = row.get(column)
        if given and given != value:
            self.refuse(
                f"{path}.{column}",
                f"{given!r} is not the id of the record it is nested with ({value!r})",
            )
        elif not given:
            row[column] = value
            self.out.linked.setdefault(table, set()).add(column)

    def add(self, table: str, path: str, row: dict[str, str]) -> None:
        """A new row; a record already seen (same table and id) is merged into its first copy."""
        key = (table, row.get("id", ""))
        if not key[1] or key not in self.seen:
            self.out.rows.setdefault(table, []).append((self.where(path), row))
            if key[1]:
                self.seen[key] = (path, row)
            return
        first_path, first = self.seen[key]
        for column, value in row.items():
            if value and first.get(column) and first[column] != value:
                self.refuse(
                    f"{path}.{column}",
                    f"{value!r}, where the same record at {first_path} says {first[column]!r}",
                )
            elif value:
                first[column] = value


def flatten(document: Any, name: str) -> Flattened:
    """The tables of an HSDS JSON document: a ``Page`` (``contents``) or one record."""
    flattener = _Flattener(name)
    out = flattener.out
    if isinstance(document, dict) and isinstance(document.get("contents"), list):
        records = [(f"$.contents[{n}]", r) for n, r in enumerate(document["contents"])]
        pages = document.get("total_pages")
        if isinstance(pages, int) and pages > 1:
            out.warnings.append(
                f"{name}: page {document.get('page_number', '?')} of {pages}: only the "
                f"records of this page ({len(records)}) are imported"
            )
    else:
        records = [("$", document)]
    for path, record in records:
        kind = root_kind(record)
        if kind is None:
            flattener.refuse(
                path,
                "not a service (HSDS requires its status), an organization with its services "
                "or a service at a location: nothing of it imported",
            )
            continue
        flattener.record(kind, ROOT_TABLES[kind], record, path, None)
    out.warnings += [
        f"{name}: {path}: not imported (this directory has no place for it)"
        for path in sorted(flattener.not_read)
    ]
    return out
