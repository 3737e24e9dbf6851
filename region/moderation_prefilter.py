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
first word's letters with repeats removed, so a comment costs one set intersection with its
words whatever the number of terms. The cost is folding the comment: `Folded` does it once
for every scope, mostly in C (one translation table, one regex pass for the repeats), and
computes a word's run lengths only when its letters are some term's. Before that, a comment
near the 2,000-byte limit was folded once per scope and had every word's runs computed in
Python: p99 3 to 5.6 ms (docs/benchmarks.md: p99 with 10,000 terms).
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


class _Folding(dict[int, str | None]):
    """What each character becomes after NFKC, casefolding and NFD: nothing (combining marks,
    Unicode category Mn; invisible format characters, Cf), a confusable's Latin letter, or
    itself. Filled as characters are met, so that `str.translate` does the whole text in C
    (asking `unicodedata.category` per character in Python cost a long comment 0.1 ms);
    bounded, past which a character is looked up each time instead of remembered."""

    MAX = 20_000

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        out = None if unicodedata.category(ch) in ("Mn", "Cf") else ch
        if len(self) < self.MAX:
            self[code] = out
        return out


_FOLDING = _Folding(CONFUSABLES)
_NOT_ALNUM = re.compile(r"[\W_]+")      # \w is letters, digits and "_"


def fold(text: str) -> list[str]:
    """The words of ``text`` with every evasion above undone (repeats still in)."""
    if text.isascii():
        text = text.lower()  # most chat: nothing to normalise, and this is 50x cheaper
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
        text = unicodedata.normalize("NFD", text).translate(_FOLDING)
    words: list[str] = []
    # "_" is a word character that no term is spelled with: "b_a_d" is "bad".
    for raw in _WORD.findall(text.replace("_", "")):
        if raw.isalpha():
            words.append(raw)  # most words: nothing to undo
            continue
        word = raw.rstrip("!")  # "idiot!!" is punctuation, not leetspeak
        if not word:
            continue
        if _has_letter(word) or (len(word) == 1 and word in _LEET_CHARS):
            word = word.translate(LEET)
        if not word.isalnum():
            word = _NOT_ALNUM.sub("", word)
            if not word:
                continue
        words.append(word)
    return _join_spread(words)


def _has_letter(word: str) -> bool:
    # Most words are all letters or all digits: one C call each, the loop only for the rest.
    if word.isalpha():
        return True
    if word.isdecimal():
        return False
    return any(ch.isalpha() for ch in word)


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


_REPEATS = re.compile(r"(.)\1+")


class Folded:
    """A comment as the matchers read it, folded once whatever the number of scopes:
    ``words`` (`fold`) and ``keys``, each word's letters without repeats (one regex pass over
    the whole comment). A word's run lengths are computed only when its key is some term's
    (`runs_at`): a comment near the size limit has hundreds of words and hits few, if any."""

    __slots__ = ("_runs", "keys", "words")

    def __init__(self, text: str) -> None:
        self.words = fold(text)
        # Words are letters and digits only: a space never repeats and never joins two keys.
        self.keys = _REPEATS.sub(r"\1", " ".join(self.words)).split(" ") if self.words else []
        self._runs: dict[int, tuple[int, ...]] = {}

    def runs_at(self, i: int) -> tuple[int, ...]:
        found = self._runs.get(i)
        if found is None:
            found = self._runs[i] = runs(self.words[i])[1]
        return found


@dataclass(frozen=True)
class _Term:
    text: str                                     # as the moderator gave it
    words: tuple[tuple[str, tuple[int, ...]], ...]  # each folded word's runs


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
        return self.match_folded(Folded(text)) if self._index else None

    def match_folded(self, comment: Folded) -> str | None:
        if not self._index or self._index.keys().isdisjoint(comment.keys):
            return None  # the usual answer, from one set operation in C
        keys = comment.keys
        for i, key in enumerate(keys):
            for term in self._index.get(key, ()):
                if self._covers(comment, i, term):
                    return term.text
        return None

    @staticmethod
    def _covers(comment: Folded, i: int, term: _Term) -> bool:
        """Whether the comment's words from ``i`` on are the term's, each run of a letter at
        least as long as the term's (``baaad`` covers ``bad``; ``as`` does not cover ``ass``)."""
        if i + len(term.words) > len(comment.keys):
            return False
        for k, (key, lengths) in enumerate(term.words):
            if comment.keys[i + k] != key:
                return False
            if not all(w >= t for w, t in zip(comment.runs_at(i + k), lengths, strict=True)):
                return False
        return True


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
        matchers = [m for m in (self._matchers.get("*"), self._matchers.get(stream))
                    if m is not None]
        if not matchers:
            return None
        comment = Folded(text)
        for matcher in matchers:
            found = matcher.match_folded(comment)
            if found is not None:
                return found
        return None
