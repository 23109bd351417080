"""The bot at the load people produce, end to end over HTTP (issue #12's targets).

Every bot runs as its own process, long polling (25 s) the project's ``FakeTelegramServer``
on loopback, as it would poll Telegram. In one run:

1. **Steady load**: 60 people who already know the bot write ``/help`` at a steady 20 updates
   a second. For a bare echo bot, a naive durable bot (``benchmarks/steady_bots.py``: stock
   polling, one SQLAlchemy commit per exchange; on SQLite as in the issue, and on
   PostgreSQL) and the full bot on SQLite and PostgreSQL: CPU ms per update (the bot
   process's user + system time over the steady phase) and latency from the update handed
   to the server to the reply received by it (p50, p99). Target: the full bot ≤ 1.5 × the
   naive bot's CPU per update and ≤ 1.5 × its p99 (each row is shown against the naive bot
   on SQLite and against the one on its own database). The naive bot echoes ``/help``; a
   second naive bot on each database gives the full bot's own answer (its text and seven
   buttons, captured from the full bot at the start of the run), so that column compares
   the delivery cores with the answer's cost held equal. A third bot on each database gives
   that answer with the full bot's delivery guarantees written plainly (``guarded``: store
   before confirming, the reply as a pending row committed with the done mark, sent, then
   recorded; three commits per update, nothing else): the floor the guarantees put under any
   bot, the ``× guarantees`` column.
   Before each turn the bot is left alone for 10 s: its CPU per second doing nothing (the
   idle looks, the jobs, the long poll), which is most of a Help Center's day.
2. **First contacts**: 200 people write ``/start`` for the first time at once (each gets the
   answer and the privacy notice). Time until all are answered against Telegram's limit
   (messages ÷ 30 per second), and the most messages in any one second (a sliding window over
   the server's clock). Target: ≥ 0.8 of the limit, never more than 30 in a second.

Usage: ``python -m benchmarks.bench_steady [--seconds 20] [--rounds 3] [--skip-postgres]``
(``--first-contacts``: the second part only). Bounded: each
phase has a time limit, every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import (
    POSTGRES_URL,
    TOKEN,
    _drop_schema,
    _reset,
    known_people,
    percentile,
    postgres_url,
    sqlite_url,
)
from fakebotapi import FakeTelegram
from fakebotapi.server import FakeTelegramServer

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = 60
RATE = 20.0
FIRST_CONTACTS = 200
SEND_METHODS = {"sendMessage", "sendPhoto", "sendDocument", "sendVenue", "sendLocation"}
TELEGRAM_LIMIT_PER_SECOND = 30
IDLE_SECONDS = 10.0  # before each steady turn: CPU per second with nobody writing
SAME_ANSWER = "naive+answer"  # the naive bot giving the full bot's answer (ANSWER_FILE)
GUARDED = "guarded"  # the same answer, written plainly to keep the full bot's guarantees
ANSWERING = (SAME_ANSWER, GUARDED)  # the baselines given the full bot's answer (ANSWER_FILE)
NAIVE = "naive durable"  # the rows each bot is set against, by the start of their names
NAIVE_ANSWERING = "naive, same answer"
NAIVE_GUARDED = "plain, same guarantees"
ANSWER_FILE = Path(tempfile.gettempdir()) / f"hc-bench-answer-{os.getpid()}.json"


@dataclass
class Steady:
    name: str
    updates: int
    answered: int
    cpu_ms_per_update: float
    p50_ms: float
    p99_ms: float
    idle_cpu_ms_per_second: float


@dataclass
class Burst:
    name: str
    messages: int
    seconds: float
    share_of_limit: float
    most_in_one_second: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def sent_at(fake: FakeTelegram, since: float) -> dict[int, list[float]]:
    """When each chat received a message accepted by the server, in order."""
    times: dict[int, list[float]] = defaultdict(list)
    for call in fake.calls:
        if call.method in SEND_METHODS and call.status == 200 and call.at >= since:
            times[int(call.params["chat_id"])].append(call.at)
    return times


def most_in_one_second(moments: list[float]) -> int:
    ordered = sorted(moments)
    most, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def bot_command(
    kind: str, base_url: str, database_url: str
) -> tuple[list[str], dict[str, str], Path]:
    """The command, environment and folder of a bot; ``full@TREE`` is the full bot of another
    checkout (the code before a change, measured in the same run)."""
    tree = Path(kind.partition("@")[2] or ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPCENTER_")}
    env["PYTHONPATH"] = str(tree)
    if kind in ("echo", "naive", *ANSWERING):
        baseline = "benchmarks.steady_bots"
        command = [sys.executable, "-m", baseline, kind.partition("+")[0], base_url, TOKEN]
        command += [database_url, str(ANSWER_FILE)] if kind in ANSWERING else [database_url]
        return command, env, tree
    env.update(
        HELPCENTER_TOKEN=TOKEN,
        HELPCENTER_API_BASE_URL=base_url,
        HELPCENTER_DATABASE_URL=database_url,
        HELPCENTER_DEFAULT_LANGUAGE="it",
    )
    return [sys.executable, "-m", "bot.cli", "run"], env, tree


async def capture_full_answer(database_url: str) -> None:
    """What the full bot answers ``/help`` from someone it knows, as sent to Telegram, kept
    in ``ANSWER_FILE`` for the naive bot that gives the same answer."""
    await known_people(database_url, range(1, 2))
    async with RunningBot("full", database_url) as bot:
        bot.fake.add_user(1, first_name="P1")
        since = time.monotonic()
        bot.fake.user_writes(1, "/help")
        if not await wait_for(lambda: bot.answered(range(1, 2), 1, since), 120):
            raise RuntimeError("the full bot did not answer /help (see hc-bench-*.log)")
        [sent] = [c for c in bot.fake.calls if c.method == "sendMessage" and c.status == 200]
    markup = sent.params["reply_markup"]
    answer = {"text": sent.params["text"], "reply_markup": json.loads(markup)}
    ANSWER_FILE.write_text(json.dumps(answer, ensure_ascii=False))


def migrated_by(tree: Path, database_url: str) -> str:
    """A fresh database migrated by another checkout's own migrations."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPCENTER_")}
    env.update(PYTHONPATH=str(tree), HELPCENTER_DATABASE_URL=database_url, HELPCENTER_TOKEN=TOKEN)
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, cwd=tree, check=True
    )
    return database_url


