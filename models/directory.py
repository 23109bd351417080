"""The low-threshold services directory, modelled on Open Referral's HSDS, and shelter beds.

Organizations run services; a service is offered at a location (address, coordinates,
accessibility) on a weekly schedule with seasons and closure dates (:mod:`models.schedule`).
Names and descriptions are kept per language (``{"it": ..., "en": ...}``). Every service,
location and organization has a stable ``key`` (the id in the import file), so importing the
same file twice changes nothing.

Shelters keep one live bed count (total, free tonight, who and when) and the history of
every change; a count older than ``bed_count_stale_hours`` is shown as unconfirmed.
"""

from __future__ import annotations

import enum
import math
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.accounts import Account, audit
from models.base import Base, BigId, clock
from models.db import rows_affected
from models.roles import Permission, Role, can
from models.schedule import MonthDay, Schedule, Season, Slot

EARTH_RADIUS_M = 6_371_000.0
METRES_PER_DEGREE = 111_320.0


class Category(enum.StrEnum):
    NIGHT_SHELTER = "night_shelter"
    COLD_WEATHER_BEDS = "cold_weather_beds"
    MEALS = "meals"
    SHOWERS = "showers"
    CLOTHING = "clothing"
    HEALTH = "health"
    DAY_CENTER = "day_center"
    LEFT_LUGGAGE = "left_luggage"
    LEGAL = "legal"
    HELP_CENTER = "help_center"


SHELTER_CATEGORIES = frozenset({Category.NIGHT_SHELTER, Category.COLD_WEATHER_BEDS})


class Admits(enum.StrEnum):
    ALL = "all"
    MEN = "men"
    WOMEN = "women"


class Fee(enum.StrEnum):
    FREE = "free"
    SMALL_FEE = "small_fee"


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))


class Location(Base):
    """Where a service is. The (latitude, longitude) index serves the nearest-services box."""

    __tablename__ = "location"
    __table_args__ = (Index("ix_location_lat_lon", "latitude", "longitude"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))  # one line, as shown to people
    # The same address in parts (HSDS ``address``): street and number, town, province,
    # postal code, ISO 3166 country code; each unknown part is None.
    street: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    province: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    area: Mapped[str] = mapped_column(String(100), default="")
    # No coordinates (an HSDS postal or virtual location): never among "near me".
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    accessibility: Mapped[str | None] = mapped_column(Text)


class Service(Base):
    __tablename__ = "service"
    __table_args__ = (Index("ix_service_location_category", "location_id", "category"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organization.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))
    category: Mapped[str] = mapped_column(String(32), index=True)
    names: Mapped[dict[str, Any]]
    descriptions: Mapped[dict[str, Any]]
    eligibility: Mapped[dict[str, Any]]
    application_process: Mapped[dict[str, Any]]
    notes: Mapped[dict[str, Any]]
    # When each language's note was last written from the bot (ISO instants, by language).
    notes_updated: Mapped[dict[str, Any] | None]
    admits: Mapped[str] = mapped_column(String(16), default=Admits.ALL.value)
    referral_required: Mapped[bool] = mapped_column(Boolean, default=False)
    documents_required: Mapped[bool] = mapped_column(Boolean, default=False)
    pets_allowed: Mapped[bool | None] = mapped_column(Boolean)
    fee: Mapped[str] = mapped_column(String(16), default=Fee.FREE.value)
    fee_note: Mapped[str | None] = mapped_column(String(200))
    languages: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    location: Mapped[Location | None] = relationship(lazy="selectin")
    organization: Mapped[Organization | None] = relationship(lazy="selectin")
    slots: Mapped[list[ScheduleSlot]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="ScheduleSlot.id"
    )
    closures: Mapped[list[Closure]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="Closure.day"
    )
    beds: Mapped[ShelterBeds | None] = relationship(lazy="selectin", cascade="all, delete-orphan")

    @property
    def is_shelter(self) -> bool:
        return self.category in SHELTER_CATEGORIES

    def name_in(self, language: str) -> str:
        return localized(self.names, language) or self.key

    def schedule(self) -> Schedule:
        return Schedule(
            slots=tuple(slot.as_slot() for slot in self.slots),
            closures=frozenset(c.day for c in self.closures),
        )


