"""Import and export of the directory: YAML, and CSV in HSDS's tabular shape.

The file is checked whole before anything is written: every bad row is reported with its
file and line, and one bad row means nothing is imported. Rows are matched by their ``id``
(the ``key`` column), so importing the same file twice changes nothing. The live count of
free beds is never taken from a file (only the total), because a file is always older than
what shelter staff said tonight.

CSV is a folder of tables, as HSDS's tabular format (:mod:`models.hsds`,
:mod:`models.hsds_export`): ``organizations.csv``, ``locations.csv``, ``services.csv``,
``schedules.csv``, ``attributes.csv``, ``x_translations.csv``, ``x_closures.csv``, ...
JSON is HSDS's JSON form, a ``Page`` of nested services (:mod:`models.hsds_json`), read with
the same rules as the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import clock
from models.directory import (
    Admits,
    Category,
    Closure,
    Fee,
    KnownPlace,
    Location,
    Organization,
    ScheduleSlot,
    Service,
    set_beds,
)
from models.hsds import Reading, read_folder, read_json
from models.hsds_export import write_json, write_package
from models.schedule import MonthDay, Season, Slot, format_hours, parse_hours

TEXT_FIELDS = ("name", "description", "eligibility", "application_process", "notes")
CSV_TABLES = ("organizations", "locations", "services", "schedules", "closures", "places")
BYDAY = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
ROME = ZoneInfo("Europe/Rome")


class DirectoryFileError(Exception):
    """The file cannot be imported; ``problems`` says where and why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---- the shape of a directory file ----------------------------------------------------------


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


class OrganizationIn(_Row):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    url: str | None = None
    email: str | None = None
    phone: str | None = None


class LocationIn(_Row):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=300)
    street: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    province: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    area: str = ""
    # None: a place without coordinates, never among the services near a person.
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    accessibility: str | None = None

    @model_validator(mode="after")
    def _street_and_city_from_the_address(self) -> LocationIn:
        """No parts given: "Via Carducci, Brescia" gives street and city, as migration 0013."""
        if self.street is None and self.city is None and self.address.strip():
            street, comma, city = self.address.rpartition(",")
            if comma and street.strip() and city.strip():
                self.street, self.city = street.strip()[:200], city.strip()[:100]
            else:
                self.street = self.address.strip()[:200]
        return self

    @model_validator(mode="after")
    def _both_coordinates_or_none(self) -> LocationIn:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class HoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: str
    season: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None

    def slots(self) -> tuple[Slot, ...]:
        return tuple(
            replace(slot, valid_from=self.valid_from, valid_to=self.valid_to)
            for slot in parse_hours(self.hours, parse_season(self.season))
        )


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    note: str | None = None


class ServiceIn(_Row):
    category: Category | None  # None: from an HSDS file without our taxonomy, in no menu
    organization: str | None = None
    location: str | None = None
    name: dict[str, str]
    description: dict[str, str] = Field(default_factory=dict)
    eligibility: dict[str, str] = Field(default_factory=dict)
    application_process: dict[str, str] = Field(default_factory=dict)
    notes: dict[str, str] = Field(default_factory=dict)
    admits: Admits = Admits.ALL
    referral_required: bool = False
    documents_required: bool = False
    pets_allowed: bool | None = None
    fee: Fee = Fee.FREE
    fee_note: str | None = None
    languages: list[str] = Field(default_factory=list)
    phone: str | None = None
    email: str | None = None
    url: str | None = None
    active: bool = True
    hours: str | list[HoursIn] = "closed"
    season: str | None = None
    closures: list[ClosureIn] = Field(default_factory=list)
    beds_total: int | None = Field(default=None, ge=0, le=5000)

    @field_validator("name")
    @classmethod
    def _some_name(cls, value: dict[str, str]) -> dict[str, str]:
        if not any(text.strip() for text in value.values()):
            raise ValueError("a name in at least one language is needed")
        return value

    def slots(self) -> tuple[Slot, ...]:
        blocks = (
            [HoursIn(hours=self.hours, season=self.season)]
            if isinstance(self.hours, str)
            else self.hours
        )
        return tuple(sorted({slot for block in blocks for slot in block.slots()}))


class PlaceIn(_Row):
    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


def parse_season(text: str | None) -> Season | None:
    if not text:
        return None
    start, sep, end = text.partition("..")
    if not sep:
        raise ValueError(f"a season looks like 11-15..03-31, not {text!r}")
    return Season(MonthDay.parse(start), MonthDay.parse(end))


