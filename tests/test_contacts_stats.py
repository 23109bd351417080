"""Statistics, charts and exports on a data set whose answers are known."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.charts import bar_chart, read_series, time_chart
from models.accounts import AuditEntry, account_by_telegram_id
from models.base import clock
from models.cases import CaseKind, NewCase, open_case, take_case
from models.contact_export import (
    COLUMNS,
    ExportOptions,
    export_csv,
    export_xlsx,
    read_csv,
    read_xlsx,
)
from models.roles import Role
from models.stats import compute_stats
from tests.cases_helpers import ANNA, POLICE
from tests.conftest import BotHarness
from tests.contacts_helpers import MARCH, ROME, seed_march
from tests.directory_helpers import set_local_time

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_march_figures_match_the_known_answers(bot: BotHarness) -> None:
    async with bot.session() as session:
        await seed_march(session)
        await session.commit()
        report = await compute_stats(session, MARCH)

    assert report.contacts == 6
    assert report.anonymous_contacts == 1
    assert report.people == 4
    assert (report.new_people, report.returning_people) == (3, 1)
    assert report.by_need == {"food": 3, "shelter": 2, "hygiene": 1, "health": 1}
    assert report.by_action == {
        "meal_ticket": 2,
        "information": 1,
        "listening": 1,
        "shower": 1,
        "medical_referral": 1,
        "shelter_placement": 1,
    }
    assert report.by_channel == {"street": 3, "desk": 2, "phone": 1}
    assert report.by_nationality == {"africa": 1, "eu": 1, "italian": 1, "unknown": 1}
    assert report.by_gender == {"male": 2, "female": 1, "unknown": 1}
    assert report.by_age_band == {"35-44": 1, "25-34": 1, "65+": 1, "unknown": 1}
    series = dict(report.series)
    assert len(report.series) == 31
    assert {k: v for k, v in series.items() if v} == {
        "01/03": 1,
        "05/03": 1,
        "10/03": 1,
        "15/03": 1,
        "20/03": 1,
        "31/03": 1,
    }
    # No case and no bed count in this data set: zero, not "unknown".
    assert report.urgent is not None and report.urgent.urgent_cases == 0
    assert report.beds is not None and report.beds.capacity == 0


async def test_urgent_figures_are_the_response_times_of_the_periods_urgent_cases(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.grant(POLICE, Role.POLICE)
    await bot.grant(ANNA, Role.OPERATOR)
    stopped = clock.now()
    monkeypatch.setattr(clock, "_now", lambda: stopped)  # time moves only when told to
    set_local_time(2025, 3, 10, 20, 0)
    async with bot.session() as session:
        police = await account_by_telegram_id(session, POLICE)
        anna = await account_by_telegram_id(session, ANNA)
        assert police is not None and anna is not None
        # Five urgent requests in March, taken after 1, 2, 3, 4 and 10 minutes.
        for seconds in (60, 120, 180, 240, 600):
            urgent = NewCase(kind=CaseKind.URGENT, place="Binario 1")
            case = await open_case(
                session, police, urgent, prefix="BS", tz=ROME, first_escalation=timedelta(0)
            )
            clock.advance(seconds)
            assert (await take_case(session, case.id, anna)).won
        await session.commit()
        report = await compute_stats(session, MARCH)
    assert report.urgent is not None
    assert report.urgent.urgent_cases == 5
    assert report.urgent.median_response_seconds == 180
    assert report.urgent.p90_response_seconds == 456.0


async def test_charts_are_png_with_the_series_drawn(bot: BotHarness) -> None:
    async with bot.session() as session:
        await seed_march(session)
        report = await compute_stats(session, MARCH)
    needs_png = bar_chart("Needs", list(report.by_need.items()))
    assert needs_png.startswith(PNG_MAGIC)
    drawn = read_series(needs_png)
    assert drawn["title"] == "Needs"
    assert drawn["series"] == [["food", 3], ["shelter", 2], ["health", 1], ["hygiene", 1]]
    time_png = time_chart("Contacts", report.series)
    assert time_png.startswith(PNG_MAGIC)
    assert sum(v for _, v in read_series(time_png)["series"]) == 6  # type: ignore[union-attr]


async def test_exports_read_back_to_what_the_database_holds(
    bot: BotHarness, tmp_path: Path
) -> None:
    async with bot.session() as session:
        data = await seed_march(session)
        options = ExportOptions(period=MARCH)
        data_bytes, counts = await export_xlsx(session, options, actor=None)
        csv_counts = await export_csv(session, options, tmp_path, actor=None)
        await session.commit()
        exports = await session.scalar(
            select(func.count()).where(AuditEntry.action == "data_exported")
        )
    assert exports == 2
    assert counts == csv_counts
    assert counts["contacts"] == 6 and counts["people"] == 4

    from_csv = read_csv(tmp_path / "contacts.csv")
    from_xlsx = read_xlsx(data_bytes)["contacts"]
    assert from_csv == from_xlsx
    assert [int(row["contact_id"]) for row in from_csv] == data.contact_ids
    first = from_csv[0]
    assert first["local_date"] == "2025-03-01"
    assert first["occurred_at"] == "2025-02-28T23:30:00Z"
    assert first["person_code"] == data.people["p1"].code
    assert first["needs"] == "food;shelter"
    assert first["actions"] == "information;meal_ticket"
    assert first["notes"] == ""  # pseudonymous by default: free notes stay home
    assert from_csv[1]["person_code"] == ""  # the anonymous contact

    people = {row["person_code"]: row for row in read_csv(tmp_path / "people.csv")}
    p1 = people[data.people["p1"].code]
    assert (p1["nationality"], p1["nationality_group"], p1["contacts_in_period"]) == (
        "MA",
        "africa",
        "2",
    )
    assert data.people["p5"].code not in people
    assert list(from_csv[0]) == [c for c, _ in COLUMNS["contacts"]]
    sheets = read_xlsx(data_bytes)
    assert {"contacts", "people", "exchanges", "columns"} <= set(sheets)


async def test_notes_are_exported_only_when_asked(bot: BotHarness, tmp_path: Path) -> None:
    async with bot.session() as session:
        await seed_march(session)
        await export_csv(session, ExportOptions(MARCH, include_notes=True), tmp_path, actor=None)
    rows = read_csv(tmp_path / "contacts.csv")
    assert rows[0]["notes"] == "slept on platform 1"


def test_every_export_column_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "export-columns.md").read_text()
    for table, columns in COLUMNS.items():
        assert f"## {table}" in doc
        for column, _meaning in columns:
            assert f"`{column}`" in doc, column