class ScheduleSlot(Base):
    """HSDS ``schedule`` row, weekly: opens on ``weekday`` (0 = Monday), maybe in a season."""

    __tablename__ = "schedule_slot"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(Integer)
    opens: Mapped[str] = mapped_column(String(5))  # HH:MM local time
    closes: Mapped[str] = mapped_column(String(5))
    season_start: Mapped[str | None] = mapped_column(String(5))  # MM-DD
    season_end: Mapped[str | None] = mapped_column(String(5))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    def as_slot(self) -> Slot:
        season = None
        if self.season_start and self.season_end:
            season = Season(MonthDay.parse(self.season_start), MonthDay.parse(self.season_end))
        return Slot(
            self.weekday,
            time.fromisoformat(self.opens),
            time.fromisoformat(self.closes),
            season,
            self.valid_from,
            self.valid_to,
        )

    @classmethod
    def from_slot(cls, slot: Slot) -> ScheduleSlot:
        return cls(
            weekday=slot.weekday,
            opens=f"{slot.opens:%H:%M}",
            closes=f"{slot.closes:%H:%M}",
            season_start=str(slot.season.start) if slot.season else None,
            season_end=str(slot.season.end) if slot.season else None,
            valid_from=slot.valid_from,
            valid_to=slot.valid_to,
        )


class Closure(Base):
    """A date on which the service does not open (holidays, strikes, works)."""

    __tablename__ = "service_closure"
    __table_args__ = (UniqueConstraint("service_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(200))


class ShelterBeds(Base):
    """Tonight's count for one shelter; ``updated_at`` tells how much to trust it."""

    __tablename__ = "shelter_beds"

    service_id: Mapped[int] = mapped_column(
        ForeignKey("service.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(Integer, default=0)
    free: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))


class BedCountChange(Base):
    """Every change of a bed count, kept: who, when, from what to what."""

    __tablename__ = "bed_count_change"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=clock.now)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    total: Mapped[int] = mapped_column(Integer)
    free: Mapped[int | None] = mapped_column(Integer)
    previous_free: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="bot")


class ShelterStaff(Base):
    """Which accounts manage which shelters: the only shelters they may update."""

    __tablename__ = "shelter_staff"
    __table_args__ = (UniqueConstraint("account_id", "service_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(
        ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(default=clock.now)
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))


class ServiceEdit(Base):
    """One edit of a service from the bot (hours, closures, notes): who, when, before/after."""

    __tablename__ = "service_edit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("service.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=clock.now)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(String(32))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)


class KnownPlace(Base):
    """A landmark a person may type instead of sharing a location ("stazione", a square)."""

    __tablename__ = "known_place"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[str] = mapped_column(Text, default="")  # "|"-separated
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)


# ---- texts per language ----------------------------------------------------------------------


def localized(texts: dict[str, Any] | None, language: str, fallback: str = "it") -> str:
    """The text in ``language``, else the fallback language, else English, else any."""
    if not texts:
        return ""
    for code in (language, fallback, "en"):
        if texts.get(code):
            return str(texts[code])
    return str(next(iter(texts.values()), ""))


# ---- distances and the nearest query ---------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (straight line: good enough to walk by)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Nearby:
    service: Service
    distance_m: float


def _box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    dlat = radius_m / METRES_PER_DEGREE
    dlon = radius_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


async def _in_box(
    session: AsyncSession, lat: float, lon: float, radius_m: float, categories: list[str]
) -> list[tuple[float, int]]:
    """(distance, service id) of the services in the box, nearest first; ids only, cheap."""
    south, north, west, east = _box(lat, lon, radius_m)
    query = (
        select(Service.id, Location.latitude, Location.longitude)
        .join(Location, Service.location_id == Location.id)
        .where(
            Location.latitude.between(south, north),
            Location.longitude.between(west, east),
            Service.category.in_(categories),
            Service.active.is_(True),
        )
    )
    rows = (await session.execute(query)).all()
    return sorted(
        (haversine_m(lat, lon, a, b), service_id)
        for service_id, a, b in rows
        if a is not None and b is not None  # the box already leaves such places out
    )


