"""``helpcenter services ...``: import and export the directory, assign shelter staff."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.cli import CliError, settings_for_database, with_session


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``services import|export|staff`` to ``helpcenter``."""
    services = subparsers.add_parser("services", help="the services directory").add_subparsers(
        dest="services", required=True
    )
    importing = services.add_parser(
        "import",
        help="import a YAML file, a folder of HSDS CSV tables or an HSDS JSON file "
        "(all or nothing)",
    )
    importing.add_argument("file", type=Path)
    importing.add_argument(
        "--language",
        default="it",
        help="language of HSDS texts that do not say theirs (it)",
    )
    importing.set_defaults(handler=cmd_import)
    exporting = services.add_parser(
        "export",
        help="export to FILE.yaml, FILE.json (HSDS services) or a folder (HSDS CSV tables)",
    )
    exporting.add_argument("file", type=Path)
    exporting.add_argument(
        "--organization",
        metavar="ID",
        help="HSDS tables only: the organization named as provider of the services that "
        "have none (HSDS tables require one; without this they refuse the export)",
    )
    exporting.set_defaults(handler=cmd_export)
    staff = services.add_parser("staff", help="let an account update a shelter's bed count")
    staff.add_argument("telegram_id", type=int)
    staff.add_argument("service_id", help="the service's id in the directory file")
    staff.add_argument("--remove", action="store_true", help="take the shelter away instead")
    staff.set_defaults(handler=cmd_staff)
    api = subparsers.add_parser("api", help="serve the HSDS 3.0 API of the directory alone")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    api.add_argument("--port", type=int, default=8090, help="port to listen on (8090)")
    api.set_defaults(handler=cmd_api)


def cmd_import(args: argparse.Namespace) -> int:
    from models.directory_io import DirectoryFileError, import_directory, read_directory

    path: Path = args.file
    if not path.exists():
        raise CliError(f"no such file: {path}")
    settings = settings_for_database()
    try:
        directory = read_directory(path, settings.tz, language=args.language)
    except DirectoryFileError as exc:
        raise CliError(f"{path}: nothing imported, fix these first:\n{exc}") from None

    async def work(session: Any) -> Any:
        return await import_directory(session, directory)

    try:
        summary = with_session(settings, work)
    except DirectoryFileError as exc:
        raise CliError(f"{path}: nothing imported, fix these first:\n{exc}") from None
    for warning in directory.warnings:
        print(f"left aside: {warning}")
    print(f"imported {path}: {summary}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from models.directory_io import export_directory, write_directory
    from models.hsds_export import IncompletePackageError

    settings = settings_for_database()
    directory = with_session(settings, export_directory)
    try:
        write_directory(directory, args.file, settings.timezone, provider=args.organization)
    except IncompletePackageError as exc:
        raise CliError(f"{args.file}: nothing exported: {exc}") from None
    print(f"exported {len(directory.services)} services to {args.file}")
    return 0


def cmd_staff(args: argparse.Namespace) -> int:
    from models.accounts import account_by_telegram_id
    from models.directory import assign_staff, service_by_key, unassign_staff

    async def work(session: Any) -> str:
        account = await account_by_telegram_id(session, args.telegram_id)
        if account is None:
            raise CliError(f"no account with Telegram id {args.telegram_id}: they must /start")
        service = await service_by_key(session, args.service_id)
        if service is None or not service.is_shelter:
            raise CliError(f"no shelter with id {args.service_id!r}")
        if args.remove:
            done = await unassign_staff(session, account, service, by=None)
            return "removed" if done else "was not staff of that shelter"
        done = await assign_staff(session, account, service, by=None)
        return "assigned" if done else "already staff of that shelter"

    print(f"{args.telegram_id} / {args.service_id}: {with_session(settings_for_database(), work)}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """The HSDS API without the bot (the webhook app also serves it, at ``/hsds``)."""
    import uvicorn

    from bot.hsds_api import make_hsds_app
    from models.db import make_engine, make_sessionmaker

    settings = settings_for_database()
    app = make_hsds_app(make_sessionmaker(make_engine(settings.database_url)))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
