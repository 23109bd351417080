"""Declarative base, a timezone-safe datetime column, and the clock the domain reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC and made aware again when read. Naive values are refused on the way in,
    because a naive local time silently stored as UTC is a bug that shows up hours later.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Telegram ids exceed 32 bits; SQLite wants plain INTEGER for rowid-style autoincrement keys.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JsonDoc}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The time the domain reads. Tests replace ``now`` to move time without sleeping."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self._now = now
        self._offset_seconds = 0.0

    def now(self) -> datetime:
        from datetime import timedelta

        return self._now() + timedelta(seconds=self._offset_seconds)

    def advance(self, seconds: float) -> None:
        self._offset_seconds += seconds


clock = Clock()
