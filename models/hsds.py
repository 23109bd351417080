"""Reading Open Referral HSDS 3.0 data (CSV tables, or the JSON form) without misreading it.

A folder's tables are found by the resource names of its ``datapackage.json`` (the spec's,
``service``, or our older exports', ``services``), else by their file names; HSDS's JSON
form (a ``Page`` of nested services) is flattened into the same tables
(:mod:`models.hsds_json`), each row knowing its JSONPath, and read with the same rules.

Every column taken keeps its HSDS meaning: ``status`` (only ``active`` is open to people),
schedules (``freq``, ``interval``, ``byday``, ``valid_from``, ``valid_to``, ``dtstart``,
``until``, times with or without a UTC offset), ``eligibility_description``, fees,
``service_at_location``, phones, addresses, languages, accessibility. What cannot be honoured
(a monthly or fortnightly schedule, a count of occurrences, an unknown status) is refused
with file, line and column; every table and column left aside is reported as a warning, so
nothing is dropped in silence.

Texts are Italian (the language of the directory) unless the row's ``x_language`` says
otherwise; another city's data in another language is read with ``language``, e.g.
``--language en``. Translations are ``x_translations`` rows (and, from older files, the same
columns with a language code suffix, ``name_fr``). The directory's category and admission
conditions are ``attributes`` of the local taxonomy (:mod:`models.hsds_profile`); attributes
of any other taxonomy are reported, not imported. A shelter's beds are the ``maximum`` of its
HSDS 3.1 ``service_capacity`` in beds; tonight's count (``available``) is never taken from a
file. The rest of the profile's extensions (``x_local_id``, ``x_area``, seasons, closures,
landmarks) are ``x_`` columns and tables; the names of older exports are read too.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from models.hsds_json import flatten
from models.hsds_profile import (
    BED_UNIT,
    FACET_OF_CODE,
    PROFILE_FOLDER,
    SCHEMA_OF_TABLE,
    TAXONOMY_NAME,
    fields_from_terms,
    taxonomy_id,
    term_id,
)

DEFAULT_LANGUAGE = "it"
BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
STATUSES = {"active": True, "inactive": False, "defunct": False, "temporarily closed": False}
LOCATION_TYPES = ("physical", "postal", "virtual")
# Our text fields and the HSDS column that carries each (unsuffixed = Italian).
TEXT_COLUMNS = {
    "name": "name",
    "description": "description",
    "eligibility": "eligibility_description",
    "application_process": "application_process",
    "notes": "x_notes",
}
# Older exports' names of columns and tables now named x_... (read when the new one is absent).
LEGACY_NAMES = {
    "x_notes": "notes",
    "x_local_id": "local_id",
    "x_address": "address",
    "x_area": "area",
    "x_season_start": "season_start",
    "x_season_end": "season_end",
    "x_beds_total": "beds_total",
    "x_closures": "closures",
    "x_places": "places",
}
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
_CLOCK = re.compile(
    r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE
)
UNHONOURED_RECURRENCE = ("count", "byweekno", "bymonthday", "byyearday")


def parse_clock(text: str) -> tuple[time, timedelta | None]:
    """``HH:MM``, ``HH:MM:SS``, with ``Z`` or an offset (``09:00-05:00``): (time, offset)."""
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a time like 10:00:00 or 10:00+01:00: {text.strip()!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    second = int(match.group(3) or 0)
    if second:
        raise ValueError(f"seconds are not kept, give whole minutes: {text.strip()!r}")
    if (hour, minute) == (24, 0):
        hour = 0
    at = time(hour, minute)
    suffix = match.group(4)
    if suffix is None:
        return at, None
    if suffix.upper() == "Z":
        return at, timedelta(0)
    digits = suffix[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return at, -offset if suffix[0] == "-" else offset


def offset_holds(offset: timedelta, zone: ZoneInfo, first: date, last: date) -> bool:
    """The zone's UTC offset is ``offset`` at noon on every day from ``first`` to ``last``."""
    day = first
    while day <= last:
        if datetime.combine(day, time(12), tzinfo=zone).utcoffset() != offset:
            return False
        day += timedelta(days=1)
    return True