def empty_sqlite_url() -> str:
    return f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='hc-bench-')}/bench.db"


def empty_postgres_url(suffix: str) -> str | None:
    """An empty PostgreSQL database (schema dropped), or None if PostgreSQL is away."""
    url = POSTGRES_URL + suffix
    try:
        asyncio.run(_reset(url))
        asyncio.run(_drop_schema(url))
    except OSError:
        return None
    return url


async def wait_for(predicate: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


class RunningBot:
    """One bot process against a fresh fake Telegram served over HTTP."""

    started = 0  # bots started in this run: each one's update ids follow the last one's

    def __init__(self, kind: str, database_url: str) -> None:
        self.kind = kind
        self.database_url = database_url
        self.fake = FakeTelegram(token=TOKEN)
        # A bot's database keeps the update ids it stored (a second round on it would take
        # ids from 1 again for redeliveries and ignore them), and Telegram's never restart.
        RunningBot.started += 1
        self.fake.continue_update_ids(RunningBot.started * 1_000_000)
        self.server = FakeTelegramServer(self.fake)
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> RunningBot:
        base_url = await self.server.start()
        command, env, tree = bot_command(self.kind, base_url, self.database_url)
        log = Path(tempfile.gettempdir()) / f"hc-bench-{os.getpid()}-{id(self)}.log"
        self.process = subprocess.Popen(  # noqa: ASYNC220 (started once, before measuring)
            command,
            env=env,
            cwd=tree,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        await self.server.stop()

    def answered(self, chats: range, each: int, since: float) -> bool:
        times = sent_at(self.fake, since)
        return all(len(times.get(chat, [])) >= each for chat in chats)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process (the fake server and the load) while measuring:
    a full collection of its heap held its event loop 100-200 ms, which every bot's p99 would
    count as the bot's latency."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def steady(name: str, kind: str, database_url: str, seconds: float) -> Steady:
    people = range(1, PEOPLE + 1)
    if kind.startswith("full"):
        await known_people(database_url, people)
    async with RunningBot(kind, database_url) as bot:
        for chat in people:
            bot.fake.add_user(chat, first_name=f"P{chat}")
        warm = time.monotonic()
        for chat in people:  # warm-up: everyone once, not measured
            bot.fake.user_writes(chat, "/help")
        if not await wait_for(lambda: bot.answered(people, 1, warm), 120):
            raise RuntimeError(f"{name}: the warm-up was not answered (see hc-bench-*.log)")
        # The warm-up's 60 replies at once held the bot's 30-a-second slots, which free a
        # second after each answer: measuring sooner counted that wait in the first replies.
        await asyncio.sleep(1.5)
        assert bot.process is not None
        idle_from = cpu_seconds(bot.process.pid)
        await asyncio.sleep(IDLE_SECONDS)  # nobody writing: what the bot costs doing nothing
        idle = (cpu_seconds(bot.process.pid) - idle_from) * 1000 / IDLE_SECONDS
        with collector_paused():
            cpu_before, start = cpu_seconds(bot.process.pid), time.monotonic()
            pushed: dict[int, list[float]] = defaultdict(list)
            total = int(seconds * RATE)
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
                chat = people[i % PEOPLE]
                pushed[chat].append(time.monotonic())
                bot.fake.user_writes(chat, "/help")
            expected = {chat: len(moments) for chat, moments in pushed.items()}
            await wait_for(
                lambda: all(
                    len(sent_at(bot.fake, start).get(c, [])) >= n for c, n in expected.items()
                ),
                30,
            )
            cpu = cpu_seconds(bot.process.pid) - cpu_before
        replies = sent_at(bot.fake, start)
    latencies = [
        (reply - sent) * 1000
        for chat, moments in pushed.items()
        for sent, reply in zip(moments, replies.get(chat, []), strict=False)
    ]
    return Steady(
        name,
        total,
        len(latencies),
        cpu * 1000 / total,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        idle,
    )


async def first_contacts(name: str, kind: str, database_url: str) -> Burst:
    newcomers = range(100_000, 100_000 + FIRST_CONTACTS)
    async with RunningBot(kind, database_url) as bot:
        bot.fake.add_user(1)
        warm = time.monotonic()
        await known_people(database_url, range(1, 2))
        bot.fake.user_writes(1, "/help")
        if not await wait_for(lambda: bot.answered(range(1, 2), 1, warm), 120):
            raise RuntimeError(f"{name}: the bot did not start (see hc-bench-*.log)")
        await asyncio.sleep(0.5)
        start = time.monotonic()
        for chat in newcomers:
            bot.fake.add_user(chat, first_name=f"N{chat}")
            bot.fake.user_writes(chat, "/start")
        await wait_for(lambda: bot.answered(newcomers, 2, start), 60)
        moments = [m for chat, ms in sent_at(bot.fake, start).items() for m in ms]
    seconds = (max(moments) - start) if moments else float("inf")
    return Burst(
        name,
        len(moments),
        seconds,
        (len(moments) / TELEGRAM_LIMIT_PER_SECOND) / seconds,
        most_in_one_second(moments),
    )


def print_steady(rows: list[Steady]) -> None:
    """Each bot against the naive bot on SQLite (the issue's baseline) and, for a bot on
    PostgreSQL, against the naive bot on PostgreSQL too (the same database's own costs)."""
    naive = {backend_of(r.name): r for r in rows if r.name.startswith(NAIVE)}
    answering = {backend_of(r.name): r for r in rows if r.name.startswith(NAIVE_ANSWERING)}
    guarded = {backend_of(r.name): r for r in rows if r.name.startswith(NAIVE_GUARDED)}
    sqlite = naive.get("SQLite")
    print(f"\nSteady {RATE:.0f} updates/s from {PEOPLE} known people (latency: server to server)")
    print(
        f"{'bot':<36}{'updates':>8}{'CPU ms/upd':>11}{'× naive':>8}{'× same db':>10}"
        f"{'× same answer':>14}{'× guarantees':>13}{'p50 ms':>8}{'p99 ms':>8}{'p99 ×':>7}"
        f"{'p99 × same db':>14}{'idle ms/s':>10}"
    )
    for r in rows:
        same = naive.get(backend_of(r.name), sqlite)
        same_answer = answering.get(backend_of(r.name))
        print(
            f"{r.name:<36}{r.updates:>8}{r.cpu_ms_per_update:>11.2f}"
            f"{ratio(r, sqlite, 'cpu_ms_per_update'):>8.2f}"
            f"{ratio(r, same, 'cpu_ms_per_update'):>10.2f}"
            f"{ratio(r, same_answer, 'cpu_ms_per_update'):>14.2f}"
            f"{ratio(r, guarded.get(backend_of(r.name)), 'cpu_ms_per_update'):>13.2f}"
            f"{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
            f"{ratio(r, sqlite, 'p99_ms'):>7.2f}{ratio(r, same, 'p99_ms'):>14.2f}"
            f"{r.idle_cpu_ms_per_second:>10.1f}"
        )
    if any(r.answered < r.updates for r in rows):
        short = [f"{r.name} {r.answered}/{r.updates}" for r in rows if r.answered < r.updates]
        print("not all answered: " + ", ".join(short))


def backend_of(name: str) -> str:
    """ "full bot, PostgreSQL" → "PostgreSQL"; the echo bot has none."""
    return name.rpartition(", ")[2] if ", " in name else ""


def ratio(row: Steady, baseline: Steady | None, figure: str) -> float:
    """``row``'s figure over the baseline's (0 without a baseline)."""
    if baseline is None or not getattr(baseline, figure):
        return 0.0
    return float(getattr(row, figure)) / float(getattr(baseline, figure))


def print_bursts(rows: list[Burst]) -> None:
    print(f"\n{FIRST_CONTACTS} first contacts at once (limit {TELEGRAM_LIMIT_PER_SECOND}/s)")
    print(f"{'bot':<28}{'messages':>9}{'seconds':>9}{'share of limit':>15}{'most in 1 s':>12}")
    for r in rows:
        print(
            f"{r.name:<28}{r.messages:>9}{r.seconds:>9.2f}{r.share_of_limit:>15.2f}"
            f"{r.most_in_one_second:>12}"
        )


def median_of(rounds: list[Steady]) -> Steady:
    """One bot's rounds as one row: the median of each figure."""
    return Steady(
        rounds[0].name,
        sum(r.updates for r in rounds),
        sum(r.answered for r in rounds),
        statistics.median(r.cpu_ms_per_update for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
        statistics.median(r.idle_cpu_ms_per_second for r in rounds),
    )


async def main(
    seconds: float,
    rounds: int,
    runs: list[tuple[str, str, str]],
    bursts: list[tuple[str, str, str]],
    answer_from: str,
) -> None:
    """The bots take turns, ``rounds`` times: a machine whose speed drifts during the run
    (another tenant, the CPU's clock) then weighs on every bot alike, not on whichever ran in
    the slow minutes (one run measured the echo bot twice as fast as an hour before)."""
    measured: dict[str, list[Steady]] = {name: [] for name, _, _ in runs}
    if any(kind in ANSWERING for _, kind, _ in runs):
        await capture_full_answer(answer_from)
    for _ in range(rounds):
        for name, kind, url in runs:
            measured[name].append(await steady(name, kind, url, seconds))
    if runs:
        print_steady([median_of(measured[name]) for name, _, _ in runs])
    print_bursts([await first_contacts(name, kind, url) for name, kind, url in bursts])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="of steady load, per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns each bot takes (median)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--first-contacts", action="store_true", help="the second part only")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout (e.g. a worktree of main): its full bot is measured too",
    )
    args = parser.parse_args()
    # Databases are migrated before the event loop starts (Alembic runs its own loop).
    runs = [
        ("echo (no database)", "echo", sqlite_url()),
        ("naive durable, SQLite", "naive", sqlite_url()),
        ("naive, same answer, SQLite", SAME_ANSWER, sqlite_url()),
        ("plain, same guarantees, SQLite", GUARDED, sqlite_url()),
        ("full bot, SQLite", "full", sqlite_url()),
    ]
    bursts = [("full bot, SQLite", "full", sqlite_url())]
    before = f"full@{args.before.resolve()}" if args.before else None
    if before:
        runs.insert(
            4, ("before: full bot, SQLite", before, migrated_by(args.before, empty_sqlite_url()))
        )
        bursts.insert(
            0, ("before: full bot, SQLite", before, migrated_by(args.before, empty_sqlite_url()))
        )
    if not args.skip_postgres and (steady_pg := postgres_url()):
        naive_pg = postgres_url(suffix="_naive") or steady_pg
        runs.append(("naive durable, PostgreSQL", "naive", naive_pg))
        answering_pg = postgres_url(suffix="_answering") or naive_pg
        runs.append(("naive, same answer, PostgreSQL", SAME_ANSWER, answering_pg))
        guarded_pg = postgres_url(suffix="_guarded") or answering_pg
        runs.append(("plain, same guarantees, PostgreSQL", GUARDED, guarded_pg))
        runs.append(("full bot, PostgreSQL", "full", steady_pg))
        bursts.append(("full bot, PostgreSQL", "full", postgres_url(suffix="_burst") or steady_pg))
        if before and (old_pg := empty_postgres_url("_before")):
            runs.append(("before: full bot, PostgreSQL", before, migrated_by(args.before, old_pg)))
    steady_runs = [] if args.first_contacts else runs
    asyncio.run(main(args.seconds, args.rounds, steady_runs, bursts, sqlite_url()))
