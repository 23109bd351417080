"""``helpcenter``: run the bot, migrate the database, manage users, look at the inbox.

Every problem a person can fix (a missing or malformed setting, a database that cannot be
reached, a token Telegram refuses, a missing file, an old schema) is one clear line on stderr
and a non-zero exit, without a traceback; the exit codes are listed in ``bot.startup``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.startup import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_SCHEMA,
    CliError,
    configure_logging,
    ensure_schema,
    explain,
    freeze_start_up_objects,
    reaching_database,
    stop_on_signals,
    until_telegram_answers,
)
from config.settings import Settings, load_settings
from models import migrate
from models.db import make_engine, make_sessionmaker
from models.roles import Role

if TYPE_CHECKING:
    from bot.app import HelpCenterApp

__all__ = ["EXIT_CONFIG", "EXIT_SCHEMA", "CliError", "ensure_schema", "main"]

# Feature modules that add subcommands: each has ``add_commands(subparsers)``.
EXTENSIONS = ("bot.cli_directory", "bot.cli_contacts")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        problem = explain(exc)
        if problem is None:
            raise
        message, code = problem
        print(f"helpcenter: {message}", file=sys.stderr)
        return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpcenter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (long polling, or webhook with --webhook-url)")
    run.add_argument("--webhook-url", help="public HTTPS URL Telegram posts updates to")
    run.add_argument(
        "--listen", type=listen_address, help="address to listen on in webhook mode, HOST:PORT"
    )
    run.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL only)")
    run.set_defaults(handler=cmd_run)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate the schema to the latest version").set_defaults(
        handler=cmd_db_upgrade
    )
    db.add_parser("current", help="show the schema version").set_defaults(handler=cmd_db_current)

    users = sub.add_parser("users", help="accounts and roles").add_subparsers(
        dest="users", required=True
    )
    grant = users.add_parser("grant", help="give a role to a Telegram user id")
    grant.add_argument("telegram_id", type=int)
    grant.add_argument("role", choices=[r.value for r in Role])
    grant.set_defaults(handler=cmd_users_grant)
    listing = users.add_parser("list", help="list accounts with a role")
    listing.add_argument("--all", action="store_true", help="include public accounts")
    listing.set_defaults(handler=cmd_users_list)

    inbox = sub.add_parser("inbox", help="the update inbox").add_subparsers(
        dest="inbox", required=True
    )
    inbox.add_parser("failed", help="updates parked after failing").set_defaults(
        handler=cmd_inbox_failed
    )

    console = sub.add_parser("console", help="talk to the bot in this terminal, offline")
    console.add_argument("--as", dest="role", default="public", choices=[r.value for r in Role])
    console.add_argument("--database", default="sqlite+aiosqlite:///helpcenter-console.db")
    console.add_argument("--language", default=None, help="your language (it, en, fr, ar)")
    console.set_defaults(handler=cmd_console)

    demo = sub.add_parser(
        "demo", help="the whole team in this terminal, offline: no bot token needed"
    )
    demo.add_argument(
        "--database",
        default=None,
        help="database URL (default: HELPCENTER_DATABASE_URL, else demo.db in the folder)",
    )
    demo.add_argument(
        "--folder", type=Path, default=Path("helpcenter-demo"), help="for the log and files"
    )
    demo.add_argument("--language", default="en", help="the team's language (en, it, fr, ar)")
    demo.add_argument("--script", type=Path, help="play this scenario and print the transcript")
    demo.set_defaults(handler=cmd_demo)

    for name in EXTENSIONS:
        module = __import__(name, fromlist=["add_commands"])
        module.add_commands(sub)
    return parser


def settings_for_database(*, require_token: bool = False) -> Settings:
    return load_settings(require_token=require_token)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    settings = settings_for_database()
    with reaching_database(settings.database_url):
        asyncio.run(migrate.current_revision(settings.database_url))
    logging.getLogger("alembic").setLevel(logging.INFO)
    migrate.upgrade(settings.database_url)
    print(f"database at revision {migrate.head_revision(settings.database_url)}")
    return 0


def cmd_db_current(_args: argparse.Namespace) -> int:
    settings = settings_for_database()
    with reaching_database(settings.database_url):
        current = asyncio.run(migrate.current_revision(settings.database_url))
    head = migrate.head_revision(settings.database_url)
    print(f"current: {current or 'empty'}; latest: {head}")
    return 0 if current == head else EXIT_SCHEMA


def with_session(settings: Settings, work: Callable[[Any], Any]) -> Any:
    """Run ``work(session)`` in one committed transaction against a current schema."""

    async def go() -> Any:
        await ensure_schema(settings)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def cmd_users_grant(args: argparse.Namespace) -> int:
    from models.accounts import get_or_create_account
    from models.team import set_role

    settings = settings_for_database()

    async def work(session: Any) -> None:
        account, _ = await get_or_create_account(session, args.telegram_id)
        await set_role(session, account, Role(args.role), by=None)
        enqueue_menu_update(session, settings, account)

    with_session(settings, work)
    print(f"user {args.telegram_id} is now {args.role}")
    return 0


def enqueue_menu_update(session: Any, settings: Settings, account: Any) -> None:
    """The person's menu follows their new role: sent by the bot's outbox when it runs."""
    from bot.app import features_commands
    from bot.i18n import Catalogs
    from bot.menus import chat_menu_params
    from models.outbox import enqueue

    catalogs = Catalogs(settings.default_language)
    translator = catalogs.translator(catalogs.pick(account.language, None))
    params = chat_menu_params(
        account.telegram_id, account.role, translator, features_commands(), settings
    )
    params.pop("chat_id", None)
    enqueue(
        session,
        chat_id=account.telegram_id,
        kind="menu",
        method="setMyCommands",
        params=params,
        account_id=account.id,
    )


def cmd_users_list(args: argparse.Namespace) -> int:
    from models.accounts import list_accounts

    async def work(session: Any) -> list[Any]:
        return await list_accounts(session, staff_only=not args.all)

    for account in with_session(settings_for_database(), work):
        duty = "on duty" if account.on_duty else ""
        print(f"{account.telegram_id}\t{account.role.value}\t{account.operator_code or ''}\t{duty}")
    return 0


def cmd_inbox_failed(_args: argparse.Namespace) -> int:
    from models.exchange import failed_updates

    rows = with_session(settings_for_database(), failed_updates)
    for row in rows:
        first_line = (row.error or "").splitlines()[0] if row.error else ""
        print(f"{row.update_id}\t{row.kind}\tattempts={row.attempts}\t{first_line}")
    print(f"{len(rows)} parked update(s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.webhook_url:
        overrides["webhook_url"] = args.webhook_url
    if args.listen:
        host, port = args.listen
        overrides.update(listen_host=host, listen_port=port)
    settings = load_settings(**overrides)
    if args.workers > 1 and settings.is_sqlite:
        raise CliError(
            "several workers need PostgreSQL: SQLite is for one process only", EXIT_CONFIG
        )
    from bot.health import warn_at_start_up

    warn_at_start_up(settings)
    if settings.webhook_url:
        from bot.webhook import run_webhook

        return run_webhook(settings, workers=args.workers)
    asyncio.run(run_polling(settings))
    return 0


def listen_address(value: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` (or ``:PORT``, all interfaces), checked by argparse."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


async def run_polling(settings: Settings) -> None:
    from bot.app import build_application
    from bot.health import bind_health
    from bot.runtime import runtime_of

    await ensure_schema(settings)
    health_socket = bind_health(settings)
    application = build_application(settings)
    try:
        await _poll_until_stopped(application, health_socket, settings)
    finally:
        # Closed here, not by the garbage collector after the loop closed.
        await runtime_of(application).engine.dispose()


async def _poll_until_stopped(
    application: HelpCenterApp, health_socket: socket.socket | None, settings: Settings
) -> None:
    from bot.app import HelpCenterBot
    from bot.health import serve_health

    stop = stop_on_signals()
    if not await until_telegram_answers(application.initialize, stop, settings):
        return
    # Telegram hands updates to one getUpdates caller only: this process is the one that sends,
    # so the send limits stay in its memory (on PostgreSQL the shared store costs four
    # statements a message, about 2.5 ms of CPU: bench_statements).
    async with HelpCenterBot(application, sole_sender=True) as running:
        for step in (running.publish_default_menus, running.start_polling):
            if not await until_telegram_answers(step, stop, settings):
                return
        health = serve_health(health_socket, running.runtime) if health_socket else None
        freeze_start_up_objects()
        logging.getLogger("helpcenter").info("bot running (long polling); Ctrl+C stops")
        await stop.wait()
        if health is not None:
            health.cancel()


def cmd_console(args: argparse.Namespace) -> int:
    from bot.console import run_console

    load_settings(require_token=False, database_url=args.database)  # one line if wrong
    with reaching_database(args.database):
        asyncio.run(migrate.current_revision(args.database))
    asyncio.run(run_console(Role(args.role), args.database, args.language))
    return 0


def demo_database(given: str | None, folder: Path) -> str:
    """``--database``, else ``HELPCENTER_DATABASE_URL``, else a file in the demo's folder."""
    return (
        given
        or os.environ.get("HELPCENTER_DATABASE_URL")
        or f"sqlite+aiosqlite:///{folder / 'demo.db'}"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import enable_line_editing, log_to_file, run_demo
    from bot.i18n import available_languages

    languages = available_languages()
    if args.language not in languages:
        raise CliError(
            f"--language {args.language}: no such language; use one of {', '.join(languages)}",
            EXIT_CONFIG,
        )
    database = demo_database(args.database, args.folder)
    load_settings(require_token=False, database_url=database)  # one line if wrong
    args.folder.mkdir(parents=True, exist_ok=True)
    if args.script is not None and not args.script.is_file():
        raise CliError(f"no such script: {args.script}")
    with reaching_database(database):
        asyncio.run(migrate.current_revision(database))
    log_file = args.folder / "demo.log"
    log_to_file(log_file)
    print(f"helpcenter demo: log in {log_file}, files in {args.folder / 'files'}", flush=True)
    if args.script is None:
        enable_line_editing(args.folder / "history")
    return asyncio.run(run_demo(database, args.folder, args.language, args.script))


if __name__ == "__main__":
    # ``python -m bot.cli``: run the one ``bot.cli`` module the subcommand modules import,
    # so that their ``CliError`` is the one ``main`` knows.
    from bot import cli

    raise SystemExit(cli.main())
