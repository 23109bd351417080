"""``helpcenter demo``: the whole team loop offline, for trying, training and developing.

The real running bot (:class:`bot.app.HelpCenterBot`: fetch loop, inbox worker, outbox
dispatcher, the application's job queue) talks to the in-process fake Bot API; a small team
is seeded, and the person at the keyboard types as any of them (``/as NAME``). What the fake
Telegram receives is what the people receive, so every message is shown with its recipient as
it is sent, whoever caused it (a reply, an alert, an escalation by a job).

A line is a text or ``/command``; ``#N`` presses button N of the newest message with buttons
(``m7#N`` of message m7); ``@LAT,LON`` shares a location; ``/photo`` sends a photo;
``/wait 6m`` moves the clock on and runs the due jobs. A script (``--script FILE``) has lines
``NAME: what`` with the same grammar (``wait 6m`` too); ``# `` starts a comment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.request import RequestData

from bot.app import HelpCenterBot, build_application
from bot.process_lock import Release, try_lock
from bot.startup import EXIT_CONFIG, CliError
from config.settings import Settings, load_settings
from fakebotapi import EDIT_METHODS, SEND_METHODS, FakeRequest, FakeTelegram, callback_update
from models import migrate
from models.accounts import get_or_create_account
from models.base import clock
from models.cases import set_duty
from models.db import make_engine, make_sessionmaker
from models.directory import assign_staff, shelters
from models.directory_io import import_directory, read_directory
from models.exchange import Exchange, InboxStatus
from models.outbox import OutboxMessage, OutboxStatus
from models.roles import Role
from models.team import set_role

DEMO_TOKEN = "100000:DEMO"
EXAMPLE_DIRECTORY = Path(__file__).resolve().parent.parent / "config" / "services.example.yaml"
# Piazzale Stazione, Brescia: offered when a button asks for a location.
STATION = (45.5325, 10.2131)
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
UNITS = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}
LOCATION = re.compile(r"^@\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)$")
PRESS = re.compile(r"^(?:m(\d+))?#(\d+)$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Person:
    """One member of the demo team: a Telegram user with a role."""

    name: str
    telegram_id: int
    role: Role
    on_duty: bool = False
    shelter_staff: bool = False
    accepted_privacy: bool = True


TEAM = (
    Person("Vera", 200_001, Role.VOLUNTEER),
    Person("Paolo", 200_002, Role.POLICE),
    Person("Olga", 200_003, Role.OPERATOR, on_duty=True),
    Person("Omar", 200_004, Role.OPERATOR),
    Person("Carla", 200_005, Role.COORDINATOR),
    Person("Sara", 200_006, Role.SHELTER_STAFF, shelter_staff=True),
    Person("Piero", 200_007, Role.PUBLIC, accepted_privacy=False),
)

GUIDE = """\
The team (type /as NAME to be one of them):
{team}
Try:
  /as Vera, then /report          a volunteer reports someone; Olga (on duty) is alerted
  /as Olga, then #1               the operator takes the case; Vera hears who took it
  /as Paolo, then /urgent         the police ask for urgent help
  /wait 6m                        the clock moves on: an untaken case escalates
  /as Piero, then /services       a person in need looks for a meal or a bed
