"""What can go wrong before the bot runs, as one line a person can act on.

Every ``helpcenter`` subcommand goes through :func:`explain` (in ``bot.cli.main``): a problem
a person can fix (a setting, the database, Telegram refusing the token, a file) becomes one
line on stderr and an exit code, never a traceback; anything else is a bug and keeps its
traceback. Telegram that cannot be reached at start-up is waited for
(:func:`until_telegram_answers`), one line per attempt, with backoff, until it answers or the
bot is told to stop.

Exit codes: 0 done; 1 something outside the settings stopped the command (the database cannot
be used, a file is missing, an operation was refused); 2 a setting or an argument is wrong;
3 the database schema is out of date (``helpcenter db upgrade``); 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter

from config.settings import Settings, SettingsError

log = logging.getLogger("helpcenter")

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_SCHEMA = 3
EXIT_INTERRUPTED = 130
TELEGRAM_BACKOFF_MAX = 60.0


class CliError(Exception):
    """A problem with a one-line explanation and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The line to print and the exit code for a problem a person can fix; None for a bug."""
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}", EXIT_CONFIG
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, InvalidToken):  # PTB's message repeats the token: never shown
        return token_refused(), EXIT_CONFIG
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}", EXIT_FAILURE
    return None


def token_refused() -> str:
    return (
        "configuration error: HELPCENTER_TOKEN: Telegram refused the bot token; copy it "
        "again from @BotFather (and check HELPCENTER_API_BASE_URL if you set it)"
    )


def safe_url(url: str) -> str:
    """The database URL without its password, fit for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable URL)"


@contextlib.contextmanager
def reaching_database(url: str) -> Iterator[None]:
    """Connecting to the database (and reading its schema version) fails as one line.

    Only the first contact is wrapped: a failure later in a command is not about reaching
    the database and keeps its traceback.
    """
    try:
        yield
    except (DBAPIError, DisconnectionError, PoolTimeout, OSError, NoSuchModuleError) as exc:
        raise CliError(
            f"the database at {safe_url(url)} cannot be used: {_reason(exc)}", EXIT_FAILURE
        ) from None


async def ensure_schema(settings: Settings) -> None:
    """The database answers and has the latest schema, or one line says what to do."""
    from models import migrate

    with reaching_database(settings.database_url):
        current = await migrate.schema_is_current(settings.database_url)
    if not current:
        raise CliError(
            "the database schema is out of date: run `helpcenter db upgrade` first", EXIT_SCHEMA
        )


def freeze_start_up_objects() -> None:
    """Put what start-up made (modules, the application, the catalogues: most of the heap) out
    of the garbage collector's sight, once the bot runs. A full collection then walks only what
    handling made since: walking the whole heap held the event loop 100 to 150 ms every few
    seconds at 20 updates a second (``bench_steady``'s p99 on SQLite: 86-159 ms without, see
    docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()


def configure_logging() -> None:
    """Our log lines on stderr (in ``helpcenter`` and in each webhook worker process)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic's "Context impl" lines on every schema check: only ``db upgrade`` shows its steps.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT (Ctrl+C) or SIGTERM: the bot then stops gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


@contextlib.contextmanager
def also_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM also set ``stop``, on top of what they did before.

    A webhook worker process runs under uvicorn's server, whose own handlers stop it; the
    bot's start-up inside it (waiting for Telegram) must hear the same signals.
    """
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
    }

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop.set)
        earlier = previous[signum]
        if callable(earlier):
            earlier(signum, frame)

    for signum in previous:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, earlier in previous.items():
            signal.signal(signum, earlier)


async def until_telegram_answers(
    step: Callable[[], Awaitable[object]], stop: asyncio.Event, settings: Settings
) -> bool:
    """Run ``step`` (a first call to Telegram) until it works; False if stopped meanwhile.

    Telegram out of reach (network, timeouts, its 5xx answers) is one warning line per
    attempt and a wait that doubles up to a minute. A refused token stops start-up with
    exit code 2 (the token is never printed).
    """
    backoff = 1.0
    while not stop.is_set():
        try:
            await step()
            return True
        except InvalidToken:
            raise CliError(token_refused(), EXIT_CONFIG) from None
        except BadRequest:
            raise
        except (NetworkError, RetryAfter, OSError) as exc:
            wait = _retry_after(exc) or backoff
            log.warning(
                "Telegram cannot be reached (%s); retrying in %.0fs",
                _scrubbed(exc, settings),
                wait,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            backoff = min(backoff * 2, TELEGRAM_BACKOFF_MAX)
    return False


def _retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, RetryAfter):
        return None
    after = exc.retry_after
    return float(after if isinstance(after, int) else after.total_seconds())


def _scrubbed(exc: BaseException, settings: Settings) -> str:
    """The error's own words, without the token if the transport quoted the URL."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    token = settings.token.get_secret_value()
    return text.replace(token, "<token>") if token else text
