"""Subcommands of the contacts work (placeholder: none yet)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this feature's subcommands to ``helpcenter``."""
