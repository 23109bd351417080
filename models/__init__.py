"""Entities and domain operations. Importing this package registers every table."""

from models import accounts, cases, contacts, directory, exchange, jobs, outbox, prompts
from models.base import Base

__all__ = [
    "Base",
    "accounts",
    "cases",
    "contacts",
    "directory",
    "exchange",
    "jobs",
    "outbox",
    "prompts",
]
