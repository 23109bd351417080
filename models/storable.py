"""Text as a database can hold it: what Telegram delivers is not always valid UTF-8 text.

Telegram's JSON may carry ``\\u0000`` (PostgreSQL refuses U+0000 in ``text`` and ``jsonb``
alike) and unpaired UTF-16 surrogates such as ``\\ud83d`` (half an emoji, cut by a client):
Python decodes them into a ``str`` that is not valid UTF-8, which neither PostgreSQL nor
SQLite can store. Replaced, everything else untouched:

- U+0000 → U+FFFD (the replacement character), so the reader sees something was there;
- a lone surrogate (U+D800..U+DFFF without its partner) → U+FFFD;
- a surrogate pair written as two code points → the one character it encodes.

Applied where updates are stored (``models.exchange.store_updates``: the log's text and
payload, so every handler reads, and every table receives, cleaned text), to the outbound log
rows, and to every JSON document the engine writes (``models.db.make_engine``).
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\\ud800-\\udfff]")
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # built once: ``json.dumps`` would per call


def storable_text(text: str) -> str:
    """``text`` with U+0000 and lone surrogates replaced by U+FFFD (see the module)."""
    if "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None):
        return text
    text = text.replace("\x00", REPLACEMENT)
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def storable(value: Any) -> Any:
    """A JSON value with every string in it (keys too) made :func:`storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {
            (storable_text(key) if isinstance(key, str) else key): storable(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def storable_json(value: Any) -> str:
    """``json.dumps`` of a document a database can hold (the engines' JSON serialiser).

    Written with ``ensure_ascii=False`` (characters as themselves, as SQLAlchemy suggests):
    U+0000 then shows as the escape ``\\u0000`` and a lone surrogate as itself, so only a
    document that has one is walked and cleaned; the rest cost one scan of the text.
    """
    dumped = _ENCODER.encode(value)
    if "\\u0000" not in dumped and (dumped.isascii() or _SURROGATE.search(dumped) is None):
        return dumped
    return _ENCODER.encode(storable(value))
