"""A city's HSDS 3.0 tables are read with their meaning, or refused; nothing is left in silence.

The files here are written in the shape of the specification's own example package (its
columns, its time formats), with Brescia's data: a person must never be sent to a closed door
because a status, a schedule's dates or its frequency were misread.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from models.directory import localized, nearest, service_by_key, services_in
from models.directory_io import DirectoryFileError, import_directory, read_directory
from models.schedule import format_hours, is_open
from tests.directory_helpers import ROME, STATION

ORG = "d9d5e0f5-d3ce-4f73-9a2f-4dd0ecc6c610"
LOC = "3a19ff88-4620-4d17-9830-ac1d859eb5d5"
SERVICE = "ac148810-d857-441c-9679-408f346de14b"
TODAY = date(2026, 12, 1)

ORGANIZATIONS = (
    "id,name,alternate_name,description,email,website\n"
    f"{ORG},Caritas,Caritas BS,Diocesan charity,info@example.org,http://example.org\n"
)
LOCATIONS = (
    "id,location_type,url,organization_id,name,alternate_name,description,transportation,"
    "latitude,longitude\n"
    f"{LOC},physical,,{ORG},Mensa Via Moretto,,,Bus 1,45.5360,10.2140\n"
)
SERVICES_HEADER = (
    "id,organization_id,program_id,name,alternate_name,description,url,email,status,"
    "interpretation_services,application_process,fees_description,eligibility_description,"
    "category\n"
)
SCHEDULES_HEADER = (
    "id,service_id,location_id,service_at_location_id,valid_from,valid_to,dtstart,timezone,"
    "until,count,wkst,freq,interval,byday,byweekno,bymonthday,byyearday,description,"
    "opens_at,closes_at\n"
)


def service_row(status: str = "active", **texts: str) -> str:
    values = {
        "name": "Mensa serale",
        "description": "Cena calda",
        "application_process": "Presentarsi alla porta",
        "fees_description": "",
        "eligibility_description": "Maggiorenni",
    } | texts
    return (
        f"{SERVICE},{ORG},,{values['name']},,{values['description']},,,{status},,"
        f"{values['application_process']},{values['fees_description']},"
        f"{values['eligibility_description']},meals\n"
    )


def schedule_row(
    byday: str = "MO,TU,WE,TH,FR",
    opens: str = "19:00:00",
    closes: str = "21:00:00",
    *,
    freq: str = "WEEKLY",
    interval: str = "1",
    valid_from: str = "",
    valid_to: str = "",
    until: str = "",
    count: str = "",
) -> str:
    return (
        f"s1,{SERVICE},,,{valid_from},{valid_to},,,{until},{count},MO,{freq},{interval},"
        f'"{byday}",,,,Dinner,{opens},{closes}\n'
    )


def hsds_folder(tmp_path: Path, **tables: str) -> Path:
    folder = tmp_path / "hsds"
    folder.mkdir(exist_ok=True)
    defaults = {
        "organizations": ORGANIZATIONS,
        "locations": LOCATIONS,
        "services": SERVICES_HEADER + service_row(),
        "service_at_location": f"id,service_id,location_id,description\nsal1,{SERVICE},{LOC},\n",
        "schedules": SCHEDULES_HEADER + schedule_row(),
    }
    for name, text in (defaults | tables).items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def read(folder: Path):
    return read_directory(folder, ROME, TODAY)


def refusals(folder: Path) -> list[str]:
    with pytest.raises(DirectoryFileError) as caught:
        read(folder)
    return caught.value.problems


async def imported(bot, folder: Path):
    directory = read(folder)
    async with bot.session() as session:
        await import_directory(session, directory)
        await session.commit()
    return directory


async def test_the_specifications_shape_imports_with_its_standard_columns(bot, tmp_path):
    """10:00:00 times, website and location_type columns, no address: all read."""
    await imported(bot, hsds_folder(tmp_path))
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None and mensa.active
        assert mensa.organization and mensa.organization.url == "http://example.org"
        assert mensa.location and mensa.location.name == "Mensa Via Moretto"
        monday_evening = mensa.schedule()
        from datetime import datetime

        assert is_open(monday_evening, datetime(2026, 12, 7, 20, 0, tzinfo=ROME), ROME)
        assert not is_open(monday_evening, datetime(2026, 12, 7, 22, 0, tzinfo=ROME), ROME)


@pytest.mark.parametrize("status", ["inactive", "defunct", "temporarily closed"])
async def test_a_service_that_is_not_active_is_never_offered(bot, tmp_path, status):
    folder = hsds_folder(tmp_path, services=SERVICES_HEADER + service_row(status))
    await imported(bot, folder)
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None and not mensa.active
        assert await services_in(session, ["meals"]) == []
        assert await nearest(session, *STATION, ["meals"]) == []


async def test_an_unknown_status_is_refused_with_file_line_and_column(tmp_path):
    folder = hsds_folder(tmp_path, services=SERVICES_HEADER + service_row("maybe"))
    assert any(p.startswith("services.csv line 2: status") for p in refusals(folder))


async def test_eligibility_description_and_unsuffixed_texts_are_italian_texts(bot, tmp_path):
    await imported(bot, hsds_folder(tmp_path))
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None
        assert mensa.eligibility == {"it": "Maggiorenni"}
        assert mensa.descriptions == {"it": "Cena calda"}
        assert mensa.application_process == {"it": "Presentarsi alla porta"}
        assert localized(mensa.names, "fr") == "Mensa serale"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (schedule_row(freq="MONTHLY", byday="1MO"), "freq"),
        (schedule_row(interval="2"), "interval"),
        (schedule_row(count="3"), "count"),
        (schedule_row(byday="2MO"), "byday"),
        (schedule_row(opens=""), "opens_at"),
    ],
)
async def test_hours_that_are_not_weekly_are_refused_not_made_weekly(tmp_path, row, column):
    folder = hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + row)
    assert any(p.startswith(f"schedules.csv line 2: {column}") for p in refusals(folder))


async def test_expired_hours_are_left_out_and_said_so(bot, tmp_path):
    folder = hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + schedule_row(valid_to="2025-03-31"))
    directory = await imported(bot, folder)
    assert any("schedules.csv line 2" in w and "already past" in w for w in directory.warnings)
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None and mensa.schedule().always_closed


async def test_hours_valid_until_a_date_close_after_it(bot, tmp_path):
    from datetime import datetime

    row = schedule_row(valid_from="2026-11-15", until="2027-03-31")
    await imported(bot, hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + row))
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None
        schedule = mensa.schedule()
    assert is_open(schedule, datetime(2027, 3, 31, 20, 0, tzinfo=ROME), ROME)
    assert not is_open(schedule, datetime(2027, 4, 5, 20, 0, tzinfo=ROME), ROME)
    assert not is_open(schedule, datetime(2026, 11, 13, 20, 0, tzinfo=ROME), ROME)


@pytest.mark.parametrize("opens", ["19:00", "19:00:00", "19:00+01:00"])
async def test_the_specs_time_formats_are_read_as_brescias_clock(tmp_path, opens):
    """+01:00 is Rome's offset all winter: a winter-only schedule may say so."""
    row = schedule_row(opens=opens, valid_from="2026-12-01", valid_to="2027-02-28")
    directory = read(hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + row))
    assert format_hours(directory.services[0].slots()) == "mon-fri 19:00-21:00"