class Table:
    """The rows of one table (a CSV file, or the records of a JSON document), remembering
    which columns were read. Each row comes with where it was: ``services.csv line 2``, or
    ``services.json: $.contents[3].schedules[0]`` (a JSONPath) for the JSON form."""

    def __init__(self, name: str, rows: list[tuple[str, dict[str, str]]]) -> None:
        self.name = name
        self.rows = rows
        self.read: set[str] = set()

    @classmethod
    def from_csv(cls, path: Path, name: str) -> Table:
        """The rows of a CSV file (none if there is no such file)."""
        rows: list[tuple[str, dict[str, str]]] = []
        if path.is_file():
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                for row in reader:
                    clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                    rows.append((f"{name} line {reader.line_num}", clean))
        return cls(name, rows)

    def get(self, row: dict[str, str], column: str) -> str:
        """The column's value; an ``x_`` column falls back on its older name."""
        self.read.add(column)
        value = row.get(column, "")
        if not value and column in LEGACY_NAMES:
            self.read.add(LEGACY_NAMES[column])
            value = row.get(LEGACY_NAMES[column], "")
        return value

    def has(self, column: str) -> bool:
        return any(column in row for _w, row in self.rows)

    def ignored_columns(self) -> list[str]:
        filled = {k for _w, row in self.rows for k, v in row.items() if v}
        return sorted(filled - self.read)

    def ignored_fields(self) -> list[str]:
        """The JSON form: each field filled and not read, as a path (``$.contents[].alert``)."""
        ignored = set(self.ignored_columns())
        return sorted(
            {
                f"{generic_path(where)}.{key}"
                for where, row in self.rows
                for key, value in row.items()
                if value and key in ignored
            }
        )


def generic_path(where: str) -> str:
    """``services.json: $.contents[3].phones[0]`` -> ``$.contents[].phones[]``."""
    return re.sub(r"\[\d+\]", "[]", where.rpartition(": ")[2])


def texts(
    table: Table,
    row: dict[str, str],
    name: str,
    language: str = DEFAULT_LANGUAGE,
    translations: Sequence[tuple[str, dict[str, str]]] = (),
) -> dict[str, str]:
    """A text per language: the HSDS column in ``language``, then each translation.

    Translations are ``x_translations`` rows (language, column); older files gave them as
    ``column_<code>`` columns. Only a language code (two or three letters) counts as a
    suffix, so that ``eligibility_description`` is never read as eligibility in a language
    "description". Our older files wrote ``eligibility_it``: that spelling is read too.
    """
    column = TEXT_COLUMNS[name]
    found: dict[str, str] = {}
    if table.get(row, column):
        found[language] = table.get(row, column)
    for lang, translated in translations:
        if translated.get(column):
            found.setdefault(lang, translated[column])
    for prefix in dict.fromkeys((LEGACY_NAMES.get(column, column), name)):
        for key, value in row.items():
            suffix = key[len(prefix) + 1 :]
            if key.startswith(prefix + "_") and _LANGUAGE_CODE.fullmatch(suffix):
                table.read.add(key)
                if value:
                    found.setdefault(suffix, value)
    return found


