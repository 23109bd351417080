"""Opening hours as pure logic: weekly slots, seasons, closures, in a real time zone.

A slot belongs to the day it opens on: ``Slot(weekday=4, opens=20:00, closes=08:00)`` is
Friday 20:00 to Saturday 08:00. A slot whose closing time equals its opening time lasts 24
hours. A season (``MonthDay`` to ``MonthDay``, wrapping over New Year, e.g. the winter
cold-emergency plan from 15 November to 31 March) limits the days a slot can open on. A
closure date cancels every slot that would open on that date.

Local times are turned into instants with :mod:`zoneinfo`, each end separately, so a night
slot on a daylight-saving change day is an hour shorter or longer, as the clock on the wall
says. A local time that does not exist (02:30 on the spring change) is read with the offset
before the change, i.e. it falls one hour later on the wall clock; that is the usual reading
and what :mod:`zoneinfo` gives.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import get_day_names

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 400  # a seasonal service closed now may open months later


@dataclass(frozen=True, order=True)
class MonthDay:
    month: int
    day: int

    def __post_init__(self) -> None:
        # 2000 is a leap year, so 29 February is a valid season boundary.
        date(2000, self.month, self.day)

    @classmethod
    def parse(cls, text: str) -> MonthDay:
        match = re.fullmatch(r"\s*(\d{1,2})-(\d{1,2})\s*", text)
        if not match:
            raise ValueError(f"not a MM-DD date: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, order=True)
class Season:
    """Recurring every year, both ends included; ``start > end`` wraps over New Year."""

    start: MonthDay
    end: MonthDay

    def contains(self, day: date) -> bool:
        here = MonthDay(day.month, day.day)
        if self.start <= self.end:
            return self.start <= here <= self.end
        return here >= self.start or here <= self.end

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


@dataclass(frozen=True, order=True)
class Slot:
    weekday: int  # 0 = Monday
    opens: time
    closes: time
    season: Season | None = None
    valid_from: date | None = None  # HSDS valid_from: first day the slot may open
    valid_to: date | None = None  # HSDS valid_to / until: last day the slot may open

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday out of range: {self.weekday}")

    def opens_on(self, day: date) -> bool:
        """This slot's weekday, in its season and within its dates of validity."""
        return (
            self.weekday == day.weekday()
            and (self.season is None or self.season.contains(day))
            and (self.valid_from is None or self.valid_from <= day)
            and (self.valid_to is None or day <= self.valid_to)
        )


@dataclass(frozen=True)
class Interval:
    start: datetime  # aware, UTC
    end: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Schedule:
    slots: tuple[Slot, ...] = ()
    closures: frozenset[date] = field(default_factory=frozenset)

    @property
    def always_closed(self) -> bool:
        return not self.slots


@dataclass(frozen=True)
class OpenStatus:
    """What a person needs: open now (until when) or closed (opens when, if ever soon)."""

    is_open: bool
    closes_at: datetime | None = None  # aware, in the schedule's zone
    opens_at: datetime | None = None


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def slot_interval(slot: Slot, day: date, zone: ZoneInfo) -> Interval:
    """The instants a slot covers when it opens on local ``day``."""
    close_day = day if slot.closes > slot.opens else day + timedelta(days=1)
    return Interval(_instant(day, slot.opens, zone), _instant(close_day, slot.closes, zone))


def intervals(schedule: Schedule, first: date, last: date, zone: ZoneInfo) -> Iterator[Interval]:
    """Opening intervals of slots opening on local days ``first``..``last``, in time order."""
    day = first
    while day <= last:
        if day not in schedule.closures:
            todays = [slot for slot in schedule.slots if slot.opens_on(day)]
            for interval in sorted(
                (slot_interval(s, day, zone) for s in todays), key=lambda i: i.start
            ):
                if interval.end > interval.start:
                    yield interval
        day += timedelta(days=1)


def is_open(schedule: Schedule, at: datetime, zone: ZoneInfo) -> bool:
    return status(schedule, at, zone).is_open


def status(
    schedule: Schedule, at: datetime, zone: ZoneInfo, horizon_days: int = SEARCH_DAYS
) -> OpenStatus:
    """Open now and until when (merging touching slots), or the next opening time."""
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    today = at.astimezone(zone).date()
    # A slot opened yesterday may still run (20:00-08:00); look one day back.
    candidates = intervals(
        schedule, today - timedelta(days=1), today + timedelta(horizon_days), zone
    )
    current: Interval | None = None
    for interval in candidates:
        if current is None:
            if interval.contains(at):
                current = interval
            elif interval.start > at:
                return OpenStatus(False, opens_at=interval.start.astimezone(zone))
            continue
        if interval.start <= current.end:  # touching or overlapping: still open
            if interval.end > current.end:
                current = Interval(current.start, interval.end)
            continue
        break
    if current is None:
        return OpenStatus(False)
    return OpenStatus(True, closes_at=current.end.astimezone(zone))


# ---- a small text format for hours, typed by operators and used in the YAML files ------------

_DAY_GROUPS = {
    "daily": range(7),
    "everyday": range(7),
    "weekdays": range(5),
    "weekend": range(5, 7),
}
_TIME_RANGE = re.compile(r"^(\d{1,2})[:.](\d{2})\s*[-–]\s*(\d{1,2})[:.](\d{2})$")


# "closed" in the languages hours are typed in (the word alone: no opening hours at all).
_CLOSED_WORDS = frozenset({"closed", "chiuso", "fermé", "ferme", "مغلق"})


