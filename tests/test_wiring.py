"""The features working together: cases, contacts and the directory, as people notice it."""

from __future__ import annotations

from prometheus_client import REGISTRY
from telegram.ext import CommandHandler

from bot.app import features_commands
from models.roles import Permission
from tests.cases_helpers import ANNA, PUBLIC, VOLUNTEER, alerts_in, team, texts
from tests.conftest import BotHarness
from tests.contacts_helpers import IT
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
