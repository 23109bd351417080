"""Translations from gettext catalogues (``bot/locales/<lang>/LC_MESSAGES/*.po``).

Source strings are English. Every ``.po`` file of a language folder is loaded at start-up
(each feature keeps its own file, so features are translated independently) and compiled in
memory with Babel, so no compiled ``.mo`` files are kept in the repository. Adding a language
is adding a folder: see the README.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
SOURCE_LANGUAGE = "en"


def available_languages(directory: Path = LOCALES_DIR) -> list[str]:
    """The languages the bot can speak: English (the source) and every folder of catalogues."""
    return sorted({SOURCE_LANGUAGE, *(p.name for p in directory.iterdir() if p.is_dir())})


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translate it where it is shown."""
    return message


@dataclass
class Translator:
    language: str
    _gnu: gettext.NullTranslations = field(repr=False)

    def gettext(self, message: str) -> str:
        return self._gnu.gettext(message)

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._gnu.ngettext(singular, plural, n)

    @property
    def rtl(self) -> bool:
        return self.language in {"ar", "fa", "he", "ur"}


class Catalogs:
    """All languages found on disk, and the rules for picking one for a person."""

    def __init__(self, default_language: str, directory: Path = LOCALES_DIR) -> None:
        self._translations: dict[str, gettext.NullTranslations] = {
            SOURCE_LANGUAGE: gettext.NullTranslations()
        }
        for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
            self._translations[folder.name] = _load_language(folder)
        if default_language not in self._translations:
            raise ValueError(f"no catalogue for the default language {default_language!r}")
        self.default_language = default_language

    @property
    def languages(self) -> list[str]:
        return sorted(self._translations)

    def pick(self, chosen: str | None, telegram_code: str | None) -> str:
        """The person's own choice, else their Telegram app's language, else the default."""
        for candidate in (chosen, telegram_code):
            if not candidate:
                continue
            base = candidate.replace("_", "-").split("-")[0].lower()
            if base in self._translations:
                return base
        return self.default_language

    def translator(self, language: str) -> Translator:
        language = language if language in self._translations else self.default_language
        return Translator(language, self._translations[language])


def _load_language(folder: Path) -> gettext.NullTranslations:
    merged: gettext.NullTranslations | None = None
    for po_file in sorted(folder.glob("LC_MESSAGES/*.po")):
        with po_file.open("rb") as handle:
            catalog: Catalog = read_po(handle, locale=folder.name)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        translations = gettext.GNUTranslations(buffer)
        if merged is None:
            merged = translations
        else:
            merged.add_fallback(translations)
    return merged or gettext.NullTranslations()


LANGUAGE_NAMES = {
    "it": "Italiano",
    "en": "English",
    "fr": "Français",
    "ar": "العربية",
    "es": "Español",
    "de": "Deutsch",
    "ro": "Română",
    "uk": "Українська",
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)
