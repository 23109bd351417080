"""``helpcenter export`` and ``helpcenter retention run``: the contact database from a shell."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this feature's subcommands to ``helpcenter``."""
    export = subparsers.add_parser(
        "export", help="export contacts, people and exchanges for a period (pseudonymous)"
    )
    export.add_argument(
        "--from",
        dest="first",
        required=True,
        type=date.fromisoformat,
        help="first day, YYYY-MM-DD (local time)",
    )
    export.add_argument(
        "--to",
        dest="last",
        required=True,
        type=date.fromisoformat,
        help="last day included, YYYY-MM-DD",
    )
    export.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    export.add_argument("--out", type=Path, default=Path("."), help="directory to write to")
    export.add_argument(
        "--include-notes",
        action="store_true",
        help="also export operators' free notes (may contain personal data)",
    )
    export.set_defaults(handler=cmd_export)

    retention = subparsers.add_parser("retention", help="data retention").add_subparsers(
        dest="retention", required=True
    )
    retention.add_parser(
        "run", help="anonymise now what is older than the retention period"
    ).set_defaults(handler=cmd_retention_run)


def cmd_export(args: argparse.Namespace) -> int:
    from bot.cli import CliError, settings_for_database, with_session
    from models.contact_export import ExportOptions, export_csv, export_xlsx
    from models.stats import Period

    settings = settings_for_database()
    try:
        period = Period.custom(args.first, args.last, settings.tz)
    except ValueError as exc:
        raise CliError(f"export: {exc}") from None
    options = ExportOptions(period=period, include_notes=args.include_notes)
    out: Path = args.out

    async def work(session: Any) -> dict[str, int]:
        if args.format == "csv":
            return await export_csv(session, options, out, actor=None)
        data, counts = await export_xlsx(session, options, actor=None)
        out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        (out / f"helpcenter-{args.first}-{args.last}.xlsx").write_bytes(data)
        return counts

    counts = with_session(settings, work)
    summary = ", ".join(f"{name}={n}" for name, n in counts.items())
    print(f"exported {args.first}..{args.last} as {args.format} to {out}: {summary}")
    return 0


def cmd_retention_run(_args: argparse.Namespace) -> int:
    from bot.cli import settings_for_database, with_session
    from models.privacy import run_retention

    settings = settings_for_database()

    async def work(session: Any) -> Any:
        return await run_retention(
            session,
            retention_months=settings.retention_months,
            photo_retention_days=settings.photo_retention_days,
        )

    result = with_session(settings, work)
    print(f"retention: anonymised {result.summary()}")
    return 0