#N presses button N of the newest message with buttons (m7#N: of message m7),
@45.5325,10.2131 shares a location, /photo sends a photo, /who lists the team, /quit leaves."""


class Refused(Exception):
    """A line that cannot be done as typed (no such person, no such button …)."""


class DemoRefused(CliError):
    """Another demo uses this database."""


class DemoRequest(FakeRequest):
    """The fake transport, keeping what the bot uploads (photos, charts, files) on disk."""

    def __init__(self, fake: FakeTelegram, folder: Path) -> None:
        super().__init__(fake)
        self.folder = folder
        self.saved: dict[tuple[int, int], Path] = {}

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *timeouts: Any,
        **named: Any,
    ) -> tuple[int, bytes]:
        status, body = await super().do_request(url, method, request_data, *timeouts, **named)
        if status == 200 and request_data is not None and request_data.contains_files:
            self._keep(json.loads(body).get("result"), request_data)
        return status, body

    def _keep(self, result: Any, request_data: RequestData) -> None:
        messages = result if isinstance(result, list) else [result]
        uploads = [
            (str(part[0]), part[1])
            for part in request_data.multipart_data.values()
            if isinstance(part[1], bytes)
        ]
        for message, (filename, content) in zip(messages, uploads, strict=False):
            if not isinstance(message, dict) or "chat" not in message:
                continue
            key = (int(message["chat"]["id"]), int(message["message_id"]))
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{key[0]}-{key[1]}-{Path(filename).name}"
            path.write_bytes(content)
            self.saved[key] = path


@dataclass
class Shown:
    """A message shown with buttons, which can be pressed later (``mN#K``)."""

    tag: int
    chat_id: int
    message_id: int


@dataclass
class Demo:
    """The running demo: the bot, the fake Telegram, the team, and what has been shown."""

    running: HelpCenterBot
    fake: FakeTelegram
    request: DemoRequest
    engine: AsyncEngine
    release: Release
    people: dict[str, Person]
    speaker: Person
    ask_location: Callable[[], Awaitable[str]] | None = None
    refusals: int = 0  # lines that could not be done (a script counts them as problems)
    _shown_calls: int = 0
    _tags: dict[int, Shown] = field(default_factory=dict)
    _bodies: dict[tuple[int, int], str] = field(default_factory=dict)
    _newest: dict[int, Shown] = field(default_factory=dict)
    _tag_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _query_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _pressed_by: dict[str, Person] = field(default_factory=dict)

    # ---- one line -----------------------------------------------------------------------

    async def do(self, line: str, person: Person | None = None) -> list[str]:
        """What ``person`` (default: the one typing) does; returns what is shown after it."""
        who = person or self.speaker
        try:
            note = await self._act(who, line.strip())
        except Refused as refused:
            self.refusals += 1
            return [str(refused)]
        if note is not None:
            return [note]
        await self.settle()
        return self.new_output()

    async def _act(self, who: Person, line: str) -> str | None:
        if line.startswith("/as"):
            return self._switch(line.removeprefix("/as").strip())
        if line == "/who":
            return self.team_lines()
        if line.startswith(("/wait", "wait ")):
            return await self.wait(line.split(None, 1)[1] if " " in line else "")
        if match := PRESS.match(line):
            tag = int(match.group(1)) if match.group(1) else None
            return await self.press(who, int(match.group(2)), tag)
        if match := LOCATION.match(line):
            return self.share_location(who, float(match.group(1)), float(match.group(2)))
        if line == "/photo":
            self.fake.user_writes(who.telegram_id, photo=True)
        elif line:
            self.fake.user_writes(who.telegram_id, line)
        return None

    def _switch(self, name: str) -> str:
        person = self.person(name)
        if person is None:
            raise Refused(f"nobody called {name!r}: " + ", ".join(self.people_names()))
        self.speaker = person
        return f"you are now {person.name} ({person.role.value})"

    def person(self, name: str) -> Person | None:
        return self.people.get(name.strip().lower())

    def people_names(self) -> list[str]:
        return [p.name for p in self.people.values()]

    def team_lines(self) -> str:
        return "\n".join(
            f"  {p.name:<6} {p.role.value}{' (on duty)' if p.on_duty else ''}"
            for p in self.people.values()
        )

    # ---- the clock ----------------------------------------------------------------------

    async def wait(self, text: str) -> str | None:
        """Move the clock on, then run every job of the job queue once (as if it were due)."""
        match = DURATION.match(text.strip())
        if match is None:
            raise Refused("usage: /wait 6m (s, m, h or d)")
        seconds = float(match.group(1)) * UNITS[match.group(2)]
        clock.advance(seconds)
        job_queue = self.running.application.job_queue
        for job in job_queue.jobs() if job_queue is not None else ():
            await job.run(self.running.application)
        return None

    # ---- buttons and locations ----------------------------------------------------------

    async def press(self, who: Person, number: int, tag: int | None) -> str | None:
        shown = self._tags.get(tag) if tag is not None else self._newest.get(who.telegram_id)
        if shown is None:
            raise Refused(f"no message m{tag}" if tag is not None else f"{who.name} has no buttons")
        if shown.chat_id != who.telegram_id:
            owner = self._name_of(shown.chat_id)
            raise Refused(f"m{shown.tag} was sent to {owner}: /as {owner} first")
        message = self.fake.current_message(shown.chat_id, shown.message_id)
        markup = self.fake.markup_of(message) if message else {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        buttons = [button for row in rows for button in row]
        if message is None or not buttons:
            raise Refused("that message has no buttons any more")
        if not 1 <= number <= len(buttons):
            raise Refused(f"choose a button from 1 to {len(buttons)}")
        button = buttons[number - 1]
        if "inline_keyboard" in markup:
            return self._press_inline(who, message, button)
        return await self._press_reply(who, button)

    def _press_inline(
        self, who: Person, message: dict[str, Any], button: dict[str, Any]
    ) -> str | None:
        if "callback_data" not in button:
            return f"(this button opens {button.get('url') or 'something outside Telegram'})"
        query_id = f"demo{next(self._query_ids)}"
        self._pressed_by[query_id] = who
        user = self.fake.user(who.telegram_id)
        self.fake.push_update(
            callback_update(user, message, str(button["callback_data"]), query_id=query_id)
        )
        return None

    async def _press_reply(self, who: Person, button: dict[str, Any] | str) -> str | None:
        if isinstance(button, str):
            button = {"text": button}
        if button.get("request_location"):
            place = await self._asked_location()
            match = LOCATION.match("@" + place) if place else None
            latitude, longitude = (
                (float(match.group(1)), float(match.group(2))) if match else STATION
            )
            return self.share_location(who, latitude, longitude)
        if button.get("request_contact"):
            self.fake.user_writes(who.telegram_id, contact="+39 000 0000000")
            return None
        self.fake.user_writes(who.telegram_id, str(button["text"]))
        return None

    async def _asked_location(self) -> str:
        if self.ask_location is None:
            return ""
        return (await self.ask_location()).strip().lstrip("@")

    def share_location(self, who: Person, latitude: float, longitude: float) -> str | None:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise Refused("a location is @LAT,LON, e.g. @45.5325,10.2131")
        self.fake.user_writes(who.telegram_id, location=(latitude, longitude))
        return None

    # ---- waiting for the bot --------------------------------------------------------------

    async def settle(self, within_seconds: float = 20.0) -> None:
        """Wait until the bot has handled every update and sent every due message."""
        deadline = time.monotonic() + within_seconds
        quiet_rounds, seen_calls = 0, -1
        while quiet_rounds < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            busy = bool(self.fake.pending_updates()) or len(self.fake.calls) != seen_calls
            seen_calls = len(self.fake.calls)
            busy = busy or await self._work_left()
            quiet_rounds = 0 if busy else quiet_rounds + 1

    async def _work_left(self) -> bool:
        horizon = clock.now() + timedelta(seconds=3)  # a deferral by the rate limiter
        async with self.running.runtime.sessionmaker() as session:
            updates = await session.scalar(
                select(func.count())
                .select_from(Exchange)
                .where(Exchange.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]))
            )
            messages = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    or_(
                        OutboxMessage.status == OutboxStatus.SENDING,
                        (OutboxMessage.status == OutboxStatus.PENDING)
                        & (OutboxMessage.available_at <= horizon),
                    )
                )
            )
        return bool(updates or messages)

    # ---- what people receive --------------------------------------------------------------

    def new_output(self) -> list[str]:
        """Every message sent or changed since the last call, with its recipient."""
        lines: list[str] = []
        calls = self.fake.calls[self._shown_calls :]
        self._shown_calls += len(calls)
        for call in calls:
            if not call.ok:
                continue
            if call.method == "answerCallbackQuery":
                lines.extend(self._render_answer(call.params))
                continue
            if call.method not in SEND_METHODS | EDIT_METHODS:
                continue
            results = call.result if isinstance(call.result, list) else [call.result]
            for message in results:
                if isinstance(message, dict) and "chat" in message:
                    lines.extend(self._render(message, edited=call.method in EDIT_METHODS))
        return lines

    def _render_answer(self, params: dict[str, Any]) -> list[str]:
        who = self._pressed_by.pop(str(params.get("callback_query_id")), None)
        text = params.get("text")
        if who is None or not text:
            return []
        return [f"→ {who.name} (notice): {text}"]

    def _name_of(self, chat_id: int) -> str:
        for person in self.people.values():
            if person.telegram_id == chat_id:
                return person.name
        return f"chat {chat_id}"

    def _render(self, message: dict[str, Any], *, edited: bool) -> list[str]:
        chat_id = int(message["chat"]["id"])
        key = (chat_id, int(message["message_id"]))
        text = self._body(message)
        labels = [label for row in self.fake.buttons(message) for label in row]
        if edited and not labels and self._bodies.get(key) == text:
            return []  # only its buttons were taken away: nothing new to read
        self._bodies[key] = text
        head = f"→ {self._name_of(chat_id)}{' (edited)' if edited else ''}: "
        body = text.splitlines() or [""]
        out = [head + body[0], *(f"    {line}".rstrip() for line in body[1:])]
        if labels:
            shown = Shown(next(self._tag_numbers), chat_id, int(message["message_id"]))
            self._tags[shown.tag] = shown
            self._newest[chat_id] = shown
            buttons = "  ".join(f"[#{i}] {label}" for i, label in enumerate(labels, 1))
            out.append(f"    m{shown.tag}: {buttons}")
        return out

    def _body(self, message: dict[str, Any]) -> str:
        text = message.get("text") or message.get("caption") or ""
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        saved = self.request.saved.get(key)
        if "venue" in message:
            venue = message["venue"]
            return f"📍 {venue.get('title')} — {venue.get('address')}\n{text}".strip()
        if "location" in message:
            where = message["location"]
            return f"📍 {where['latitude']:.5f}, {where['longitude']:.5f}"
        for kind, icon in (("photo", "🖼 photo"), ("document", "📄 document")):
            if kind in message:
                name = message[kind].get("file_name", "") if kind == "document" else ""
                place = f" saved to {saved}" if saved else ""
                return f"{icon} {name}{place}".replace("  ", " ") + (f"\n{text}" if text else "")
        return str(text)

    async def close(self) -> None:
        try:
            await self.running.stop()
        finally:
            await self.release()
            await self.engine.dispose()


