"""Every language folder under ``bot/locales`` is complete: each source string is translated.

The source strings are extracted from the code here, the same way ``pybabel extract`` does, so a
new ``_()`` / ``N_()`` string that no catalogue translates yet makes these tests fail, naming
the language and the string. See ``bot/locales/README.md``.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, Catalogs

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ["bot", "handlers"]
LANGUAGES = sorted(p.name for p in LOCALES_DIR.iterdir() if p.is_dir())


def source_messages() -> dict[str, str | None]:
    """msgid -> plural msgid (or None) for every marked string in the code."""
    found: dict[str, str | None] = {}
    for folder in SOURCE_DIRS:
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS
        ):
            if isinstance(message, tuple):
                found[message[0]] = message[1]
            else:
                found[message] = None
    return found


def load(language: str) -> list[tuple[Path, Catalog]]:
    catalogues = []
    for po_file in sorted((LOCALES_DIR / language / "LC_MESSAGES").glob("*.po")):
        with po_file.open("rb") as handle:
            catalogues.append((po_file, read_po(handle, locale=language)))
    return catalogues


def texts(value: object) -> tuple[str, ...]:
    """A message's id or string as a tuple of texts (one per plural form)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(item or "" for item in items)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_there_are_strings_and_languages() -> None:
    assert source_messages(), "no marked strings found: is the extraction broken?"
    assert {"it", "fr", "ar"} <= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_headers(language: str) -> None:
    catalogues = load(language)
    assert catalogues, f"{language}: no .po file in LC_MESSAGES"
    for po_file, catalog in catalogues:
        headers = dict(catalog.mime_headers)
        assert headers.get("Language") == language, f"{po_file}: Language header"
        assert "charset=utf-8" in headers.get("Content-Type", "").lower(), po_file
        assert headers.get("Plural-Forms", "").startswith("nplurals="), po_file


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_source_string_is_translated(language: str) -> None:
    translated: dict[str, tuple[str, ...]] = {}
    for _po_file, catalog in load(language):
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            forms = texts(message.string)
            if all(forms):
                translated.setdefault(texts(message.id)[0], forms)
    missing = [msgid for msgid in source_messages() if msgid not in translated]
    assert not missing, f"{language}: not translated (or fuzzy) yet:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_are_kept(language: str) -> None:
    wrong = []
    for po_file, catalog in load(language):
        for message in catalog:
            if not message.id:
                continue
            ids, forms = texts(message.id), texts(message.string)
            expected = set().union(*(placeholders(i) for i in ids))
            for form in forms:
                if form and placeholders(form) != expected:
                    wrong.append(f"{po_file.name}: {ids[0]!r} -> {form!r}")
    assert not wrong, f"{language}: placeholders differ:\n" + "\n".join(wrong)


def test_catalogues_load_and_translate() -> None:
    catalogs = Catalogs("it")
    assert set(LANGUAGES) <= set(catalogs.languages)
    assert catalogs.translator("it")("Change language") == "Cambia lingua"
    assert catalogs.translator("en")("Change language") == "Change language"
    assert catalogs.translator("ar").rtl
