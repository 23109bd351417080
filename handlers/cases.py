"""Placeholder: the cases flows are being built; this module registers nothing yet."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application

from handlers.common import Command

COMMANDS: list[Command] = []


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add this feature's handlers and jobs."""