# ---- opening the demo ---------------------------------------------------------------------


def demo_settings(database_url: str) -> Settings:
    return load_settings(
        require_token=False,
        token=SecretStr(DEMO_TOKEN),
        database_url=database_url,
        poll_timeout_seconds=10,
    )


async def open_demo(
    database_url: str,
    folder: Path,
    language: str = "en",
    ask_location: Callable[[], Awaitable[str]] | None = None,
) -> Demo:
    """Migrate and seed the database, start the real bot on a fake Telegram."""
    settings = demo_settings(database_url)
    await asyncio.to_thread(migrate.upgrade, database_url)
    engine = make_engine(database_url)
    try:
        release = await hold_demo_lock(database_url, engine)
    except BaseException:
        await engine.dispose()
        raise
    try:
        demo = await start_demo(settings, engine, release, folder, language, ask_location)
    except BaseException:
        await release()
        await engine.dispose()
        raise
    await demo.settle()
    demo.new_output()  # the menus and start-up calls are nobody's message
    return demo


async def start_demo(
    settings: Settings,
    engine: AsyncEngine,
    release: Callable[[], Awaitable[None]],
    folder: Path,
    language: str,
    ask_location: Callable[[], Awaitable[str]] | None,
) -> Demo:
    """Seed, then start the real running bot (worker, dispatcher, jobs, fetch loop)."""
    sessionmaker = make_sessionmaker(engine)
    await seed(sessionmaker, language)
    fake = FakeTelegram(token=DEMO_TOKEN)
    for person in TEAM:
        fake.add_user(person.telegram_id, first_name=person.name, language_code=language)
    await continue_numbering(fake, sessionmaker)
    request = DemoRequest(fake, folder / "files")
    application = build_application(settings, sessionmaker=sessionmaker, request=request)
    running = HelpCenterBot(application)
    await running.start()
    await running.start_polling()
    people = {person.name.lower(): person for person in TEAM}
    return Demo(running, fake, request, engine, release, people, TEAM[0], ask_location)