def parse_days(text: str, languages: Iterable[str] = ("en",)) -> list[int]:
    """``mon-fri``, ``sat,sun``, ``daily``, ``weekdays`` → weekday numbers; day names in
    ``languages`` too (``lun-ven``, ``lu-ve``, ``الاثنين-الجمعة``), see :func:`weekday_of`."""
    text = text.strip().lower()
    if text in _DAY_GROUPS:
        return list(_DAY_GROUPS[text])
    days: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            first, last = (weekday_of(p, languages) for p in part.split("-", 1))
            span = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
            days.extend(span)
        else:
            days.append(weekday_of(part, languages))
    return sorted(set(days))


def weekday_of(text: str, languages: Iterable[str] = ("en",)) -> int:
    """The weekday (0 = Monday) a typed day name means, in English or one of ``languages``.

    Babel's wide, abbreviated and short names of each locale count, and so does any prefix of
    two letters or more that only one weekday starts with (``lu``, ``gio``, ``mer``): the usual
    short forms. Case, accents, a final dot and the Arabic article do not matter.
    """
    key = _fold(text)
    names = _day_names(tuple(dict.fromkeys(("en", *languages))))
    exact = {day for name, day in names if name == key}
    if len(exact) == 1:
        return exact.pop()
    starting = {day for name, day in names if len(key) >= 2 and name.startswith(key)}
    if len(starting) == 1:
        return starting.pop()
    raise ValueError(f"unknown day {text.strip()!r} (use mon, tue, wed, thu, fri, sat, sun)")


@functools.cache
def _day_names(languages: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    found = {
        (_fold(name), day)
        for language in languages
        for width in ("wide", "abbreviated", "short")
        for day, name in get_day_names(width, locale=language).items()
    }
    return tuple(sorted(found))


def _fold(text: str) -> str:
    """Lower case without accents, dots or the Arabic article: ``Lunedì`` → ``lunedi``,
    ``dim.`` → ``dim``, ``الأحد`` → ``احد`` (hamza forms of alef read as alef)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).rstrip(".")
    return bare.removeprefix("ال")


def day_label(day: int, language: str | None) -> str:
    """A weekday's short name: the English code, or the reader's abbreviated name."""
    if language is None:
        return WEEKDAYS[day]
    return str(get_day_names("abbreviated", locale=language)[day])


def parse_time_range(text: str) -> tuple[time, time]:
    match = _TIME_RANGE.match(text.strip())
    if not match:
        raise ValueError(f"not a time range like 08:00-12:30: {text.strip()!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2 == 0:
        h2 = 0
    return time(h1, m1), time(h2, m2)


def parse_hours(
    text: str, season: Season | None = None, languages: Iterable[str] = ("en",)
) -> tuple[Slot, ...]:
    """Lines (or ``;``-separated parts) like ``mon-fri 08:00-12:00 14:00-18:00``; day names
    may be written in ``languages`` too (``lun-ven 09:00-13:00``).

    ``closed`` alone means no opening hours at all. Raises ValueError with a readable reason.
    """
    languages = tuple(languages)
    parts = [p.strip() for p in re.split(r"[;\n]", text) if p.strip()]
    if len(parts) == 1 and parts[0].lower() in _CLOSED_WORDS:
        return ()
    if not parts:
        raise ValueError("no hours given")
    slots: list[Slot] = []
    for part in parts:
        days_text, _, ranges_text = part.partition(" ")
        ranges = [r for r in re.split(r"[\s,]+", ranges_text.strip()) if r]
        if not ranges:
            raise ValueError(f"no time range after {days_text!r}")
        for day in parse_days(days_text, languages):
            for time_range in ranges:
                opens, closes = parse_time_range(time_range)
                slots.append(Slot(day, opens, closes, season))
    return tuple(sorted(set(slots)))


def format_hours(slots: Iterable[Slot], language: str | None = None) -> str:
    """The inverse of :func:`parse_hours` (seasons aside): days with equal hours grouped.

    Without ``language``: the English codes the YAML files and the edit log use (``daily``).
    With it: the reader's abbreviated day names (``lun-dom 20:00-08:00``), which
    :func:`parse_hours` reads back in that language; no hours at all is then ``""``.
    """
    by_day: dict[int, list[str]] = {}
    for slot in sorted(slots):
        by_day.setdefault(slot.weekday, []).append(f"{slot.opens:%H:%M}-{slot.closes:%H:%M}")
    if not by_day:
        return "closed" if language is None else ""
    groups: list[tuple[list[int], list[str]]] = []
    for day in range(7):
        ranges = by_day.get(day)
        if ranges is None:
            continue
        if groups and groups[-1][1] == ranges and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], ranges))
    lines = []
    for days, ranges in groups:
        if len(days) == 7 and language is None:
            label = "daily"
        elif len(days) == 1:
            label = day_label(days[0], language)
        else:
            label = f"{day_label(days[0], language)}-{day_label(days[-1], language)}"
        lines.append(f"{label} {' '.join(ranges)}")
    return "; ".join(lines)


def parse_date(text: str, today: date) -> date:
    """``2025-12-25``, ``25/12/2025`` or ``25/12`` (the next such day from ``today``)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    match = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})(?:[/.](\d{4}))?", text)
    if not match:
        raise ValueError(f"not a date: {text!r}")
    day, month = int(match.group(1)), int(match.group(2))
    if match.group(3):
        return date(int(match.group(3)), month, day)
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)
