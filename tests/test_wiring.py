"""The features working together: cases, contacts and the directory, as people notice it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import CommandHandler

from bot.app import features_commands
from bot.contacts_jobs import retention_sweep
from bot.contacts_text import render_stats
from bot.jobs import run_in_transaction
from handlers.case_notify import escalate_due_cases
from models.accounts import Account, AuditEntry, account_by_telegram_id
from models.base import clock
from models.cases import Case, CaseEvent, CaseKind, CaseOutcome, NewCase, open_case, take_case
from models.contact_export import (
    COLUMNS,
    ExportOptions,
    export_csv,
    export_xlsx,
    read_csv,
    read_xlsx,
)
from models.contacts import Channel, Contact, ContactOutcome, ContactSource
from models.db import make_engine, make_sessionmaker
from models.directory import Service, set_beds
from models.outbox import OutboxMessage
from models.privacy import RetentionResult
from models.roles import Permission
from models.stats import Period, compute_stats
from tests.cases_helpers import (
    ANNA,
    BRUNO,
    POLICE,
    PUBLIC,
    VOLUNTEER,
    VOLUNTEER_FR,
    alerts_in,
    deliver_outbox,
    only_case,
    set_language,
    team,
    texts,
)
from tests.conftest import BotHarness
from tests.contacts_helpers import IT, ROME
from tests.directory_helpers import set_local_time
from tests.test_cases_lifecycle import quick_report
from tests.test_cases_urgent import police_ask_for_help


def first_alert_observations() -> float:
    return REGISTRY.get_sample_value("helpcenter_urgent_first_alert_seconds_count") or 0.0


async def test_an_urgent_request_is_timed_once_to_its_first_alert_a_report_is_not(
    bot: BotHarness,
) -> None:
    await team(bot)
    before = first_alert_observations()
    await quick_report(bot, VOLUNTEER)
    assert first_alert_observations() == before, "a report is not an urgent request"

    await police_ask_for_help(bot)
    assert len(alerts_in(bot, ANNA)) == 2  # the report's alert and the urgent one
    assert first_alert_observations() == before + 1  # two operators alerted, timed once


async def test_public_reporters_see_report_in_their_menu_only_when_public_reports_are_on(
    bot: BotHarness,
) -> None:
    await bot.running.publish_default_menus()
    assert "report" not in {c["command"] for c in bot.fake.commands_for(PUBLIC, "it")}
    assert "/report" not in texts(await bot.says(PUBLIC, "/help"))

    bot.settings.public_reports_enabled = True
    await bot.running.publish_default_menus()
    menu = {c["command"] for c in bot.fake.commands_for(PUBLIC, "it")}
    assert "report" in menu and "cases" not in menu and "urgent" not in menu
    help_text = texts(await bot.says(PUBLIC, "/help"))
    assert "/report — " + IT("Report a person who may need help") in help_text
    out = await bot.says(PUBLIC, "/report")
    assert "Dove si trova la persona?" in texts(out)


async def test_every_command_the_bot_answers_is_listed_so_the_role_matrix_covers_it(
    bot: BotHarness,
) -> None:
    """``tests/test_foundation_roles.py`` checks every privileged command in COMMANDS against
    every role; a command handled but not listed would escape it (and the menus)."""
    listed = {c.name: c.permission for commands in features_commands() for c in commands}
    handled = {
        name
        for handlers in bot.application.handlers.values()
        for handler in handlers
        if isinstance(handler, CommandHandler)
        for name in handler.commands
    }
    assert handled <= set(listed), handled - set(listed)
    expected = {
        "report": Permission.REPORT_SIGHTING,
        "urgent": Permission.REQUEST_URGENT,
        "cases": Permission.HANDLE_CASES,
        "duty": Permission.HANDLE_CASES,
        "beds": Permission.UPDATE_BEDS,
        "editservice": Permission.EDIT_SERVICES,
        "staffof": Permission.ASSIGN_SHELTER_STAFF,
        "contact": Permission.RECORD_CONTACTS,
        "note": Permission.RECORD_CONTACTS,
        "person": Permission.RECORD_CONTACTS,
        "merge": Permission.MERGE_PEOPLE,
        "stats": Permission.VIEW_STATISTICS,
        "export": Permission.EXPORT_DATA,
        "audit": Permission.VIEW_AUDIT_LOG,
    }
    assert {name: listed[name] for name in expected} == expected


# ---- 1. a closed case leaves a contact ---------------------------------------------------------


async def close_from_card(bot: BotHarness, operator: int, outcome_label: str) -> list[dict]:
    card = next(m for m in reversed(bot.fake.sent_messages(operator)) if "Chiudi" in str(m))
    out = await bot.presses(operator, card, "Chiudi")
    return await bot.presses(operator, out[-1], outcome_label)


async def test_closing_a_case_where_the_person_was_met_records_one_contact(
    bot: BotHarness,
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER)
    [alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, alert, "✋ Lo prendo io")
    clock.advance(600)
    card = next(m for m in reversed(bot.fake.sent_messages(ANNA)) if "Sono sul posto" in str(m))
    await bot.presses(ANNA, card, "📍 Sono sul posto")
    arrived = clock.now()
    clock.advance(900)
    await close_from_card(bot, ANNA, "Persona incontrata e aiutata")
    case = await only_case(bot)

    async with bot.session() as session:
        [contact] = list(await session.scalars(select(Contact)))
        anna = await account_by_telegram_id(session, ANNA)
    assert anna is not None
    assert contact.case_id == case.id and contact.source is ContactSource.CASE
    assert contact.operator_id == anna.id and contact.channel is Channel.STREET
    assert contact.outcome is ContactOutcome.RESOLVED and contact.person_id is None
    assert abs((contact.occurred_at - arrived).total_seconds()) < 1  # when she met them
    assert contact.notes is None and contact.place is None  # no free text copied

    # Reopened and closed again: still one contact for the case.
    card = next(m for m in reversed(bot.fake.sent_messages(ANNA)) if "Riapri" in str(m))
    await bot.presses(ANNA, card, "Riapri")
    await close_from_card(bot, ANNA, "Indirizzata a un servizio")
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1


async def test_a_case_closed_as_not_found_records_no_contact(bot: BotHarness) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER)
    [alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, alert, "✋ Lo prendo io")
    await close_from_card(bot, ANNA, "Non trovata")
    assert (await only_case(bot)).outcome is CaseOutcome.NOT_FOUND
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0


# ---- 2. /stats: urgent response times and bed-nights --------------------------------------------


async def open_urgent(session: AsyncSession, reporter: Account, place: str) -> Case:
    return await open_case(
        session,
        reporter,
        NewCase(kind=CaseKind.URGENT, place=place),
        prefix="BS",
        tz=ROME,
        first_escalation=timedelta(minutes=5),
    )


def shelter(key: str) -> Service:
    return Service(
        key=key,
        category="night_shelter",
        names={"it": key},
        descriptions={},
        eligibility={},
        application_process={},
        notes={},
    )


async def test_stats_show_urgent_response_times_and_bed_occupancy_with_known_answers(
    bot: BotHarness,
) -> None:
    await team(bot)
    set_local_time(2026, 3, 10, 20, 0)
    async with bot.session() as session:
        police = await account_by_telegram_id(session, POLICE)
        anna = await account_by_telegram_id(session, ANNA)
        assert police is not None and anna is not None
        # Four urgent requests, taken after 2, 4 and 10 minutes; one never taken.
        for minutes in (2, 4, 10):
            case = await open_urgent(session, police, "Binario 1")
            clock.advance(minutes * 60)
            assert (await take_case(session, case.id, anna)).won
        await open_urgent(session, police, "Binario 3")
        # Two shelters: 20 beds (2 then 5 free on the 10th: the last count counts), 10 beds.
        big, small = shelter("big"), shelter("small")
        session.add_all([big, small])
        await session.flush()
        for service in (big, small):
            await session.refresh(service, ["beds"])
        await set_beds(session, big, total=20, free=2, by=None)
        await set_beds(session, small, total=10, free=0, by=None)
        clock.advance(3600)
        await set_beds(session, big, free=5, by=None)
        set_local_time(2026, 3, 11, 19, 0)
        await set_beds(session, big, free=10, by=None)
        await session.commit()
        report = await compute_stats(session, Period.month_of(clock.now(), ROME))

    assert report.urgent is not None
    assert report.urgent.urgent_cases == 4
    assert report.urgent.median_response_seconds == pytest.approx(240, abs=1)
    assert report.urgent.p90_response_seconds == pytest.approx(528, abs=1)  # 240 + 0.8 × 360
    assert report.beds is not None
    # Night of the 10th: 15 + 10 occupied of 30; night of the 11th: 10 of 20 (small: no count).
    assert (report.beds.occupied, report.beds.capacity) == (35, 50)
    text = render_stats(report, IT)
    assert (
        IT("Urgent cases: {count}; response time median {median}, 90% within {p90}").format(
            count=4, median="4 min", p90="9 min"
        )
        in text
    )
    assert (
        IT("Bed occupancy: {occupied} of {capacity} ({rate}%)").format(
            occupied=35, capacity=50, rate=70
        )
        in text
    )


# ---- 3. exports: the cases table ---------------------------------------------------------------


async def test_cases_are_exported_pseudonymously_and_read_back(
    bot: BotHarness, tmp_path: Path
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER)
    [alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, alert, "✋ Lo prendo io")
    await close_from_card(bot, ANNA, "Persona incontrata e aiutata")
    case = await only_case(bot)
    period = Period.month_of(clock.now(), ROME)

    async with bot.session() as session:
        await export_csv(session, ExportOptions(period), tmp_path / "plain", actor=None)
        data, counts = await export_xlsx(session, ExportOptions(period), actor=None)
        await export_csv(
            session, ExportOptions(period, include_notes=True), tmp_path / "notes", actor=None
        )
        anna = await account_by_telegram_id(session, ANNA)
    assert anna is not None and counts["cases"] == 1
    [row] = read_csv(tmp_path / "plain" / "cases.csv")
    assert list(row) == [column for column, _doc in COLUMNS["cases"]]
    assert row["case_ref"] == case.reference and row["kind"] == "report"
    assert (row["status"], row["outcome"]) == ("closed", "helped")
    assert row["owner_code"] == anna.operator_code and row["notes"] == ""
    flat = " ".join(row.values())
    assert "Solferino" not in flat and "anziana" not in flat and "Vera" not in flat
    assert read_xlsx(data)["cases"] == [row]
    [with_notes] = read_csv(tmp_path / "notes" / "cases.csv")
    assert "where: Via Solferino" in with_notes["notes"]
    assert "Signora anziana al freddo" in with_notes["notes"]
    [contact] = read_csv(tmp_path / "plain" / "contacts.csv")
    assert contact["case_id"] == str(case.id) and contact["source"] == "case"


# ---- 6. privacy across features ----------------------------------------------------------------


async def test_a_reporter_who_forgets_is_unlinked_from_their_cases_which_stay(
    bot: BotHarness,
) -> None:
    await team(bot)
    await quick_report(bot, VOLUNTEER)
    question = (await bot.says(VOLUNTEER, "/forget"))[-1]
    done = await bot.presses(VOLUNTEER, question, IT("Yes, erase my data"))
    assert done[-1]["text"] == IT(
        "Done: your data has been erased. You can write again at any time."
    )
    case = await only_case(bot)
    assert case.reporter_id is None
    assert case.seen == "Signora anziana al freddo"  # the team's record of the person stays
    async with bot.session() as session:
        created = await session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "created")
        )
        detail = await session.scalar(
            select(AuditEntry.detail).where(AuditEntry.action == "forgotten")
        )
    assert created is not None and created.actor_id is None
    assert detail is not None and "cases=1" in detail


async def test_retention_drops_case_photos_then_old_case_texts(bot: BotHarness) -> None:
    await team(bot)
    await police_ask_for_help(bot, photo=True)
    [alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, alert, "✋ Lo prendo io")
    await close_from_card(bot, ANNA, "Persona incontrata e aiutata")
    assert (await only_case(bot)).photo_file_id is not None

    async def run_retention_at_4() -> RetentionResult:
        local = clock.now().astimezone(ROME)
        at = local.replace(hour=4, minute=30) + timedelta(days=1)
        clock.advance((at - clock.now()).total_seconds())
        async with bot.session() as session:
            result = await retention_sweep(session, bot.settings, clock.now())
            await session.commit()
        assert result is not None
        return result

    clock.advance(timedelta(days=bot.settings.photo_retention_days).total_seconds())
    result = await run_retention_at_4()
    assert result.more["case_photos"] == 1 and result.more["case_texts"] == 0
    case = await only_case(bot)
    assert case.photo_file_id is None and case.seen is not None  # texts wait longer

    clock.advance(timedelta(days=31 * bot.settings.retention_months).total_seconds())
    result = await run_retention_at_4()
    assert result.more["case_texts"] == 1 and result.more["case_photos"] == 0
    case = await only_case(bot)
    assert (case.seen, case.place, case.latitude) == (None, None, None)
    assert case.outcome is CaseOutcome.HELPED  # the anonymous facts stay for statistics
    async with bot.session() as session:
        details = list(
            await session.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == "retention_run")
            )
        )
    assert any("case_texts=1" in (d or "") for d in details)


# ---- 7. one escalation across three workers ----------------------------------------------------


@pytest.mark.postgres
async def test_a_due_escalation_fires_once_across_three_workers(bot: BotHarness) -> None:
    if bot.settings.is_sqlite:
        pytest.skip("three workers on one database: PostgreSQL only")
    await team(bot)
    await police_ask_for_help(bot)
    case = await only_case(bot)
    clock.advance(bot.settings.escalation_minutes * 60 + 1)
    engines = [make_engine(bot.settings.database_url) for _ in range(3)]
    catalogs = bot.application.bot_data["runtime"].catalogs
    try:
        escalated = await asyncio.gather(
            *(
                run_in_transaction(
                    make_sessionmaker(engine),
                    lambda session: escalate_due_cases(session, bot.settings, catalogs),
                )
                for engine in engines
            )
        )
    finally:
        for engine in engines:
            await engine.dispose()

    assert sorted(escalated) == [0, 0, 1]
    async with bot.session() as session:
        steps = list(
            await session.scalars(
                select(CaseEvent.detail).where(
                    CaseEvent.case_id == case.id, CaseEvent.action == "escalated"
                )
            )
        )
        reminders = list(
            await session.scalars(
                select(OutboxMessage.chat_id).where(
                    OutboxMessage.subject_id == case.id,
                    OutboxMessage.dedupe_key.like(f"case:{case.id}:escalation:1:%"),
                )
            )
        )
    assert steps == ["step 1: 2 alerted"]
    assert sorted(reminders) == sorted([ANNA, BRUNO])
    await deliver_outbox(bot)
    assert len(alerts_in(bot, ANNA)) == 2  # the first alert and one reminder, not three


# ---- 8. reopening tells the reporter; a duplicate names its case -------------------------------


async def test_the_reporter_hears_of_a_reopening_and_a_duplicate_names_its_case(
    bot: BotHarness,
) -> None:
    await team(bot)
    await set_language(bot, VOLUNTEER_FR, "fr")
    await quick_report(bot, VOLUNTEER)
    first = await only_case(bot)
    clock.advance(120)
    await quick_report(bot, VOLUNTEER_FR)
    async with bot.session() as session:
        second = await session.scalar(select(Case).where(Case.id != first.id))
    assert second is not None
    [_first_alert, alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, alert, "✋ Lo prendo io")
    await close_from_card(bot, ANNA, "Doppione di un altro caso")
    question = bot.fake.sent_messages(ANNA)[-1]
    assert f"Di quale caso {second.reference} è un doppione?" in question["text"]
    [button] = [b for row in bot.fake.buttons(question) for b in row if first.reference in b]
    out = await bot.presses(ANNA, question, button)
    assert f"Annotato: {second.reference} è un doppione di {first.reference}." in texts(out)
    async with bot.session() as session:
        closed = await session.get(Case, second.id)
        assert closed is not None and closed.duplicate_of_id == first.id
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0

    card = next(m for m in reversed(bot.fake.sent_messages(ANNA)) if "Riapri" in str(m))
    await bot.presses(BRUNO, card, "Riapri")
    await deliver_outbox(bot)
    assert f"Votre signalement {second.reference} a été rouvert : Bruno le suit de nouveau." == (
        bot.fake.last_text(VOLUNTEER_FR)
    )
    async with bot.session() as session:
        reopened = await session.get(Case, second.id)
        assert reopened is not None and reopened.duplicate_of_id is None