async def test_a_utc_time_that_moves_with_summer_time_is_refused(tmp_path):
    row = schedule_row(opens="18:00Z", closes="20:00Z")
    problems = refusals(hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + row))
    assert any(p.startswith("schedules.csv line 2: opens_at") for p in problems)


async def test_phones_languages_addresses_and_accessibility_are_taken(bot, tmp_path):
    folder = hsds_folder(
        tmp_path,
        phones=(
            "id,location_id,service_id,organization_id,number,type\n"
            f"p1,,{SERVICE},,+39 030 000 0099,voice\np2,,{SERVICE},,+39 030 000 0098,voice\n"
            f"p3,,,{ORG},+39 030 000 0097,voice\n"
        ),
        languages=f"id,service_id,location_id,name,code\nl1,{SERVICE},,Arabic,ar\n",
        addresses=(
            "id,location_id,attention,address_1,address_2,city,region,state_province,"
            "postal_code,country,address_type\n"
            f"a1,{LOC},,Via Moretto 5,,Brescia,,BS,25122,IT,physical\n"
        ),
        accessibility=f"id,location_id,description,details\nx1,{LOC},Step-free,Ramp left\n",
    )
    directory = await imported(bot, folder)
    assert any("only the first is kept" in w for w in directory.warnings)
    async with bot.session() as session:
        mensa = await service_by_key(session, SERVICE)
        assert mensa is not None and mensa.location and mensa.organization
        assert mensa.phone == "+39 030 000 0099"
        assert mensa.organization.phone == "+39 030 000 0097"
        assert mensa.languages == "ar"
        assert mensa.location.address == "Via Moretto 5, 25122 Brescia, BS"
        where = mensa.location
        assert (where.street, where.city, where.province, where.postal_code, where.country) == (
            "Via Moretto 5",
            "Brescia",
            "BS",
            "25122",
            "IT",
        )
        assert mensa.location.accessibility == "Step-free: Ramp left"


