"""Texts for generated comments (drills, load runs) that the moderation classifier cannot
take for a flood."""

from __future__ import annotations

# Words for generated comments. The moderation classifier (region/classifier.py) takes a
# text it has seen three times from one user, or from four users, for a flood, and compares
# fingerprints: digits, spaces and punctuation dropped, repeated letters collapsed. So
# "comment 1", "comment 2"... are one text to it, and so were "pass slow" and "pass low". Each
# word here is four letters with no letter doubled, begins with a consonant and ends with a
# vowel: no letter collapses across a word's boundary, and a fingerprint splits back into
# its words, so no two phrases share one (tests/unit/test_drill_verdict.py).
WORDS = ("bake", "cake", "dare", "fame", "game", "hare", "lake", "make", "name", "pale",
         "sale", "take", "wake", "bone", "cone", "dome", "home", "joke", "lone", "mole",
         "nose", "pole", "rose", "tone", "vote", "zone", "bite", "dine", "fine", "hide",
         "kite", "line", "mine", "nine", "pine", "ride", "side", "tide", "vine", "wide",
         "wine", "cube", "dune", "huge", "june", "lure", "mute", "pure", "rule", "tune",
         "data", "coda", "soda", "sofa", "tuna", "puma", "lava", "diva", "polo", "solo",
         "hero", "zero", "memo", "demo")


def phrase(n: int) -> str:
    """A text for the ``n``-th comment that no other ``n`` folds to (base-64 in words)."""
    words = []
    while True:
        n, digit = divmod(n, len(WORDS))
        words.append(WORDS[digit])
        if n == 0:
            return " ".join(reversed(words))


__all__ = ["WORDS", "phrase"]
