"""How free text is read (``bot.understand``): whole words, beginnings, phrases in order, the
first need in priority, every language at once; and the indexed reading agrees with reading
every phrase one by one."""

from __future__ import annotations

import pytest

from bot.i18n import Catalogs
from bot.understand import VOCABULARY, Need, _lexicon, fold, phrases, understand

CATALOGS = Catalogs("it")


@pytest.mark.parametrize(
    ("text", "need"),
    [
        ("ho bisogno di dormire", Need.BED),  # Italian
        ("Dove MANGIARE?", Need.MEAL),  # a beginning ("mang*"), any case
        ("j'ai faim", Need.MEAL),  # French, whatever the phone says
        ("أين أنام", Need.BED),  # Arabic
        ("help, I need to sleep", Need.BED),  # a bed comes before help in general
        ("I want to talk to someone", Need.DESK),  # a phrase of several words, in order
        ("someone to talk", None),  # the same words in another order
        ("bedroom", None),  # whole words only: "bed" is not a beginning
        ("qwerty", None),
        ("", None),
    ],
)
def test_free_text_is_read_as_the_need_people_mean(text: str, need: Need | None) -> None:
    assert understand(text, CATALOGS) == need


def every_phrase_one_by_one(text: str) -> Need | None:
    """The reading before the index: each phrase of each need looked for in turn."""
    words = fold(text).replace("*", " ").split()
    for need, source in VOCABULARY.items():
        for language in CATALOGS.languages:
            if any(p.found_in(words) for p in phrases(CATALOGS.translator(language)(source))):
                return need
    return None


def test_the_index_reads_every_known_word_as_reading_each_phrase_would() -> None:
    samples: list[str] = []
    for source in VOCABULARY.values():
        for language in CATALOGS.languages:
            for part in CATALOGS.translator(language)(source).split("|"):
                word = part.strip().rstrip("*")
                samples += [word, f"ehm {word}xyz", f"{word[:-1]} ok", f"per favore {word}"]
    assert len(_lexicon(CATALOGS)) == len(VOCABULARY)
    assert sum(understand(s, CATALOGS) is not None for s in samples) > len(samples) // 4
    for sample in samples:
        assert understand(sample, CATALOGS) == every_phrase_one_by_one(sample), sample
