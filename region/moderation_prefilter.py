"""The prefilter: blocked terms matched at ingest, before a comment is stored. Pure.

Terms match whole words or phrases of the comment after both are folded by `fold`, which
undoes the usual evasions:

- case and compatibility forms (NFKC, then casefold): ``ＢＡＤ`` and ``Bad`` are ``bad``;
- accents (NFD, combining marks dropped): ``bäd`` is ``bad``;
- zero-width and other invisible format characters (Unicode category Cf) are dropped;
- confusables: letters of other scripts drawn like Latin ones (Cyrillic ``а``, Greek ``ο``...)
  become the Latin letter (`CONFUSABLES`, the common part of Unicode TR39's table);
- leetspeak inside words (``b4d``, ``$h1t``) becomes letters (`LEET`); numbers standing
  alone stay numbers;
- letters spread out (``b a d``, ``b.a.d``) join up again;
- repeated letters: a word matches a term when it has the term's letters in order, each run at
  least as long as the term's (``baaaad`` matches ``bad``; ``as`` does not match ``ass``).

Matching is by words, never inside a word, so that a term does not block the longer words
that happen to contain it (the Scunthorpe problem). A `TermMatcher` indexes its terms by the
first word's letters with repeats removed, so a comment costs one dictionary lookup per word
whatever the number of terms (docs/benchmarks.md: p99 with 10,000 terms).
"""

# ruff: noqa: RUF001, RUF002 -- look-alike letters are this module's subject

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Letters of Cyrillic, Greek and a few symbol blocks that are drawn like Latin letters.
CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "ь": "b", "з": "3", "ч": "4",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ɩ": "i", "ʟ": "l", "ɪ": "i",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ᴊ": "j", "ᴋ": "k",
    "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w",
    "ʏ": "y", "ᴢ": "z", "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae",
    "œ": "oe", "þ": "th",
})
# Digits and symbols read as letters when they sit inside a word.
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                      "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e",
                      "£": "l", "¢": "c"})
_LEET_CHARS = "0134578 9@$!|+€£¢".replace(" ", "")
_WORD = re.compile(r"[\w@$!|+€£¢]+")


def fold(text: str) -> list[str]:
    """The words of ``text`` with every evasion above undone (repeats still in)."""
    if text.isascii():
        text = text.lower()  # most chat: nothing to normalise, and this is 50x cheaper
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
        text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                       if unicodedata.category(ch) not in ("Mn", "Cf"))
        text = text.translate(CONFUSABLES)
    words: list[str] = []
    for raw in _WORD.findall(text):
        word = raw.replace("_", "")
        if not word:
            continue
        word = word.rstrip("!")  # "idiot!!" is punctuation, not leetspeak
        if not word:
            continue
        if any(ch.isalpha() for ch in word) or (len(word) == 1 and word in _LEET_CHARS):
            word = word.translate(LEET)
        word = "".join(ch for ch in word if ch.isalnum())
        if word:
            words.append(word)
    return _join_spread(words)


def _join_spread(words: list[str]) -> list[str]:
    """``b a d`` and ``b.a.d`` (three or more one-letter words in a row) become ``bad``."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if word:
            out.append(word)
    return out


def runs(word: str) -> tuple[str, tuple[int, ...]]:
    """``baaad`` -> (``bad``, (1, 3, 1)): the letters without repeats, and each run's length."""
    letters: list[str] = []
    lengths: list[int] = []
    for ch in word:
        if letters and letters[-1] == ch:
            lengths[-1] += 1
        else:
            letters.append(ch)
            lengths.append(1)
    return "".join(letters), tuple(lengths)


@dataclass(frozen=True)
class _Term:
    text: str                                     # as the moderator gave it
    words: tuple[tuple[str, tuple[int, ...]], ...]  # each folded word's runs


def _covers(word: tuple[str, tuple[int, ...]], term: tuple[str, tuple[int, ...]]) -> bool:
    return word[0] == term[0] and all(w >= t for w, t in zip(word[1], term[1], strict=True))


class TermMatcher:
    """Blocked terms, matched as words or phrases of a folded comment."""

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self._index: dict[str, list[_Term]] = {}
        self.size = 0
        for term in terms:
            self.add(term)

    def add(self, term: str) -> None:
        words = tuple(runs(w) for w in fold(term))
        if not words:
            return  # nothing a comment could contain (punctuation only)
        self._index.setdefault(words[0][0], []).append(_Term(term, words))
        self.size += 1

    def match(self, text: str) -> str | None:
        """The first blocked term ``text`` contains (as the moderator gave it), or None."""
        if not self._index:
            return None
        words = [runs(w) for w in fold(text)]
        for i, word in enumerate(words):
            for term in self._index.get(word[0], ()):
                n = len(term.words)
                if i + n <= len(words) and all(
                        _covers(words[i + k], term.words[k]) for k in range(n)):
                    return term.text
        return None


class Prefilter:
    """Blocked terms of every scope, one matcher per scope (`GLOBAL` and each stream);
    `rebuild` from the moderation state when its terms change."""

    def __init__(self) -> None:
        self._matchers: dict[str, TermMatcher] = {}

    def rebuild(self, terms: Iterable[tuple[str, str]]) -> None:
        matchers: dict[str, TermMatcher] = {}
        for scope, term in terms:
            matchers.setdefault(scope, TermMatcher()).add(term)
        self._matchers = matchers  # swapped whole: a reader never sees half a rebuild

    def blocked(self, stream: str, text: str) -> str | None:
        """The blocked term ``text`` contains in ``stream`` (global terms first), or None."""
        for scope in ("*", stream):
            matcher = self._matchers.get(scope)
            if matcher is not None:
                found = matcher.match(text)
                if found is not None:
                    return found
        return None
