"""Entities and domain operations. Importing this package registers every table."""

from models import accounts, cases, contacts, conversation, directory, exchange, jobs, outbox
from models.base import Base

__all__ = [
    "Base",
    "accounts",
    "cases",
    "contacts",
    "conversation",
    "directory",
    "exchange",
    "jobs",
    "outbox",
]
