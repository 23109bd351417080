"""Opening hours: across midnight, on daylight-saving change days, on closure dates, in seasons."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.schedule import (
    MonthDay,
    Schedule,
    Season,
    Slot,
    format_hours,
    intervals,
    is_open,
    parse_date,
    parse_hours,
    status,
)

ROME = ZoneInfo("Europe/Rome")
NIGHT_SHELTER = Schedule(parse_hours("daily 20:00-08:00"))


def rome(*args: int) -> datetime:
    return datetime(*args, tzinfo=ROME)  # type: ignore[misc]


def test_a_night_shelter_is_open_past_midnight_and_closed_in_the_afternoon() -> None:
    assert is_open(NIGHT_SHELTER, rome(2026, 1, 14, 23, 0), ROME)
    assert is_open(NIGHT_SHELTER, rome(2026, 1, 15, 3, 0), ROME)
    assert not is_open(NIGHT_SHELTER, rome(2026, 1, 15, 8, 0), ROME)
    later = status(NIGHT_SHELTER, rome(2026, 1, 15, 15, 0), ROME)
    assert not later.is_open and later.opens_at == rome(2026, 1, 15, 20, 0)


def test_saturday_night_slot_runs_into_sunday_morning_only() -> None:
    schedule = Schedule(parse_hours("sat 22:00-06:00"))
    assert is_open(schedule, rome(2026, 5, 17, 5, 59), ROME)  # Sunday early
    assert not is_open(schedule, rome(2026, 5, 18, 5, 0), ROME)  # Monday early


def test_spring_forward_night_is_one_hour_shorter() -> None:
    # 29 March 2026: clocks go from 02:00 to 03:00 in Italy.
    night = next(i for i in intervals(NIGHT_SHELTER, date(2026, 3, 28), date(2026, 3, 28), ROME))
    assert night.end - night.start == timedelta(hours=11)
    assert is_open(NIGHT_SHELTER, rome(2026, 3, 29, 3, 30), ROME)
    closes = status(NIGHT_SHELTER, rome(2026, 3, 29, 1, 0), ROME).closes_at
    assert closes is not None and (closes.hour, closes.minute) == (8, 0)


def test_fall_back_night_is_one_hour_longer_and_the_repeated_hour_is_open() -> None:
    # 25 October 2026: clocks go from 03:00 back to 02:00.
    night = next(i for i in intervals(NIGHT_SHELTER, date(2026, 10, 24), date(2026, 10, 24), ROME))
    assert night.end - night.start == timedelta(hours=13)
    first = datetime(2026, 10, 25, 2, 30, tzinfo=ROME)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ROME)
    assert is_open(NIGHT_SHELTER, first, ROME) and is_open(NIGHT_SHELTER, second, ROME)


def test_a_slot_at_a_time_that_does_not_exist_still_opens() -> None:
    schedule = Schedule(parse_hours("sun 02:30-04:00"))
    assert is_open(schedule, rome(2026, 3, 29, 3, 45), ROME)


def test_a_closure_cancels_the_night_that_starts_that_day_not_the_one_before() -> None:
    schedule = Schedule(NIGHT_SHELTER.slots, frozenset({date(2026, 12, 25)}))
    assert is_open(schedule, rome(2026, 12, 25, 6, 0), ROME)  # the night of the 24th
    assert not is_open(schedule, rome(2026, 12, 25, 21, 0), ROME)
    assert status(schedule, rome(2026, 12, 25, 21, 0), ROME).opens_at == rome(2026, 12, 26, 20, 0)


def test_winter_beds_open_only_in_their_season_over_new_year() -> None:
    winter = Season(MonthDay(11, 15), MonthDay(3, 31))
    schedule = Schedule(parse_hours("daily 19:00-08:00", winter))
    assert is_open(schedule, rome(2027, 1, 1, 23, 0), ROME)
    assert is_open(schedule, rome(2027, 4, 1, 7, 0), ROME)  # the night of 31 March
    assert not is_open(schedule, rome(2027, 4, 1, 23, 0), ROME)
    summer = status(schedule, rome(2027, 7, 1, 12, 0), ROME)
    assert summer.opens_at == rome(2027, 11, 15, 19, 0)


def test_touching_slots_read_as_one_opening() -> None:
    schedule = Schedule(parse_hours("daily 08:00-14:00 14:00-20:00"))
    assert status(schedule, rome(2026, 6, 1, 9, 0), ROME).closes_at == rome(2026, 6, 1, 20, 0)


def test_always_open_and_never_open() -> None:
    always = Schedule(parse_hours("daily 00:00-24:00"))
    assert status(always, rome(2026, 6, 1, 3, 0), ROME, horizon_days=30).is_open
    assert status(Schedule(), rome(2026, 6, 1, 3, 0), ROME).opens_at is None


@pytest.mark.parametrize(
    "text",
    ["mon-fri 9-12", "funday 09:00-10:00", "mon", "", "mon 25:00-26:00", "mon 08:00_09:00"],
)
def test_unreadable_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


def test_dates_typed_by_operators() -> None:
    today = date(2026, 12, 30)
    assert parse_date("25/12", today) == date(2027, 12, 25)
    assert parse_date("31/12", today) == date(2026, 12, 31)
    assert parse_date("2026-12-25", today) == date(2026, 12, 25)
    with pytest.raises(ValueError):
        parse_date("31/02", today)


# ---- properties ------------------------------------------------------------------------------

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
slots = st.builds(Slot, st.integers(0, 6), times, times)
schedules = st.builds(
    Schedule,
    st.lists(slots, max_size=6).map(tuple),
    st.frozensets(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=5),
)
instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
zones = st.sampled_from([ROME, ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")])


@settings(max_examples=150, deadline=None)
@given(schedules, instants, zones)
def test_closed_means_not_open_until_the_announced_opening(
    schedule: Schedule, at: datetime, zone: ZoneInfo
) -> None:
    now = status(schedule, at, zone, horizon_days=30)
    if now.is_open:
        assert now.closes_at is not None and now.closes_at > at
        just_before = now.closes_at - timedelta(minutes=1)
        assert is_open(schedule, max(at, just_before), zone)
        return
    if now.opens_at is None:
        return
    assert now.opens_at > at
    assert is_open(schedule, now.opens_at, zone)
    middle = at + (now.opens_at - at) / 2
    assert not is_open(schedule, middle, zone)


@settings(max_examples=150, deadline=None)
@given(schedules, instants, zones)
def test_open_exactly_when_inside_a_slot_interval(
    schedule: Schedule, at: datetime, zone: ZoneInfo
) -> None:
    local_day = at.astimezone(zone).date()
    inside = any(
        i.contains(at) for i in intervals(schedule, local_day - timedelta(days=1), local_day, zone)
    )
    assert is_open(schedule, at, zone) == inside


@settings(max_examples=100, deadline=None)
@given(schedules, instants)
def test_a_closure_date_never_starts_an_opening(schedule: Schedule, at: datetime) -> None:
    for interval in intervals(schedule, date(2026, 1, 1), date(2026, 1, 10), ROME):
        assert interval.start.astimezone(ROME).date() not in schedule.closures


@settings(max_examples=100, deadline=None)
@given(st.lists(slots, min_size=1, max_size=8))
def test_formatted_hours_parse_back_to_the_same_slots(some: list[Slot]) -> None:
    assert set(parse_hours(format_hours(some))) == set(some)