async def nearest(
    session: AsyncSession,
    lat: float,
    lon: float,
    categories: list[str],
    *,
    limit: int = 5,
    max_distance_m: float = 25_000,
    start_radius_m: float = 400,
) -> list[Nearby]:
    """The ``limit`` nearest active services of ``categories`` within ``max_distance_m``.

    A bounding box on the indexed (latitude, longitude) columns picks candidates, exact
    haversine distances order them. The box doubles until it holds ``limit`` services; since a
    box only guarantees the circle inscribed in it, if the ``limit``-th candidate lies farther
    than the box's half-side, one more query with that radius makes the answer exact. Only
    ids and coordinates are read while searching; the few services found are loaded at the end.
    """
    radius = min(start_radius_m, max_distance_m)
    while True:
        found = await _in_box(session, lat, lon, radius, categories)
        if len(found) >= limit or radius >= max_distance_m:
            break
        radius = min(radius * 2, max_distance_m)
    if len(found) >= limit and found[limit - 1][0] > radius:
        radius = min(found[limit - 1][0], max_distance_m)
        found = await _in_box(session, lat, lon, radius, categories)
    chosen = [(d, sid) for d, sid in found if d <= max_distance_m][:limit]
    if not chosen:
        return []
    services = {
        s.id: s
        for s in await session.scalars(
            select(Service).where(Service.id.in_([sid for _d, sid in chosen]))
        )
    }
    return [Nearby(services[sid], d) for d, sid in chosen]


# ---- lookups ---------------------------------------------------------------------------------


async def services_in(session: AsyncSession, categories: list[str]) -> list[Service]:
    query = (
        select(Service)
        .where(Service.category.in_(categories), Service.active.is_(True))
        .order_by(Service.key)
    )
    return list(await session.scalars(query))


def by_area(services: list[Service]) -> dict[str, list[Service]]:
    areas: dict[str, list[Service]] = {}
    for service in services:
        area = service.location.area if service.location and service.location.area else "-"
        areas.setdefault(area, []).append(service)
    return dict(sorted(areas.items()))


async def service_by_id(session: AsyncSession, service_id: int) -> Service | None:
    return await session.get(Service, service_id)


async def service_by_key(session: AsyncSession, key: str) -> Service | None:
    return await session.scalar(select(Service).where(Service.key == key))


async def help_center(session: AsyncSession) -> Service | None:
    query = (
        select(Service)
        .where(Service.category == Category.HELP_CENTER.value, Service.active.is_(True))
        .order_by(Service.id)
        .limit(1)
    )
    return await session.scalar(query)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(ch if ch.isalnum() else " " for ch in plain).split())


@dataclass(frozen=True)
class Place:
    name: str
    latitude: float
    longitude: float


async def resolve_place(session: AsyncSession, text: str) -> Place | None:
    """A typed place name against known places, then services' locations (names, streets).

    An exact name or alias wins over a partial one; ties go to the shortest name.
    """
    wanted = _fold(text)
    if len(wanted) < 3:
        return None
    candidates: list[tuple[str, Place]] = []
    for place in await session.scalars(select(KnownPlace)):
        target = Place(place.name, place.latitude, place.longitude)
        for label in [place.name, *place.aliases.split("|")]:
            if label.strip():
                candidates.append((_fold(label), target))
    for location in await session.scalars(select(Location)):
        if location.latitude is None or location.longitude is None:
            continue
        target = Place(location.name, location.latitude, location.longitude)
        candidates.append((_fold(location.name), target))
        candidates.append((_fold(location.address), target))
    exact = [p for label, p in candidates if label == wanted]
    if exact:
        return exact[0]
    partial = sorted(
        ((len(label), p) for label, p in candidates if wanted in label or label in wanted),
        key=lambda pair: pair[0],
    )
    return partial[0][1] if partial else None


# ---- shelter beds ----------------------------------------------------------------------------


class Freshness(enum.StrEnum):
    FRESH = "fresh"
    UNCONFIRMED = "unconfirmed"
    UNKNOWN = "unknown"


