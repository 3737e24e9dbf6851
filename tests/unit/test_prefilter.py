"""The prefilter's folding and matching: each evasion of the table is caught, and ordinary
words that merely contain a blocked term are not (region/moderation_prefilter.py)."""

# ruff: noqa: RUF001, RUF003 -- look-alike letters are what these cases are made of

from __future__ import annotations

import pytest

from region.moderation_prefilter import Prefilter, TermMatcher, fold, runs

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