async def continue_numbering(fake: FakeTelegram, sessionmaker: Any) -> None:
    """Update and message ids go on from what the database has seen, as Telegram's do: a
    restarted demo would otherwise send update 1 again, dropped as a duplicate."""
    async with sessionmaker() as session:
        last_update = await session.scalar(select(func.max(Exchange.update_id)))
        last_messages = await session.execute(
            select(Exchange.chat_id, func.max(Exchange.message_id))
            .where(Exchange.chat_id.is_not(None), Exchange.message_id.is_not(None))
            .group_by(Exchange.chat_id)
        )
        for chat_id, message_id in last_messages:
            fake.continue_message_ids(int(chat_id), int(message_id))
    fake.continue_update_ids(int(last_update or 0))


async def seed(sessionmaker: Any, language: str) -> None:
    """The example directory and the team, once: a database already seeded is left as it is."""
    async with sessionmaker() as session:
        if not await shelters(session):
            await import_directory(session, read_directory(EXAMPLE_DIRECTORY))
        shelter = (await shelters(session))[0]
        for person in TEAM:
            account, created = await get_or_create_account(session, person.telegram_id)
            if not created:
                continue
            account.display_name = person.name
            account.language = language
            await set_role(session, account, person.role, by=None)
            if person.on_duty:
                await set_duty(session, account, True)
            if person.shelter_staff:
                await assign_staff(session, account, shelter, by=None)
            if person.accepted_privacy:
                account.privacy_accepted_at = clock.now()
        await session.commit()