def canonical_hours(slots: Iterable[Slot]) -> tuple[str | list[HoursIn], str | None]:
    """One hours text and season when all slots share a season and dates, else blocks."""
    groups: dict[tuple[Season | None, date | None, date | None], list[Slot]] = {}
    for slot in sorted(slots):
        groups.setdefault((slot.season, slot.valid_from, slot.valid_to), []).append(slot)
    if len(groups) <= 1 and all(start is None and end is None for _s, start, end in groups):
        season = next(iter(groups), (None,))[0]
        return format_hours(next(iter(groups.values()), [])), str(season) if season else None
    blocks = [
        HoursIn(
            hours=format_hours(group),
            season=str(season) if season else None,
            valid_from=start,
            valid_to=end,
        )
        for (season, start, end), group in sorted(groups.items(), key=lambda kv: str(kv[0]))
    ]
    return blocks, None


@dataclass(frozen=True)
class BedCount:
    """A shelter's count of tonight's free beds and when its staff gave it."""

    free: int
    updated: datetime


@dataclass
class Directory:
    organizations: list[OrganizationIn] = field(default_factory=list)
    locations: list[LocationIn] = field(default_factory=list)
    services: list[ServiceIn] = field(default_factory=list)
    places: list[PlaceIn] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what an import left aside, and why
    # Exported only (HSDS service_capacity), never imported: a file is older than tonight.
    bed_counts: dict[str, BedCount] = field(default_factory=dict)


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


# ---- reading ---------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line each mapping starts on."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = dict(loader.construct_mapping(node, deep=True))  # type: ignore[arg-type]
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


_SECTIONS: dict[str, type[_Row]] = {
    "organizations": OrganizationIn,
    "locations": LocationIn,
    "services": ServiceIn,
    "places": PlaceIn,
}


def read_yaml(text: str, filename: str = "file") -> Directory:
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise DirectoryFileError([f"{filename}{line}: not valid YAML"]) from None
    if not isinstance(raw, dict):
        raise DirectoryFileError([f"{filename}: expected a mapping with a 'services' list"])
    problems: list[str] = []
    unknown = set(raw) - set(_SECTIONS) - {"__line__", "example_data", "notice"}
    if unknown:
        problems.append(f"{filename}: unknown sections {', '.join(sorted(unknown))}")
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for section in _SECTIONS:
        items = raw.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{filename} line {raw.get('__line__', 1)}: {section} must be a list")
            continue
        rows[section] = [
            (
                f"{filename} line {item.get('__line__', '?') if isinstance(item, dict) else '?'}",
                _strip_lines(item) if isinstance(item, dict) else {"__not_a_mapping__": item},
            )
            for item in items
        ]
    return _validate(rows, problems)


def _validate(rows: dict[str, list[tuple[str, dict[str, Any]]]], problems: list[str]) -> Directory:
    directory = Directory()
    for section, model in _SECTIONS.items():
        seen: set[str] = set()
        for where, data in rows.get(section, []):
            try:
                item = model.model_validate(data)
                if isinstance(item, ServiceIn):
                    item.slots()  # hours and seasons parse
            except ValidationError as exc:
                problems.append(f"{where}: {_describe(exc)}")
                continue
            except ValueError as exc:
                problems.append(f"{where}: hours: {exc}")
                continue
            if item.id in seen:
                problems.append(f"{where}: duplicate id {item.id!r} in {section}")
                continue
            seen.add(item.id)
            getattr(directory, section).append(item)
    if problems:
        raise DirectoryFileError(problems)
    return directory


def read_csv_folder(
    folder: Path, zone: ZoneInfo = ROME, today: date | None = None, language: str = "it"
) -> Directory:
    """A folder of HSDS tables (:mod:`models.hsds`); warnings say what was left aside."""
    reading = read_folder(folder, zone, today or clock.now().astimezone(zone).date(), language)
    return _from_hsds(reading)


