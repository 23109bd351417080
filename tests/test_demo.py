"""``helpcenter demo``: the whole team loop offline, on the real running bot.

A coordinator or a trainer meets the bot here first: a volunteer's report reaches the
operator on duty, who takes it, and the volunteer hears back; the jobs run, the clock can be
moved on, every button works, and a restarted demo carries on where it was.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cli import demo_database, main
from bot.demo import Demo, DemoRefused, open_demo, parse_script_line, play_script

ROOT = Path(__file__).resolve().parent.parent
VERA = 200_001
README_SCRIPT = ROOT / "config" / "demo.script"


@pytest.fixture
async def demo(database_url: str, tmp_path: Path) -> AsyncIterator[Demo]:
    running = await open_demo(database_url, tmp_path)
    try:
        yield running
    finally:
        await running.close()


async def act(demo: Demo, line: str) -> str:
    """One script line (``NAME: what``); returns what everybody was shown, as text."""
    step = parse_script_line(line)
    assert step is not None
    name, what = step
    person = demo.person(name)
    assert person is not None
    return "\n".join(await demo.do(what, person))


async def vera_reports(demo: Demo) -> str:
    for line in ("/report", "#1", "#2", "#2", "Coughing on a bench", "Man, about 60"):
        await act(demo, f"Vera: {line}")
    return await act(demo, "Vera: #1")


async def test_a_report_reaches_the_operator_on_duty_who_takes_it_and_the_volunteer_hears_who(
    demo: Demo,
) -> None:
    sent = await vera_reports(demo)
    assert "→ Vera: Thank you. Your report is registered as" in sent
    assert "→ Olga: 📋 New report" in sent
    assert "[#1] ✋ Take it" in sent

    taken = await act(demo, "Olga: #1")

    assert "taken in charge by Olga" in taken
    assert any(line.startswith("→ Vera: ") and "Olga" in line for line in taken.splitlines())


async def test_an_urgent_request_with_nobody_on_duty_reaches_the_coordinator(demo: Demo) -> None:
    await act(demo, "Olga: /duty")
    assert "off duty" in await act(demo, "Olga: #1")

    await act(demo, "Paolo: /urgent")
    await act(demo, "Paolo: @45.5321,10.2125")
    await act(demo, "Paolo: A man asleep in the cold")
    sent = await act(demo, "Paolo: #1")

    assert "No operator is on duty right now" in sent
    assert "→ Carla: 🚨 Urgent request" in sent
    assert "→ Olga" not in sent


async def test_after_six_minutes_an_untaken_case_escalates(demo: Demo) -> None:
    await vera_reports(demo)
    assert "Still nobody has taken it" not in await act(demo, "Carla: wait 1m")

    later = await act(demo, "Carla: wait 6m")

    assert "Still nobody has taken it" in later


async def test_restarting_the_demo_on_the_same_database_answers_the_first_message(
    database_url: str, tmp_path: Path
) -> None:
    first = await open_demo(database_url, tmp_path)
    try:
        assert "street volunteer" in await act(first, "Vera: /help")
        last_id = first.fake.sent_messages(VERA)[-1]["message_id"]
    finally:
        await first.close()

    again = await open_demo(database_url, tmp_path)
    try:
        assert "street volunteer" in await act(again, "Vera: /help")
        # Her chat goes on: the new answer is not numbered as an old message.
        assert again.fake.sent_messages(VERA)[-1]["message_id"] > last_id
    finally:
        await again.close()


async def test_the_location_button_asks_for_a_place_and_offers_the_station(
    database_url: str, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def ask() -> str:
        asked.append("where?")
        return ""  # Enter: the place offered

    demo = await open_demo(database_url, tmp_path, ask_location=ask)
    try:
        await act(demo, "Piero: /services")
        meals = await act(demo, "Piero: #4")  # the bot asks where Piero is
        keyboard = next(line for line in meals.splitlines() if "[#1] 📍 Send my location" in line)
        tag = keyboard.strip().split(":", 1)[0]
        answer = await act(demo, f"Piero: {tag}#1")
    finally:
        await demo.close()

    assert asked == ["where?"]
    assert "🍲 Meals and food" in answer
    assert "Stazione" in answer or "Station" in answer


async def test_buttons_of_an_older_message_still_work_and_a_stale_one_gets_a_polite_line(
    demo: Demo,
) -> None:
    services = await act(demo, "Piero: /services")
    older = services.split("    m", 1)[1].split(":", 1)[0]
    await act(demo, "Piero: /language")

    beds = await act(demo, f"Piero: m{older}#1")  # not the language menu, the newest
    assert "shelter" in beds
    await act(demo, "Vera: /report")
    await act(demo, "Vera: #1")
    category = await act(demo, "Vera: #1")
    kinds = category.split("    m")[-1].split(":", 1)[0]
    await act(demo, f"Vera: m{kinds}#1")  # chosen: the buttons are gone

    stale = await act(demo, f"Vera: m{kinds}#1")

    assert stale == "that message has no buttons any more"
    assert (await act(demo, "Piero: #42")).startswith("choose a button from 1 to ")


async def test_documents_the_bot_sends_are_saved_and_their_path_shown(demo: Demo) -> None:
    await act(demo, "Carla: /export")

    sent = await act(demo, "Carla: #1")

    line = next(line for line in sent.splitlines() if "📄 document" in line)
    saved = await asyncio.to_thread(Path(line.split(" saved to ", 1)[1]).read_bytes)
    assert saved.startswith(b"PK")  # an .xlsx is a zip file


async def test_the_readme_script_shows_the_alert_and_the_feedback(demo: Demo) -> None:
    out = io.StringIO()

    problems = await play_script(demo, README_SCRIPT.read_text().splitlines(), out)

    transcript = out.getvalue()
    assert problems == 0, transcript
    assert "→ Olga: 📋 New report" in transcript
    assert "has been taken in charge by Olga" in transcript
    assert "→ Carla: 🚨 Urgent request" in transcript
    assert "Still nobody has taken it" in transcript
    assert "→ Paolo: " in transcript.split("Carla: #1", 1)[1]


def test_the_demo_command_plays_a_script_with_the_logs_in_a_file(
    database_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "hello.script"
    script.write_text("# Piero says hello\nPiero: /start\n")

    result = run_cli(tmp_path, "demo", "--database", database_url, "--script", str(script))

    assert result.returncode == 0, result.stderr
    assert "→ Piero: Hello!" in result.stdout
    assert "INFO" not in result.stdout + result.stderr  # logs are in the file, not here
    assert "Application started" in (tmp_path / "helpcenter-demo" / "demo.log").read_text()
    assert "helpcenter-demo/demo.log" in result.stdout.splitlines()[0]


def run_cli(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


async def test_a_second_demo_on_the_same_database_is_refused_with_a_clear_message(
    demo: Demo, database_url: str, tmp_path: Path
) -> None:
    same = database_url.replace(str(tmp_path), f"{tmp_path}/.")

    with pytest.raises(DemoRefused, match="another demo is running on this database"):
        await open_demo(same, tmp_path / "second")

    assert "street volunteer" in await act(demo, "Vera: /help")  # the first one is untouched


async def test_a_demo_that_has_ended_leaves_the_database_to_the_next(
    database_url: str, tmp_path: Path
) -> None:
    first = await open_demo(database_url, tmp_path)
    await first.close()

    second = await open_demo(database_url, tmp_path)
    await second.close()


def test_the_database_setting_is_honoured_and_the_option_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELPCENTER_DATABASE_URL", raising=False)
    assert demo_database(None, tmp_path) == f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    monkeypatch.setenv("HELPCENTER_DATABASE_URL", "sqlite+aiosqlite:///shared.db")
    assert demo_database(None, tmp_path) == "sqlite+aiosqlite:///shared.db"
    assert demo_database("sqlite+aiosqlite:///mine.db", tmp_path) == "sqlite+aiosqlite:///mine.db"


def test_an_unknown_language_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--language", "xx"])

    assert code == 2
    assert "--language xx: no such language; use one of" in capsys.readouterr().err


def test_a_trainer_types_as_several_people_and_the_location_button_offers_the_station(
    tmp_path: Path,
) -> None:
    typed = "/as Olga\n/duty\n/as Vera\n/report\n#1\n\n/quit\n"

    result = run_cli(tmp_path, "demo", stdin=typed)

    assert result.returncode == 0, result.stderr
    assert "Olga   operator (on duty)" in result.stdout  # the guide shows the team
    assert "you are now Olga (operator)" in result.stdout
    assert "→ Olga: 🟢 You are on duty" in result.stdout
    assert "📍 where? LAT,LON (Enter: Brescia station" in result.stdout
    assert "→ Vera: Place noted." in result.stdout
    assert (tmp_path / "helpcenter-demo" / "demo.db").is_file()


async def test_a_script_line_that_cannot_be_done_is_a_problem_so_the_readme_never_goes_stale(
    demo: Demo,
) -> None:
    out = io.StringIO()

    problems = await play_script(demo, ["Piero: /services", "Piero: #99", "Nobody: /help"], out)

    assert problems == 2
    assert "line 2: could not be done" in out.getvalue()
    assert "line 3: nobody called Nobody" in out.getvalue()


async def test_a_volunteer_adds_a_photo_to_her_report(demo: Demo) -> None:
    for line in ("/report", "#1", "#1", "#3"):
        await act(demo, f"Vera: {line}")

    assert "→ Vera: Photo saved." in await act(demo, "Vera: /photo")