def freshness(beds: ShelterBeds | None, now: datetime, stale_hours: float) -> Freshness:
    if beds is None or beds.free is None or beds.updated_at is None:
        return Freshness.UNKNOWN
    if now - beds.updated_at > timedelta(hours=stale_hours):
        return Freshness.UNCONFIRMED
    return Freshness.FRESH


async def shelters(session: AsyncSession) -> list[Service]:
    return await services_in(session, sorted(SHELTER_CATEGORIES))


async def shelters_of(session: AsyncSession, account: Account) -> list[Service]:
    """The shelters an account may update: staff of the Help Center all, shelter staff theirs."""
    if account.role in {Role.OPERATOR, Role.COORDINATOR, Role.ADMIN}:
        return await shelters(session)
    if not can(account.role, Permission.UPDATE_BEDS):
        return []
    query = (
        select(Service)
        .join(ShelterStaff, ShelterStaff.service_id == Service.id)
        .where(ShelterStaff.account_id == account.id)
        .order_by(Service.key)
    )
    return list(await session.scalars(query))


async def may_update_beds(session: AsyncSession, account: Account, service: Service) -> bool:
    return service.is_shelter and any(
        s.id == service.id for s in await shelters_of(session, account)
    )


async def set_beds(
    session: AsyncSession,
    service: Service,
    *,
    free: int | None = None,
    total: int | None = None,
    by: Account | None,
    source: str = "bot",
) -> ShelterBeds:
    """Set tonight's free beds (clamped to 0..total) and/or the total; history kept.

    Setting the same number again still counts as a confirmation: ``updated_at`` moves on.
    """
    beds = service.beds
    if beds is None:
        beds = ShelterBeds(service_id=service.id, total=0, free=None)
        session.add(beds)
        service.beds = beds
    previous = beds.free
    if total is not None:
        beds.total = max(total, 0)
    if free is not None:
        beds.free = max(0, min(free, beds.total)) if beds.total else max(free, 0)
        beds.updated_at = clock.now()
        beds.updated_by = by.id if by else None
    elif beds.free is not None and beds.total and beds.free > beds.total:
        beds.free = beds.total
    session.add(
        BedCountChange(
            service_id=service.id,
            at=clock.now(),
            by_id=by.id if by else None,
            total=beds.total,
            free=beds.free,
            previous_free=previous,
            source=source,
        )
    )
    return beds


async def bed_history(session: AsyncSession, service: Service) -> list[BedCountChange]:
    query = (
        select(BedCountChange)
        .where(BedCountChange.service_id == service.id)
        .order_by(BedCountChange.id)
    )
    return list(await session.scalars(query))


async def assign_staff(
    session: AsyncSession, account: Account, service: Service, *, by: Account | None
) -> bool:
    """Make ``account`` staff of ``service``; False if it already was."""
    existing = await session.scalar(
        select(ShelterStaff).where(
            ShelterStaff.account_id == account.id, ShelterStaff.service_id == service.id
        )
    )
    if existing is not None:
        return False
    session.add(
        ShelterStaff(
            account_id=account.id,
            service_id=service.id,
            assigned_at=clock.now(),
            assigned_by=by.id if by else None,
        )
    )
    audit(
        session,
        by,
        "shelter_staff_assigned",
        subject_type="service",
        subject_id=service.id,
        detail=f"account {account.id}",
    )
    return True


async def unassign_staff(
    session: AsyncSession, account: Account, service: Service, *, by: Account | None
) -> bool:
    result = await session.execute(
        delete(ShelterStaff).where(
            ShelterStaff.account_id == account.id, ShelterStaff.service_id == service.id
        )
    )
    removed = rows_affected(result) > 0
    if removed:
        audit(
            session,
            by,
            "shelter_staff_removed",
            subject_type="service",
            subject_id=service.id,
            detail=f"account {account.id}",
        )
    return removed


async def staff_of(session: AsyncSession, service: Service) -> list[Account]:
    query = (
        select(Account)
        .join(ShelterStaff, ShelterStaff.account_id == Account.id)
        .where(ShelterStaff.service_id == service.id)
        .order_by(Account.id)
    )
    return list(await session.scalars(query))