def read_json_file(
    path: Path, zone: ZoneInfo = ROME, today: date | None = None, language: str = "it"
) -> Directory:
    """HSDS's JSON form (a ``Page`` of services, or one record), read as the tables are."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryFileError([f"{path}: cannot read: {exc}"]) from None
    except json.JSONDecodeError as exc:
        raise DirectoryFileError([f"{path.name} line {exc.lineno}: not valid JSON"]) from None
    today = today or clock.now().astimezone(zone).date()
    return _from_hsds(read_json(path.name, document, zone, today, language))


def _from_hsds(reading: Reading) -> Directory:
    directory = _validate(reading.rows, reading.problems)
    for service in directory.services:  # one block per table row read; the canonical shape
        service.hours, service.season = canonical_hours(service.slots())
    directory.warnings = reading.warnings
    return directory


def read_directory(
    path: Path, zone: ZoneInfo = ROME, today: date | None = None, language: str = "it"
) -> Directory:
    """A YAML file (``.yaml``/``.yml``), a folder of HSDS CSV tables or an HSDS JSON file
    (``.json``); the HSDS texts without a language are in ``language``."""
    if path.is_dir():
        return read_csv_folder(path, zone, today, language)
    if path.suffix.lower() == ".json":
        return read_json_file(path, zone, today, language)
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DirectoryFileError([f"{path}: cannot read: {exc}"]) from None
        return read_yaml(text, path.name)
    raise DirectoryFileError([f"{path}: give a .yaml or .json file, or a folder of CSV files"])


# ---- applying --------------------------------------------------------------------------------


def _assign(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _upsert(
    session: AsyncSession, existing: dict[str, Any], model: Any, key: str, values: dict[str, Any]
) -> tuple[bool, bool]:
    """Create or update the row with ``key``; (created, changed)."""
    row = existing.get(key)
    if row is None:
        row = existing[key] = model(key=key)
        session.add(row)
        _assign(row, values)
        return True, True
    return False, _assign(row, values)


async def _by_key(session: AsyncSession, model: Any) -> dict[str, Any]:
    return {row.key: row for row in await session.scalars(select(model))}


async def import_directory(session: AsyncSession, directory: Directory) -> ImportSummary:
    """Write the directory in the caller's transaction (the caller commits or rolls back)."""
    summary = ImportSummary()
    organizations = await _by_key(session, Organization)
    locations = await _by_key(session, Location)
    problems = [
        f"service {s.id!r}: unknown {kind} {ref!r}"
        for s in directory.services
        for kind, ref, known in (
            (
                "organization",
                s.organization,
                {o.id for o in directory.organizations} | set(organizations),
            ),
            ("location", s.location, {loc.id for loc in directory.locations} | set(locations)),
        )
        if ref is not None and ref not in known
    ]
    if problems:
        raise DirectoryFileError(problems)

    def count(created: bool, changed: bool) -> None:
        if created:
            summary.created += 1
        elif changed:
            summary.updated += 1
        else:
            summary.unchanged += 1

    for org in directory.organizations:
        count(
            *_upsert(session, organizations, Organization, org.id, org.model_dump(exclude={"id"}))
        )
    for loc in directory.locations:
        count(*_upsert(session, locations, Location, loc.id, loc.model_dump(exclude={"id"})))
    places = await _by_key(session, KnownPlace)
    for place in directory.places:
        values = place.model_dump(exclude={"id"}) | {"aliases": "|".join(place.aliases)}
        count(*_upsert(session, places, KnownPlace, place.id, values))
    await session.flush()
    services = await _by_key(session, Service)
    for item in directory.services:
        row = services.get(item.id)
        created = row is None
        if row is None:
            row = Service(key=item.id, slots=[], closures=[], beds=None)
            session.add(row)
        changed = _assign(row, _service_values(item, organizations, locations))
        changed |= _set_slots(row, item.slots())
        changed |= _set_closures(row, item.closures)
        await session.flush()
        if item.beds_total is not None and (row.beds is None or row.beds.total != item.beds_total):
            await set_beds(session, row, total=item.beds_total, by=None, source="import")
            changed = True
        count(created, changed)
    await session.flush()
    return summary


def _service_values(
    item: ServiceIn, organizations: dict[str, Organization], locations: dict[str, Location]
) -> dict[str, Any]:
    return {
        "category": item.category.value if item.category else "",
        "organization_id": organizations[item.organization].id if item.organization else None,
        "location_id": locations[item.location].id if item.location else None,
        "names": dict(item.name),
        "descriptions": dict(item.description),
        "eligibility": dict(item.eligibility),
        "application_process": dict(item.application_process),
        "notes": dict(item.notes),
        "admits": item.admits.value,
        "referral_required": item.referral_required,
        "documents_required": item.documents_required,
        "pets_allowed": item.pets_allowed,
        "fee": item.fee.value,
        "fee_note": item.fee_note,
        "languages": ",".join(item.languages),
        "phone": item.phone,
        "email": item.email,
        "url": item.url,
        "active": item.active,
    }


def _set_slots(row: Service, slots: tuple[Slot, ...]) -> bool:
    if tuple(sorted(s.as_slot() for s in row.slots)) == slots:
        return False
    row.slots = [ScheduleSlot.from_slot(slot) for slot in slots]
    return True