async def test_a_service_at_two_locations_is_found_at_both(bot, tmp_path):
    second = "4b19ff88-4620-4d17-9830-ac1d859eb5d5"
    folder = hsds_folder(
        tmp_path,
        locations=LOCATIONS + f"{second},physical,,{ORG},Mensa Stazione,,,,45.5325,10.2128\n",
        service_at_location=(
            f"id,service_id,location_id,description\nsal1,{SERVICE},{LOC},\n"
            f"sal2,{SERVICE},{second},\n"
        ),
    )
    await imported(bot, folder)
    async with bot.session() as session:
        found = await nearest(session, *STATION, ["meals"])
    assert sorted(n.service.location.name for n in found if n.service.location) == [
        "Mensa Stazione",
        "Mensa Via Moretto",
    ]


async def test_a_location_without_coordinates_is_kept_but_never_near_me(bot, tmp_path):
    no_coordinates = LOCATIONS.replace("45.5360,10.2140", ",")
    directory = await imported(bot, hsds_folder(tmp_path, locations=no_coordinates))
    assert any("locations.csv line 2: no coordinates" in w for w in directory.warnings)
    async with bot.session() as session:
        assert await nearest(session, *STATION, ["meals"]) == []
        assert [s.key for s in await services_in(session, ["meals"])] == [SERVICE]


async def test_tables_and_columns_left_aside_are_all_reported(tmp_path):
    folder = hsds_folder(
        tmp_path,
        funding=f"id,organization_id,service_id,source\nf1,{ORG},,City\n",
        services=SERVICES_HEADER.replace("category", "category,wait_time")
        + service_row().rstrip("\n")
        + ",2 days\n",
    )
    warnings = read(folder).warnings
    assert "funding.csv: table not imported (this directory has no place for it)" in warnings
    assert any(w.startswith("services.csv: columns not imported: wait_time") for w in warnings)


def test_the_cli_says_what_it_left_aside(tmp_path: Path, monkeypatch, capsys):
    from bot.cli import main
    from models.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", url)
    monkeypatch.delenv("HELPCENTER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    folder = hsds_folder(tmp_path, funding=f"id,organization_id,service_id,source\nf1,{ORG},,X\n")
    assert main(["services", "import", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "left aside: funding.csv: table not imported" in out
    assert "imported" in out and "3 created" in out


async def test_another_citys_texts_are_read_in_the_language_given(tmp_path):
    folder = hsds_folder(
        tmp_path,
        services=SERVICES_HEADER
        + service_row(name="Evening meal").replace(",Mensa serale,", ",Evening meal,"),
    )
    service = read_directory(folder, ROME, TODAY, language="en").services[0]
    assert service.name == {"en": "Evening meal"}
    assert service.eligibility == {"en": "Maggiorenni"}


async def test_hours_kept_at_the_services_only_location_are_its_hours(tmp_path):
    """A schedule given by service_at_location_id (not service_id) is not lost."""
    row = schedule_row().replace(f"s1,{SERVICE},,,", "s1,,,sal1,", 1)
    directory = read(hsds_folder(tmp_path, schedules=SCHEDULES_HEADER + row))
    assert format_hours(directory.services[0].slots()) == "mon-fri 19:00-21:00"


async def test_a_schedules_notes_and_link_are_reported_not_dropped(tmp_path):
    header = SCHEDULES_HEADER.replace("closes_at\n", "closes_at,notes,schedule_link\n")
    row = schedule_row().replace("\n", ",Closed at lunch,http://example.org\n")
    warnings = read(hsds_folder(tmp_path, schedules=header + row)).warnings
    assert "schedules.csv: columns not imported: notes, schedule_link" in warnings