def yes_no(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in {"", "unknown"}:
        return None
    if lowered in {"true", "yes", "1", "y"}:
        return True
    if lowered in {"false", "no", "0", "n"}:
        return False
    raise ValueError(f"not yes/no: {text!r}")


@dataclass
class Reading:
    """What a folder gave: rows for validation, refusals, and what was left aside."""

    rows: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _CsvFolder:
    """A folder of CSV tables, found by the names of its ``datapackage.json`` if it has one.

    A resource is found by the spec's name (``service``) or our older exports' (``services``);
    without a descriptor (or a resource in it), by its file name, ``services.csv`` (and an
    ``x_`` table of an older export by its older name, ``closures.csv``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opened: set[Path] = set()
        self.warnings: list[str] = []
        self.resources = self._resources()

    def _resources(self) -> dict[str, str]:
        """Resource name -> path (inside this folder) of ``datapackage.json``'s resources."""
        descriptor = self.folder / "datapackage.json"
        if not descriptor.is_file():
            return {}
        try:
            package = json.loads(descriptor.read_text(encoding="utf-8"))
            resources = package["resources"]
            named = {r["name"]: r.get("path") for r in resources if isinstance(r, dict)}
        except (ValueError, KeyError, TypeError):
            self.warnings.append(
                "datapackage.json: not a data package descriptor: tables found by file name"
            )
            return {}
        found: dict[str, str] = {}
        root = self.folder.resolve()
        for name, path in named.items():
            inside = isinstance(path, str) and root in (root / path).resolve().parents
            if inside:
                found[name] = str(path)
            else:
                self.warnings.append(
                    f"datapackage.json: resource {name!r}: path {path!r} is not a file of "
                    "this folder: not read"
                )
        return found

    def path(self, name: str) -> str | None:
        """The file of the table ``name`` (``services``), relative to the folder, if any."""
        names = [SCHEMA_OF_TABLE.get(name, name), name]
        if name in LEGACY_NAMES:
            names.append(LEGACY_NAMES[name])
        for candidate in names:
            for path in (self.resources.get(candidate), f"{candidate}.csv"):
                if path and (self.folder / path).is_file():
                    return Path(path).as_posix()
        return None

    def table(self, name: str) -> Table:
        path = self.path(name)
        if path is None:
            return Table(f"{name}.csv", [])
        self.opened.add((self.folder / path).resolve())
        return Table.from_csv(self.folder / path, path)

    def at(self, where: str, column: str) -> str:
        return f"{where}: {column}"

    def left_aside(self, tables: dict[str, Table]) -> list[str]:
        """Every file and folder not read, every filled column not imported."""
        out = list(self.warnings)
        out += self._files_not_read(self.folder)
        for table in tables.values():
            ignored = table.ignored_columns()
            if ignored:
                out.append(f"{table.name}: columns not imported: {', '.join(ignored)}")
        return out

    def _files_not_read(self, folder: Path) -> list[str]:
        out = []
        for path in sorted(folder.iterdir()):
            name = path.relative_to(self.folder).as_posix()
            if name in {"datapackage.json", PROFILE_FOLDER}:  # our exports' profile copy
                continue
            if path.is_dir():
                if any(path.resolve() in opened.parents for opened in self.opened):
                    out += self._files_not_read(path)
                else:
                    out.append(f"{name}/: folder not read (the tables are read from this folder)")
            elif path.resolve() not in self.opened:
                out.append(f"{name}: table not imported (this directory has no place for it)")
        return out


class _JsonDocument:
    """HSDS's JSON form, its nested records flattened into the tables (:mod:`models.hsds_json`)."""

    def __init__(self, name: str, document: Any) -> None:
        self.name = name
        flat = flatten(document, name)
        self.problems = flat.problems
        self.warnings = flat.warnings
        self.tables = {}
        for table, rows in flat.rows.items():
            self.tables[table] = Table(f"{name} {table}", rows)
            self.tables[table].read.update(flat.linked.get(table, ()))

    def table(self, name: str) -> Table:
        return self.tables.get(name) or Table(f"{self.name} {name}", [])

    def at(self, where: str, column: str) -> str:
        return f"{where}.{column}"

    def left_aside(self, tables: dict[str, Table]) -> list[str]:
        fields = sorted({f for table in tables.values() for f in table.ignored_fields()})
        found = [f"{self.name}: fields not imported: {', '.join(fields)}"] if fields else []
        return self.warnings + found


@dataclass
class _Context:
    source: _CsvFolder | _JsonDocument
    zone: ZoneInfo
    today: date
    reading: Reading
    language: str = DEFAULT_LANGUAGE  # the language of the unsuffixed texts
    tables: dict[str, Table] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        """The table ``name`` (``services``: the file ``services.csv``, resource ``service``)."""
        if name not in self.tables:
            self.tables[name] = self.source.table(name)
        return self.tables[name]

    def refuse(self, where: str, column: str, why: str) -> None:
        """``services.csv line 2: status: why``; ``x.json: $.contents[3].status: why``."""
        self.reading.problems.append(f"{self.source.at(where, column)}: {why}")

    def warn(self, text: str) -> None:
        self.reading.warnings.append(text)


def read_folder(
    folder: Path, zone: ZoneInfo, today: date, language: str = DEFAULT_LANGUAGE
) -> Reading:
    """Read the HSDS tables of ``folder``; unsuffixed texts are in ``language``."""
    source = _CsvFolder(folder)
    if source.path("services") is None:
        return Reading(problems=[f"{folder}: no services.csv in this folder"])
    return _read(_Context(source, zone, today, Reading(), language=language))


def read_json(
    name: str, document: Any, zone: ZoneInfo, today: date, language: str = DEFAULT_LANGUAGE
) -> Reading:
    """Read HSDS's JSON form (a ``Page`` of services, or one record) with the tables' rules.

    ``name`` is the file's, for the reports; what cannot be honoured is refused with the
    JSONPath of the field (``services.json: $.contents[3].schedules[0].freq``).
    """
    source = _JsonDocument(name, document)
    ctx = _Context(source, zone, today, Reading(problems=list(source.problems)), language=language)
    return _read(ctx)


def _read(ctx: _Context) -> Reading:
    organizations = _organizations(ctx)
    locations = _locations(ctx)
    ctx.reading.rows["organizations"] = list(organizations.values())
    ctx.reading.rows["locations"] = list(locations.values())
    ctx.reading.rows["places"] = _places(ctx)
    ctx.reading.rows["services"] = _services(
        ctx, {k: v[1]["id"] for k, v in organizations.items()}, locations
    )
    _report_left_aside(ctx)
    return ctx.reading


def _key(table: Table, row: dict[str, str]) -> str:
    """Our stable key: the ``x_local_id`` extension column when present, else the HSDS id."""
    return table.get(row, "x_local_id") or table.get(row, "id")


def _by(ctx: _Context, table_name: str, column: str) -> dict[str, list[tuple[str, dict[str, str]]]]:
    table = ctx.table(table_name)
    grouped: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for where, row in table.rows:
        ref = table.get(row, column)
        if ref:
            grouped.setdefault(ref, []).append((where, row))
    return grouped


def _first_phone(ctx: _Context, rows: list[tuple[str, dict[str, str]]], owner: str) -> str | None:
    phones = ctx.table("phones")
    numbers = [phones.get(row, "number") for _w, row in rows if phones.get(row, "number")]
    if len(numbers) > 1:
        ctx.warn(f"{phones.name}: {owner} has {len(numbers)} phones; only the first is kept")
    return numbers[0] if numbers else None


def _organizations(ctx: _Context) -> dict[str, tuple[str, dict[str, Any]]]:
    table = ctx.table("organizations")
    phones = _by(ctx, "phones", "organization_id")
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for where, row in table.rows:
        hsds_id = table.get(row, "id")
        out[hsds_id] = (
            where,
            {
                "id": _key(table, row),
                "name": table.get(row, "name"),
                # Our export repeats the name where HSDS requires a description: says nothing.
                "description": _description(table, row),
                "url": table.get(row, "website") or table.get(row, "url") or None,
                "email": table.get(row, "email") or None,
                "phone": table.get(row, "phone")
                or _first_phone(ctx, phones.get(hsds_id, []), f"organization {hsds_id}"),
            },
        )
    return out


def _description(table: Table, row: dict[str, str]) -> str | None:
    """An organization's description; our export repeats the name where HSDS requires one."""
    description = table.get(row, "description")
    return description if description and description != table.get(row, "name") else None


def _address(ctx: _Context, rows: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The physical address (else the first) in parts, and as one line of text."""
    addresses = ctx.table("addresses")
    physical = [r for _w, r in rows if addresses.get(r, "address_type") in {"", "physical"}]
    chosen = (physical or [r for _w, r in rows])[:1]
    addresses.read.update({"id", "location_id", "region", "attention"})
    if not chosen:
        return {}
    row = chosen[0]
    street = ", ".join(p for p in (addresses.get(row, c) for c in ("address_1", "address_2")) if p)
    parts = {
        "street": street,
        "city": addresses.get(row, "city"),
        "province": addresses.get(row, "state_province"),
        "postal_code": addresses.get(row, "postal_code"),
        "country": addresses.get(row, "country").upper(),
    }
    town = " ".join(p for p in (parts["postal_code"], parts["city"]) if p)
    text = ", ".join(p for p in (street, town, parts["province"]) if p)
    return {k: v or None for k, v in parts.items()} | {"text": text}


def _coordinates(ctx: _Context, table: Table, where: str, row: dict[str, str]) -> dict[str, Any]:
    """Latitude and longitude, or none (with a warning): such a place is never "near me"."""
    kind = table.get(row, "location_type") or "physical"
    lat_text, lon_text = table.get(row, "latitude"), table.get(row, "longitude")
    if kind not in LOCATION_TYPES:
        ctx.refuse(where, "location_type", f"{kind!r} is not one of {', '.join(LOCATION_TYPES)}")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        lat = lon = float("nan")
    usable = kind == "physical" and -90 <= lat <= 90 and -180 <= lon <= 180
    if not usable:
        reason = (
            f"a {kind} location"
            if kind != "physical"
            else "no coordinates"
            if not (lat_text or lon_text)
            else f"coordinates out of range ({lat_text}, {lon_text})"
        )
        ctx.warn(f"{where}: {reason}: kept, but never among the services near a person")
        return {"latitude": None, "longitude": None}
    return {"latitude": lat, "longitude": lon}


def _locations(ctx: _Context) -> dict[str, tuple[str, dict[str, Any]]]:
    table = ctx.table("locations")
    addresses = _by(ctx, "addresses", "location_id")
    access = _by(ctx, "accessibility", "location_id")
    acc = ctx.table("accessibility")
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for where, row in table.rows:
        hsds_id = table.get(row, "id")
        parts = _address(ctx, addresses.get(hsds_id, []))
        address = table.get(row, "x_address") or parts.pop("text", "")
        parts.pop("text", None)
        notes = [
            ": ".join(p for p in (acc.get(r, "description"), acc.get(r, "details")) if p)
            for _w, r in access.get(hsds_id, [])
        ]
        acc.read.add("id")
        accessibility = table.get(row, "accessibility") or "\n".join(n for n in notes if n)
        name = table.get(row, "name") or table.get(row, "alternate_name") or address or hsds_id
        out[hsds_id] = (
            where,
            {
                "id": _key(table, row),
                "name": name,
                "address": address,
                **parts,
                "area": table.get(row, "x_area"),
                "accessibility": accessibility or None,
                **_coordinates(ctx, table, where, row),
            },
        )
    return out


def _places(ctx: _Context) -> list[tuple[str, dict[str, Any]]]:
    table = ctx.table("x_places")
    table.read.add("id")  # our exports' UUID of the landmark; the key is x_local_id
    return [
        (
            where,
            {
                "id": _key(table, row),
                "name": table.get(row, "name"),
                "aliases": [a for a in table.get(row, "aliases").split("|") if a],
                "latitude": table.get(row, "latitude") or None,
                "longitude": table.get(row, "longitude") or None,
            },
        )
        for where, row in table.rows
    ]


def _status(ctx: _Context, table: Table, where: str, row: dict[str, str]) -> bool:
    if table.has("status"):
        status = table.get(row, "status").lower()
        if status not in STATUSES:
            ctx.refuse(where, "status", f"{status!r} is not one of {', '.join(STATUSES)}")
        return STATUSES.get(status, False)
    return yes_no(table.get(row, "active")) is not False


def _fees(table: Table, row: dict[str, str]) -> dict[str, Any]:
    """Our ``fee`` column if given; else an HSDS ``fees_description`` means a fee, shown as is."""
    note = table.get(row, "fee_note") or table.get(row, "fees_description") or None
    fee = table.get(row, "fee") or ("small_fee" if table.get(row, "fees_description") else "free")
    return {"fee": fee, "fee_note": note}


def _services(
    ctx: _Context, org_keys: dict[str, str], locations: dict[str, tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    table = ctx.table("services")
    at_locations = _by(ctx, "service_at_location", "service_id")
    sal = ctx.table("service_at_location")
    phones = _by(ctx, "phones", "service_id")
    languages = _by(ctx, "languages", "service_id")
    hours = _schedules(ctx)
    closures = _closures(ctx)
    linked = _Linked(_attributes(ctx), _translations(ctx), _capacities(ctx))
    location_keys = {k: v[1]["id"] for k, v in locations.items()}
    out: list[tuple[str, dict[str, Any]]] = []
    for where, row in table.rows:
        hsds_id = table.get(row, "id")
        try:
            base = _service_row(ctx, table, (where, row), org_keys, linked)
        except ValueError as exc:
            ctx.reading.problems.append(f"{where}: {exc}")
            continue
        base["phone"] = table.get(row, "phone") or _first_phone(
            ctx, phones.get(hsds_id, []), f"service {hsds_id}"
        )
        langs = ctx.table("languages")
        base["languages"] = [x for x in table.get(row, "languages").split(";") if x] + [
            langs.get(r, "code") or langs.get(r, "name") for _w, r in languages.get(hsds_id, [])
        ]
        links = at_locations.get(hsds_id, [])
        legacy_location = table.get(row, "location_id")
        if len(links) > 1:
            ctx.warn(
                f"{where}: offered at {len(links)} locations: imported as {len(links)} entries "
                "of the directory, one per service_at_location id"
            )
        entries = [
            (
                sal.get(r, "id") if len(links) > 1 else base["id"],
                sal.get(r, "location_id"),
                sal.get(r, "id"),
            )
            for _w, r in links
        ] or [(base["id"], legacy_location, "")]
        for key, location, at_location in entries:
            if location and location not in location_keys and not legacy_location:
                ctx.refuse(where, "location_id", f"unknown location {location!r}")
            # The service's own hours, and those it keeps at this location.
            slots = hours.get(hsds_id, []) + (hours.get(at_location, []) if at_location else [])
            out.append(
                (
                    where,
                    base
                    | {
                        "id": key,
                        "location": location_keys.get(location, location) if location else None,
                        "hours": slots or "closed",
                        "closures": closures.get(hsds_id, []),
                    },
                )
            )
    sal.read.update({"id", "description"})
    ctx.table("phones").read.add("id")
    ctx.table("languages").read.add("id")
    _report_unlinked(ctx, {table.get(row, "id") for _w, row in table.rows}, linked)
    return out


@dataclass
class _Linked:
    """What other tables say of each service (by its HSDS id)."""

    terms: dict[str, list[tuple[str, str]]]  # (where, code of the local taxonomy)
    translations: dict[str, list[tuple[str, dict[str, str]]]]  # (language, texts)
    beds: dict[str, int]  # the maximum of its capacity in beds


def _service_row(
    ctx: _Context,
    table: Table,
    line: tuple[str, dict[str, str]],
    org_keys: dict[str, str],
    linked: _Linked,
) -> dict[str, Any]:
    where, row = line
    hsds_id = table.get(row, "id")
    organization = table.get(row, "organization_id")
    beds = table.get(row, "x_beds_total")
    data: dict[str, Any] = {
        "id": _key(table, row),
        "category": table.get(row, "category") or None,
        "organization": org_keys.get(organization, organization) or None,
        "admits": table.get(row, "admits") or "all",
        "referral_required": bool(yes_no(table.get(row, "referral_required"))),
        "documents_required": bool(yes_no(table.get(row, "documents_required"))),
        "pets_allowed": yes_no(table.get(row, "pets_allowed")),
        "email": table.get(row, "email") or None,
        "url": table.get(row, "url") or None,
        "active": _status(ctx, table, where, row),
        "beds_total": int(beds) if beds else linked.beds.get(hsds_id),
        **_fees(table, row),
    }
    data |= _from_terms(ctx, linked.terms.get(hsds_id, []))
    if data["category"] is None:
        ctx.warn(
            f"{where}: no category of the local taxonomy: kept, but in no menu of the bot "
            "until one is given"
        )
    language = table.get(row, "x_language") or ctx.language
    if not _LANGUAGE_CODE.fullmatch(language):
        ctx.refuse(where, "x_language", f"not a language code like it or en: {language!r}")
    for name in TEXT_COLUMNS:
        data[name] = texts(table, row, name, language, linked.translations.get(hsds_id, []))
    return data


def _from_terms(ctx: _Context, terms: list[tuple[str, str]]) -> dict[str, Any]:
    """The fields the service's terms say; two terms of one kind (men and women) refused."""
    chosen: dict[str, str] = {}
    for where, code in terms:
        facet = FACET_OF_CODE[code].name
        if chosen.setdefault(facet, code) != code:
            ctx.refuse(
                where,
                "taxonomy_term_id",
                f"{code} and {chosen[facet]} for one service: one {facet} term at most",
            )
    return fields_from_terms(list(chosen.values()))


def _terms(ctx: _Context) -> dict[str, tuple[str | None, str]]:
    """Each taxonomy term id: its code in the local taxonomy (None: another's), and a label.

    A term is ours when ``taxonomy_terms.csv`` puts it in our taxonomy (by id, or by name
    when it gives no taxonomy id), or, without that file, when its id is one of ours.
    """
    found: dict[str, tuple[str | None, str]] = {
        term_id(code): (code, code) for code in FACET_OF_CODE
    }
    table = ctx.table("taxonomy_terms")
    taxonomies = ctx.table("taxonomies")
    names = {taxonomies.get(r, "id"): taxonomies.get(r, "name") for _w, r in taxonomies.rows}
    taxonomies.read.update(k for _w, r in taxonomies.rows for k in r)
    for where, row in table.rows:
        table.read.update(row)  # the terms are read whole: what they say is in the label
        of = row.get("taxonomy_id", "")
        ours = of == taxonomy_id() or (not of and row.get("taxonomy") == TAXONOMY_NAME)
        code = row.get("code", "")
        if ours and code not in FACET_OF_CODE:
            ctx.refuse(where, "code", f"{code!r} is not a term of the {TAXONOMY_NAME} taxonomy")
        taxonomy = names.get(of) or row.get("taxonomy") or "no taxonomy named"
        label = f"{row.get('name') or code or row.get('id')!r} of {taxonomy!r}"
        found[row.get("id", "")] = (code if ours else None, label)
    return found


def _attributes(ctx: _Context) -> dict[str, list[tuple[str, str]]]:
    """The local taxonomy's terms of each service id; every other attribute reported."""
    table = ctx.table("attributes")
    terms = _terms(ctx)
    out: dict[str, list[tuple[str, str]]] = {}
    for where, row in table.rows:
        table.read.update(row)  # an attribute is taken whole or reported by its line
        term = row.get("taxonomy_term_id", "")
        code, label = terms.get(term, (None, f"unknown term {term!r}"))
        entity = row.get("link_entity") or "service"
        if code is None:
            ctx.warn(f"{where}: {label}, a term of another taxonomy: not imported")
        elif entity != "service":
            ctx.warn(f"{where}: {code} given to a {entity}, not a service: not imported")
        else:
            out.setdefault(row.get("link_id", ""), []).append((where, code))
    return out


def _translations(ctx: _Context) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Each service's texts in other languages (``x_translations`` rows)."""
    table = ctx.table("x_translations")
    table.read.add("id")
    out: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for where, row in table.rows:
        language = table.get(row, "language")
        if not _LANGUAGE_CODE.fullmatch(language):
            ctx.refuse(where, "language", f"not a language code like en or ar: {language!r}")
            continue
        texts = {column: table.get(row, column) for column in TEXT_COLUMNS.values()}
        out.setdefault(table.get(row, "service_id"), []).append((language, texts))
    return out


def _capacities(ctx: _Context) -> dict[str, int]:
    """The beds of each shelter: the ``maximum`` of its capacity in beds (HSDS 3.1).

    Tonight's free beds (``available``) are never taken from a file: a file is always
    older than what the shelter's staff say in the bot. Each count left is reported.
    """
    table = ctx.table("service_capacity")
    units = ctx.table("units")
    beds = {BED_UNIT["id"]} | {
        units.get(r, "id")
        for _w, r in units.rows
        if {units.get(r, "name").lower(), units.get(r, "identifier").lower()} & {"bed", "beds"}
    }
    units.read.update(k for _w, r in units.rows for k in r)
    out: dict[str, int] = {}
    for where, row in table.rows:
        table.read.update({"id", "description", "updated", "available", "unit_id"})
        if table.get(row, "unit_id") not in beds:
            ctx.warn(f"{where}: a capacity counted in another unit than beds: not imported")
            table.read.update(row)
            continue
        maximum = table.get(row, "maximum")
        try:
            if maximum:
                out[table.get(row, "service_id")] = int(float(maximum))
        except ValueError:
            ctx.refuse(where, "maximum", f"not a number of beds: {maximum!r}")
        if table.get(row, "available"):
            ctx.warn(
                f"{where}: {table.get(row, 'available')} free beds counted "
                f"{table.get(row, 'updated') or 'at an unknown time'}: never taken from a file "
                "(the shelter's staff give tonight's count in the bot)"
            )
    return out


def _report_unlinked(ctx: _Context, services: set[str], linked: _Linked) -> None:
    for service_id, terms in linked.terms.items():
        if service_id not in services:
            for where, code in terms:
                ctx.warn(f"{where}: {code} given to no service of the file: not imported")


def _closures(ctx: _Context) -> dict[str, list[dict[str, Any]]]:
    table = ctx.table("x_closures")
    table.read.add("id")
    out: dict[str, list[dict[str, Any]]] = {}
    for _where, row in table.rows:
        out.setdefault(table.get(row, "service_id"), []).append(
            {"date": table.get(row, "date"), "note": table.get(row, "note") or None}
        )
    return out


def _schedules(ctx: _Context) -> dict[str, list[dict[str, Any]]]:
    """Blocks of weekly hours per service id (or service_at_location id)."""
    table = ctx.table("schedules")
    out: dict[str, list[dict[str, Any]]] = {}
    for where, row in table.rows:
        owner = table.get(row, "service_id") or table.get(row, "service_at_location_id")
        if not owner:
            ctx.warn(f"{where}: hours of a location, not of a service: not imported")
            table.read.update(row)
            continue
        problems_before = len(ctx.reading.problems)
        block = _schedule_block(ctx, table, where, row)
        if block is not None and len(ctx.reading.problems) == problems_before:
            out.setdefault(owner, []).append(block)
    # wkst changes nothing for weekly hours every week; the description is what the hours
    # say in words (ours: "local time"). notes, schedule_link, attending_type are reported.
    table.read.update({"id", "location_id", "description", "wkst"})
    return out


def _date(ctx: _Context, table: Table, where: str, row: dict[str, str], column: str) -> date | None:
    text = table.get(row, column)
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        ctx.refuse(where, column, f"not a date like 2026-11-15: {text!r}")
        return None


def _schedule_block(
    ctx: _Context, table: Table, where: str, row: dict[str, str]
) -> dict[str, Any] | None:
    starts = [d for d in (_date(ctx, table, where, row, c) for c in ("valid_from", "dtstart")) if d]
    ends = [d for d in (_date(ctx, table, where, row, c) for c in ("valid_to", "until")) if d]
    valid_from, valid_to = max(starts, default=None), min(ends, default=None)
    if valid_to is not None and valid_to < ctx.today:
        ctx.warn(f"{where}: valid until {valid_to}, already past: not imported")
        table.read.update(row)
        return None
    freq = table.get(row, "freq").upper()
    if freq not in {"", "WEEKLY"}:
        ctx.refuse(where, "freq", f"{freq} hours cannot be honoured: only weekly hours are kept")
    interval = table.get(row, "interval")
    if interval not in {"", "1", "1.0"}:
        ctx.refuse(where, "interval", f"every {interval} weeks cannot be honoured")
    for column in UNHONOURED_RECURRENCE:
        if table.get(row, column):
            ctx.refuse(where, column, "cannot be honoured: only weekly hours are kept")
    days: list[str] = []
    for part in table.get(row, "byday").split(","):
        if part.strip().upper() not in BYDAY:
            ctx.refuse(where, "byday", f"{part.strip()!r} is not a day (MO, TU, ... SU)")
        else:
            days.append(part.strip().upper())
    opens = _local_clock(ctx, table, where, row, "opens_at", (valid_from, valid_to))
    closes = _local_clock(ctx, table, where, row, "closes_at", (valid_from, valid_to))
    if opens is None or closes is None or not days:
        return None
    season = None
    if table.get(row, "x_season_start"):
        season = f"{table.get(row, 'x_season_start')}..{table.get(row, 'x_season_end')}"
    names = ",".join(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[BYDAY.index(d)] for d in days
    )
    return {
        "hours": f"{names} {opens:%H:%M}-{closes:%H:%M}",
        "season": season,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }


def _local_clock(
    ctx: _Context,
    table: Table,
    where: str,
    row: dict[str, str],
    column: str,
    validity: tuple[date | None, date | None],
) -> time | None:
    """The local wall time; a UTC offset is accepted only where it is the zone's own."""
    text = table.get(row, column)
    if not text:
        ctx.refuse(where, column, "missing: hours without times cannot be honoured")
        return None
    try:
        at, offset = parse_clock(text)
    except ValueError as exc:
        ctx.refuse(where, column, str(exc))
        return None
    zone_hours = table.get(row, "timezone")
    if offset is None and zone_hours:
        try:
            offset = timedelta(hours=float(zone_hours))
        except ValueError:
            ctx.refuse(where, "timezone", f"not a UTC offset in hours: {zone_hours!r}")
            return None
    if offset is None:
        return at
    first = validity[0] or ctx.today
    last = validity[1] or first + timedelta(days=366)
    if not offset_holds(offset, ctx.zone, max(first, ctx.today), last):
        ctx.refuse(
            where,
            column,
            f"{text} is given with a UTC offset that is not {ctx.zone.key}'s on every day "
            "of this schedule (summer time): give local times",
        )
        return None
    return at


def _report_left_aside(ctx: _Context) -> None:
    for warning in ctx.source.left_aside(ctx.tables):
        ctx.warn(warning)