def _set_closures(row: Service, closures: list[ClosureIn]) -> bool:
    wanted = sorted((c.date, c.note) for c in closures)
    if sorted((c.day, c.note) for c in row.closures) == wanted:
        return False
    row.closures = [Closure(day=day, note=note) for day, note in wanted]
    return True


# ---- exporting -------------------------------------------------------------------------------


def _out(schema: Any, row: Any, **given: Any) -> Any:
    """A file row from a table row: same field names, ``key`` as ``id``."""
    values = {name: getattr(row, name) for name in schema.model_fields if name not in given}
    return schema(**(values | given))


async def export_directory(session: AsyncSession) -> Directory:
    directory = Directory()
    for org in await session.scalars(select(Organization).order_by(Organization.key)):
        directory.organizations.append(_out(OrganizationIn, org, id=org.key))
    for loc in await session.scalars(select(Location).order_by(Location.key)):
        directory.locations.append(_out(LocationIn, loc, id=loc.key))
    for place in await session.scalars(select(KnownPlace).order_by(KnownPlace.key)):
        aliases = [a for a in place.aliases.split("|") if a]
        directory.places.append(_out(PlaceIn, place, id=place.key, aliases=aliases))
    for service in await session.scalars(select(Service).order_by(Service.key)):
        directory.services.append(_service_out(service))
        beds = service.beds
        if beds is not None and beds.free is not None and beds.updated_at is not None:
            directory.bed_counts[service.key] = BedCount(beds.free, beds.updated_at)
    return directory


def _service_out(service: Service) -> ServiceIn:
    hours, season = canonical_hours(s.as_slot() for s in service.slots)
    return ServiceIn(
        id=service.key,
        category=Category(service.category) if service.category else None,
        organization=service.organization.key if service.organization else None,
        location=service.location.key if service.location else None,
        name=service.names,
        description=service.descriptions,
        eligibility=service.eligibility,
        application_process=service.application_process,
        notes=service.notes,
        admits=Admits(service.admits),
        referral_required=service.referral_required,
        documents_required=service.documents_required,
        pets_allowed=service.pets_allowed,
        fee=Fee(service.fee),
        fee_note=service.fee_note,
        languages=[x for x in service.languages.split(",") if x],
        phone=service.phone,
        email=service.email,
        url=service.url,
        active=service.active,
        hours=hours,
        season=season,
        closures=[ClosureIn(date=c.day, note=c.note) for c in service.closures],
        beds_total=service.beds.total if service.beds else None,
    )


def to_yaml(directory: Directory) -> str:
    def clean(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
            "id": getattr(model, "id", None)
        }

    data = {
        "organizations": [clean(o) for o in directory.organizations],
        "locations": [clean(loc) for loc in directory.locations],
        "places": [clean(p) for p in directory.places],
        "services": [
            {
                **clean(s),
                "category": s.category.value if s.category else None,
                **{name: _italian_first(getattr(s, name)) for name in TEXT_FIELDS},
            }
            for s in directory.services
        ],
    }
    for service in data["services"]:
        for name in TEXT_FIELDS[1:]:
            if not service[name]:
                del service[name]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def _italian_first(texts: dict[str, str]) -> dict[str, str]:
    """Texts with the directory's language first, the others in their order.

    One order whatever the database (PostgreSQL's JSONB keeps keys in an order of its own),
    and the order in which HSDS tables are read back (the unsuffixed column is Italian).
    """
    return dict(sorted(texts.items(), key=lambda item: item[0] != "it"))


def write_csv_folder(
    directory: Directory, folder: Path, zone: str = ROME.key, provider: str | None = None
) -> None:
    """An HSDS 3.0 tabular data package (:mod:`models.hsds_export`).

    Raises :class:`models.hsds_export.IncompletePackageError` for services without an
    organization, unless ``provider`` names the organization to give them.
    """
    write_package(directory, folder, zone, provider)


def write_directory(
    directory: Directory, path: Path, zone: str = ROME.key, provider: str | None = None
) -> None:
    """YAML (``.yaml``/``.yml``), HSDS JSON (``.json``) or an HSDS CSV folder (anything else)."""
    if path.suffix.lower() in {".yaml", ".yml"}:
        path.write_text(to_yaml(directory), encoding="utf-8")
    elif path.suffix.lower() == ".json":
        write_json(directory, path)
    else:
        write_csv_folder(directory, path, zone, provider)