async def hold_demo_lock(database_url: str, engine: AsyncEngine) -> Release:
    """One demo per database, or a clear refusal: a second one would number its updates as
    the first does and be dropped as duplicates, answering nobody (``bot.process_lock``).
    Returns the release."""
    release = await try_lock(database_url, engine, "demo")
    if release is None:
        raise DemoRefused(REFUSAL, EXIT_CONFIG)
    return release


REFUSAL = (
    "another demo is running on this database: leave it (/quit) or give this one its own "
    "with --database"
)


def log_to_file(path: Path) -> None:
    """Every log line (the bot's, alembic's, apscheduler's, PTB's) goes to ``path`` only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---- the terminal and scripts -------------------------------------------------------------


def parse_script_line(line: str) -> tuple[str, str] | None:
    """``NAME: what`` → (name, what); None for a blank line or a ``# comment``."""
    stripped = line.strip()
    if not stripped or stripped == "#" or stripped.startswith("# "):
        return None
    name, sep, what = stripped.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        raise ValueError(f"not `NAME: what`: {stripped}")
    return name.strip(), what.strip()


async def play_script(demo: Demo, lines: list[str], out: IO[str]) -> int:
    """Play a scenario; prints the transcript; returns the number of problems."""
    problems = 0
    for number, raw in enumerate(lines, 1):
        try:
            step = parse_script_line(raw)
        except ValueError as exc:
            print(f"line {number}: {exc}", file=out)
            problems += 1
            continue
        if step is None:
            continue
        name, what = step
        person = demo.person(name)
        if person is None:
            print(f"line {number}: nobody called {name}", file=out)
            problems += 1
            continue
        print(f"\n{person.name}: {what}", file=out)
        refused_before = demo.refusals
        for shown in await demo.do(what, person):
            print(shown, file=out)
        if demo.refusals > refused_before:
            print(f"line {number}: could not be done", file=out)
            problems += 1
    return problems


async def interactive(demo: Demo, out: IO[str]) -> None:
    """Read lines with the prompt; what the jobs send meanwhile is shown as it arrives."""
    watcher = asyncio.create_task(show_what_arrives(demo, out))
    try:
        while True:
            try:
                line = await read_line(f"{demo.speaker.name}> ")
            except EOFError:
                break
            if line.strip() == "/quit":
                break
            if line.strip():
                for shown in await demo.do(line):
                    print(shown, file=out, flush=True)
    finally:
        watcher.cancel()


async def read_line(prompt: str) -> str:
    """``input(prompt)`` (with readline's editing and history) off the event loop.

    A daemon thread, not the loop's executor: Ctrl+C ends the demo at once instead of
    waiting for a line that will never be typed.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value or "")

    def read() -> None:
        value: str | None = None
        error: BaseException | None = None
        try:
            value = input(prompt)
        except BaseException as exc:  # EOFError: the end of the input
            error = exc
        with contextlib.suppress(RuntimeError):  # the demo ended meanwhile
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=read, name="demo-input", daemon=True).start()
    return await answer


async def show_what_arrives(demo: Demo, out: IO[str]) -> None:
    while True:
        await asyncio.sleep(1.0)
        for shown in demo.new_output():
            print(shown, file=out, flush=True)


def enable_line_editing(history: Path) -> None:
    try:
        import readline
    except ImportError:  # not on every platform; plain input still works
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    import atexit

    atexit.register(readline.write_history_file, history)


async def run_demo(
    database_url: str,
    folder: Path,
    language: str,
    script: Path | None,
    out: IO[str] = sys.stdout,
) -> int:
    async def ask_location() -> str:
        prompt = f"📍 where? LAT,LON (Enter: Brescia station {STATION[0]},{STATION[1]}) "
        return await read_line(prompt)

    demo = await open_demo(
        database_url, folder, language, ask_location=None if script else ask_location
    )
    try:
        if script is not None:
            lines = (await asyncio.to_thread(script.read_text)).splitlines()
            problems = await play_script(demo, lines, out)
            return 1 if problems else 0
        print(GUIDE.format(team=demo.team_lines()), file=out)
        print(f"You are {demo.speaker.name}.", file=out)
        await interactive(demo, out)
        return 0
    finally:
        await demo.close()
