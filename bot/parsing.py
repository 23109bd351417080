"""Bounded parsers for what people and buttons send: ids, numbers, coordinates, callback data.

Everything that arrives from Telegram can be forged: a button's callback data is whatever the
client sends, a command argument whatever was typed. ``str.isdigit`` accepts ``²`` (which
``int`` refuses), ``int`` accepts ``1_000``, `` 7`` and ``٣``, ``float`` accepts ``nan`` and
``inf``, and a 20-digit id overflows the database's 64-bit columns with an error that parks
the update. Handlers parse through these functions only: each returns ``None`` for anything
out of bounds, so the handler answers politely instead of failing.
"""

from __future__ import annotations

import math
import re

MAX_ID = 2**63 - 1  # database ids and Telegram ids are 64-bit signed integers
MAX_CALLBACK_BYTES = 64  # Telegram refuses longer callback_data
MAX_ECHO = 64  # characters of a person's input quoted back to them

_ASCII_ID = re.compile(r"[0-9]{1,19}")
_ASCII_SIGNED_ID = re.compile(r"-?[0-9]{1,19}")
_NUMBER = re.compile(r"\d{1,9}")  # decimal digits of any script: people type ٣ or ३ too
_COORDINATE = re.compile(r"[-+]?[0-9]{1,3}(\.[0-9]{1,15})?")


def parse_id(text: str | None) -> int | None:
    """A database id (from a button or a command): ASCII digits, 1 to ``MAX_ID``."""
    if text is None or not _ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def parse_telegram_id(text: str | None) -> int | None:
    """A Telegram user or chat id typed by staff: ASCII digits, maybe a minus, 64-bit, not 0."""
    if text is None or not _ASCII_SIGNED_ID.fullmatch(text.strip()):
        return None
    value = int(text)
    return value if value != 0 and -MAX_ID <= value <= MAX_ID else None


def parse_number(text: str | None, *, low: int, high: int) -> int | None:
    """A whole number typed by a person (a count of beds), between ``low`` and ``high``.

    Decimal digits of any script are accepted (an Arabic keyboard types ٤); superscripts,
    signs, separators and spaces inside are not.
    """
    if text is None or not _NUMBER.fullmatch(text.strip()):
        return None
    value = int(text.strip())
    return value if low <= value <= high else None


def parse_index(text: str | None, size: int) -> int | None:
    """A position in a list of ``size`` items (a button naming the n-th area)."""
    if text is None or not _ASCII_ID.fullmatch(text) or len(text) > 6:
        return None
    value = int(text)
    return value if value < size else None


def valid_coordinates(latitude: object, longitude: object) -> tuple[float, float] | None:
    """Finite numbers with latitude in [-90, 90] and longitude in [-180, 180], else None.

    Checked before any arithmetic: NaN passes no comparison, infinity breaks the distances.
    """
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)
    ):
        return None
    lat, lon = float(latitude), float(longitude)  # type: ignore[arg-type]
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        return lat, lon
    return None


def parse_coordinates(latitude: str | None, longitude: str | None) -> tuple[float, float] | None:
    """Coordinates written as text (in a button's data): plain decimals, then as above."""
    if latitude is None or longitude is None:
        return None
    if not (_COORDINATE.fullmatch(latitude) and _COORDINATE.fullmatch(longitude)):
        return None
    return valid_coordinates(float(latitude), float(longitude))


def callback_data(*parts: object) -> str:
    """Join ``parts`` with ``:`` into a button's data; Telegram's 64-byte limit is asserted."""
    data = ":".join(str(part) for part in parts)
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data[:20]!r}…")
    return data


def shown(text: str, limit: int = MAX_ECHO) -> str:
    """A person's input quoted back in an answer: at most ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
