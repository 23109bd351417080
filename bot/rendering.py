"""Text sent with ``parse_mode="HTML"``: every dynamic value escaped, in one place.

Telegram refuses a message whose HTML does not parse (``Piazza <Duomo>``), and the refusal
parks the update. Templates are trusted markup (source strings and their translations);
names, addresses, areas, notes and anything a person typed are not.
"""

from __future__ import annotations

import html
import re


def escape(value: object) -> str:
    """A value shown inside HTML markup, as plain text."""
    return html.escape(str(value), quote=False)


def html_format(template: str, **values: object) -> str:
    """``template.format(**values)`` with each value escaped (the template is markup)."""
    return template.format(**{name: escape(value) for name, value in values.items()})


def bold(value: object) -> str:
    return f"<b>{escape(value)}</b>"


MESSAGE_LIMIT = 4000  # Telegram's is 4096 characters after entity parsing; room for a prefix
_CUT_MARKUP = re.compile(r"<[^>]*$|&[#0-9a-zA-Z]*$")


def fit_html(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Shorten HTML built from whole tags and escaped text, never cutting a tag or an entity.

    Cards put their only tag (the bold name) first, so the cut falls in escaped text; a
    dangling ``<…`` or ``&…`` at the cut is dropped with it.
    """
    if len(text) <= limit:
        return text
    return _CUT_MARKUP.sub("", text[: limit - 1]) + "…"
