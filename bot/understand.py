"""What a person in need means by a free-text message, from words kept in the catalogues.

Each need has one source string (below) that is the English vocabulary: words and phrases
separated by ``|``. Its translation in a language's ``.po`` file is that language's
vocabulary, in the same format, so a new language folder brings its own words and nothing in
the code changes. A word ending in ``*`` matches every word it begins (``mang*`` matches
"mangiare", "mangio"); a phrase of several words matches those words in that order. Matching
ignores case and accents (Arabic hamza and vowel marks too) and looks at whole words only.

A message is read against the words of every language at once: a person whose phone is set
to Italian may still write in French or Arabic.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from bot.i18n import N_, Catalogs


class Need(enum.StrEnum):
    BED = "bed"
    MEAL = "meal"
    SHOWER = "shower"
    DOCTOR = "doctor"
    CLOTHES = "clothes"
    LUGGAGE = "luggage"
    DOCUMENTS = "documents"
    DESK = "desk"  # talk to the Help Center
    HELP = "help"  # help in general: show the buttons


# In order of priority: "help, I need to sleep" is about a bed.
VOCABULARY: dict[Need, str] = {
    Need.BED: N_(
        "sleep|sleeping|bed|beds|shelter|dormitory|night|tonight|place to stay|cold|"
        "where can i sleep"
    ),
    Need.MEAL: N_("eat|eating|food|meal|meals|hungry|hunger|dinner|lunch|breakfast|canteen"),
    Need.SHOWER: N_("shower|showers|wash|washing|bath|toilet|hygiene"),
    Need.DOCTOR: N_("doctor|sick|ill|medicine|pharmacy|hospital|nurse|hurt|injured"),
    Need.CLOTHES: N_("clothes|clothing|jacket|shoes|blanket|coat"),
    Need.LUGGAGE: N_("luggage|bags|suitcase|backpack"),
    Need.DOCUMENTS: N_("documents|papers|passport|permit|lawyer|asylum|residence permit"),
    Need.DESK: N_(
        "help center|operator|talk to someone|speak to someone|social worker|appointment"
    ),
    Need.HELP: N_("help|hello|hi|info|information|need|sos|please"),
}


# Arabic letters written either way: ta marbuta as ha, alef maqsura as ya.
SAME_LETTER = str.maketrans({"ة": "ه", "ى": "ي"})


def fold(text: str) -> str:
    """Lower case, no accents or marks (Arabic hamza and vowel marks included), words
    separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.translate(SAME_LETTER)
    return " ".join("".join(ch if ch.isalnum() or ch == "*" else " " for ch in plain).split())


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    prefix: bool  # the last word is a beginning ("mang*")

    @classmethod
    def parse(cls, text: str) -> Phrase | None:
        folded = fold(text)
        prefix = folded.endswith("*")
        words = tuple(w.strip("*") for w in folded.split() if w.strip("*"))
        return cls(words, prefix) if words else None

    def found_in(self, words: list[str]) -> bool:
        size = len(self.words)
        for start in range(len(words) - size + 1):
            window = words[start : start + size]
            if window[:-1] != list(self.words[:-1]):
                continue
            last, wanted = window[-1], self.words[-1]
            if last == wanted or (self.prefix and last.startswith(wanted)):
                return True
        return False


def phrases(vocabulary: str) -> list[Phrase]:
    """The phrases of one catalogue entry (``|``-separated, see the module docstring)."""
    return [p for p in (Phrase.parse(part) for part in vocabulary.split("|")) if p is not None]


@dataclass(frozen=True)
class Vocabulary:
    """One need's phrases, indexed: most are single words, looked up in a set at once.
    Reading a message against every phrase in turn took 420 µs for "hello 17" (5 % of the
    samples in ``bench_throughput``, whose messages are free text); indexed, 51 µs."""

    words: frozenset[str]
    beginnings: tuple[str, ...]
    longer: tuple[Phrase, ...]

    @classmethod
    def of(cls, known: list[Phrase]) -> Vocabulary:
        single = [phrase for phrase in known if len(phrase.words) == 1]
        return cls(
            words=frozenset(p.words[0] for p in single if not p.prefix),
            beginnings=tuple(dict.fromkeys(p.words[0] for p in single if p.prefix)),
            longer=tuple(phrase for phrase in known if len(phrase.words) > 1),
        )

    def found_in(self, words: list[str], distinct: set[str]) -> bool:
        return (
            not self.words.isdisjoint(distinct)
            or any(word.startswith(self.beginnings) for word in distinct)
            or any(phrase.found_in(words) for phrase in self.longer)
        )


@lru_cache(maxsize=8)
def _lexicon(catalogs: Catalogs) -> tuple[tuple[Need, Vocabulary], ...]:
    entries = []
    for need, source in VOCABULARY.items():
        found: list[Phrase] = []
        for language in catalogs.languages:
            found += phrases(catalogs.translator(language)(source))
        entries.append((need, Vocabulary.of(found)))
    return tuple(entries)


def understand(text: str, catalogs: Catalogs) -> Need | None:
    """The first need (in ``VOCABULARY`` order) whose words the text contains, if any."""
    words = fold(text).replace("*", " ").split()
    if not words:
        return None
    distinct = set(words)
    for need, vocabulary in _lexicon(catalogs):
        if vocabulary.found_in(words, distinct):
            return need
    return None
