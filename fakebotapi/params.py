"""Request parameters as Telegram reads them: JSON-serialised fields, numbers and booleans
sent as strings, and uploaded files (of which only the metadata is kept)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from fakebotapi.errors import bad_request

JSON = dict[str, Any]


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded with multipart/form-data (only its metadata is kept)."""

    field: str
    filename: str
    size: int
    mime_type: str | None = None


def as_json(value: Any) -> Any:
    """A JSON-serialised parameter (``reply_markup``, ``scope``...) decoded, or as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad_request("can't parse JSON object") from exc
    return value


def as_int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid {what} specified") from exc


def as_float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"wrong {what} specified") from exc


def as_bool(value: Any) -> bool:
    return value is True or value == 1 or str(value).lower() in ("true", "1")


def jsonable(value: Any) -> Any:
    """``value`` with dataclasses (e.g. :class:`UploadedFile`) turned into dicts."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
