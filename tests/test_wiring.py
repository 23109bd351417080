"""The features working together: cases, contacts and the directory, as people notice it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.cases_helpers import ANNA, VOLUNTEER, alerts_in, team
from tests.conftest import BotHarness
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
