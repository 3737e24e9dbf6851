"""The prefilter's folding and matching: each evasion of the table is caught, and ordinary
words that merely contain a blocked term are not (region/moderation_prefilter.py)."""

# ruff: noqa: RUF001, RUF003 -- look-alike letters are what these cases are made of

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from region.moderation_prefilter import (
    CONFUSABLES,
    LEET,
    Folded,
    Prefilter,
    TermMatcher,
    _join_spread,
    fold,
    runs,
)

TERMS = ("badword", "scam link", "ass", "idiot")

CAUGHT = [
    ("badword", "badword"),
    ("BADWORD", "badword"),
    ("ＢＡＤＷＯＲＤ", "badword"),             # full-width forms
    ("bädwörd", "badword"),                    # accents
    ("bad\u200bword", "badword"),              # zero-width space inside
    ("b\u00adadword", "badword"),              # soft hyphen
    ("bаdwоrd", "badword"),                    # Cyrillic а and о
    ("βadword", "badword"),                    # Greek beta
    ("b4dw0rd", "badword"),                    # leetspeak
    ("8@dw0rd", "badword"),
    ("baaaaadwooooord", "badword"),            # repeated letters
    ("b a d w o r d", "badword"),              # spread out
    ("b.a.d.w.o.r.d", "badword"),
    ("what a badword!!!", "badword"),
    ("this is a SCAM   link", "scam link"),    # phrases, any spacing
    ("$c@m l1nk here", "scam link"),
    ("you @ss", "ass"),
    ("asssss", "ass"),
    ("1d10t", "idiot"),
    ("idiot!", "idiot"),
]

PASSED = [
    "a good word",
    "class assignment",          # contains "ass" inside a word: not a match
    "as", "bass", "passage", "badwords are words",  # not the word itself
    "scam", "link", "scamlink?",  # one word of a phrase, or a phrase glued
    "I scored 2024 points", "idiotic",
    "",
]


@pytest.mark.parametrize(("text", "term"), CAUGHT)
def test_evasions_are_caught(text: str, term: str) -> None:
    assert TermMatcher(TERMS).match(text) == term


@pytest.mark.parametrize("text", PASSED)
def test_ordinary_text_passes(text: str) -> None:
    assert TermMatcher(TERMS).match(text) is None


def test_folding() -> None:
    assert fold("Héllo, W0rld!") == ["hello", "world"]
    assert fold("room 101") == ["room", "101"]
    assert runs("baaad") == ("bad", (1, 3, 1))


def test_scopes() -> None:
    pre = Prefilter()
    pre.rebuild([("*", "spam"), ("s1", "boo")])
    assert pre.blocked("s1", "SPAM!") == "spam" and pre.blocked("s2", "spam") == "spam"
    assert pre.blocked("s1", "boo") == "boo" and pre.blocked("s2", "boo") is None
    assert Prefilter().blocked("s", "anything") is None


def test_a_long_comment_is_folded_once_for_every_scope() -> None:
    comment = Folded("Baaad words, b4d w0rds and a very long tail " * 40)
    assert comment.keys[:3] == ["bad", "words", "bad"]
    assert comment.runs_at(0) == (1, 3, 1) and comment.runs_at(2) == (1, 1, 1)
    pre = Prefilter()
    pre.rebuild([("*", "tail end"), ("s", "bad words")])
    assert pre.blocked("s", "so many BAAAD   w0rds!") == "bad words"
    assert pre.blocked("t", "so many BAAAD   w0rds!") is None


# -- the fast fold is the plain one ----------------------------------------------------------------

_REFERENCE_WORD = re.compile(r"[\w@$!|+€£¢]+")


def reference_fold(text: str) -> list[str]:
    """`fold` written plainly, one character at a time (slower by a factor of about three on
    long comments): the property below holds the fast one to it."""
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
        text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                       if unicodedata.category(ch) not in ("Mn", "Cf"))
        text = text.translate(CONFUSABLES)
    words = []
    for raw in _REFERENCE_WORD.findall(text):
        word = raw.replace("_", "").rstrip("!")
        if not word:
            continue
        if any(ch.isalpha() for ch in word) or (len(word) == 1 and word in "0134578 9@$!|+€£¢"
                                                 .replace(" ", "")):
            word = word.translate(LEET)
        word = "".join(ch for ch in word if ch.isalnum())
        if word:
            words.append(word)
    return _join_spread(words)


CHARS = st.sampled_from([*"abcABZ xyz019345$@!|+_.-,'ß²½éüÅ€£¢",
                         "\u200b", "\u00ad", "\u0301", "а", "о", "β", "ＢＡ", "🔥", "三", "Ⅻ"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(CHARS, max_size=60).map("".join))
def test_fold_is_the_reference_fold(text: str) -> None:
    assert fold(text) == reference_fold(text)
    comment = Folded(text)
    assert comment.keys == [runs(w)[0] for w in comment.words]
    assert all(comment.runs_at(i) == runs(w)[1] for i, w in enumerate(comment.words))