async def staff_with_stale_counts(
    session: AsyncSession, since: datetime
) -> list[tuple[Account, list[Service]]]:
    """Each shelter-staff account with its shelters whose count was not updated since ``since``."""
    query = (
        select(Account, Service)
        .join(ShelterStaff, ShelterStaff.account_id == Account.id)
        .join(Service, ShelterStaff.service_id == Service.id)
        .where(Service.active.is_(True))
        .order_by(Account.id, Service.key)
    )
    due: dict[int, tuple[Account, list[Service]]] = {}
    for account, service in (await session.execute(query)).all():
        beds = service.beds
        if beds is not None and beds.updated_at is not None and beds.updated_at >= since:
            continue
        due.setdefault(account.id, (account, []))[1].append(service)
    return list(due.values())


def local_midnight(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


# ---- edits by operators and coordinators ----------------------------------------------------


def _log_edit(
    session: AsyncSession, service: Service, by: Account, field: str, before: str, after: str
) -> None:
    session.add(
        ServiceEdit(
            service_id=service.id,
            at=clock.now(),
            by_id=by.id,
            field=field,
            before=before,
            after=after,
        )
    )
    service.updated_at = clock.now()
    audit(
        session, by, "service_edited", subject_type="service", subject_id=service.id, detail=field
    )


def _hours_text(service: Service) -> str:
    from models.schedule import format_hours

    return format_hours(s.as_slot() for s in service.slots)


async def set_hours(
    session: AsyncSession, service: Service, slots: tuple[Slot, ...], *, by: Account
) -> None:
    """Replace the weekly hours. A season shared by all old slots is kept on the new ones."""
    seasons = {s.as_slot().season for s in service.slots}
    season = seasons.pop() if len(seasons) == 1 else None
    if season is not None:
        slots = tuple(Slot(s.weekday, s.opens, s.closes, season) for s in slots)
    before = _hours_text(service)
    service.slots = [ScheduleSlot.from_slot(slot) for slot in slots]
    _log_edit(session, service, by, "hours", before, _hours_text(service))


async def add_closure(
    session: AsyncSession, service: Service, on: date, note: str | None, *, by: Account
) -> bool:
    if any(c.day == on for c in service.closures):
        return False
    service.closures.append(Closure(day=on, note=note))
    _log_edit(session, service, by, "closure_added", "", on.isoformat())
    return True


async def remove_closure(session: AsyncSession, service: Service, on: date, *, by: Account) -> bool:
    kept = [c for c in service.closures if c.day != on]
    if len(kept) == len(service.closures):
        return False
    service.closures = kept
    _log_edit(session, service, by, "closure_removed", on.isoformat(), "")
    return True


async def set_notes(
    session: AsyncSession, service: Service, text: str, language: str, *, by: Account
) -> None:
    """The note in ``language`` is written (or removed with ``""``); the other languages'
    notes are kept and, being older now, shown as such (:func:`note_for`)."""
    notes = dict(service.notes or {})
    stamps = dict(service.notes_updated or {})
    before = notes.get(language, "")
    if text:
        notes[language], stamps[language] = text, clock.now().isoformat()
    else:
        notes.pop(language, None)
        stamps.pop(language, None)
    service.notes, service.notes_updated = notes, stamps
    _log_edit(session, service, by, "notes", before, text)


@dataclass(frozen=True)
class Note:
    language: str
    text: str
    older: bool  # a note in another language was written after this one


def notes_of(service: Service) -> list[Note]:
    """Every language's note; older than the newest one: marked."""
    stamps = service.notes_updated or {}
    newest = max(stamps.values(), default=None)
    return [
        Note(language, str(text), newest is not None and stamps.get(language, "") < newest)
        for language, text in (service.notes or {}).items()
        if text
    ]


def note_for(service: Service, language: str, fallback: str = "it") -> Note | None:
    """The note a reader of ``language`` sees (as :func:`localized` picks it), if any."""
    notes = {note.language: note for note in notes_of(service)}
    for code in (language, fallback, "en"):
        if code in notes:
            return notes[code]
    return next(iter(notes.values()), None)
