"""The moderation classifier: a deeper look at comments already published. Pure.

It never runs on the live path: region/classifier_worker.py feeds it the region's own
comments from the log, after they were stored and delivered, and a flagged comment is
retracted or held for review (the stream's policy) through a moderation decision, which
reaches every viewer in every region like a moderator's.

`Classifier` is the pluggable interface; `HeuristicClassifier` the default. It scores the
signals that the spam of live chat shows, each from `Window` (what this worker saw in the
last `WINDOW_S` seconds):

- flooding: the same text (folded: case, accents, leetspeak, digits and punctuation
  removed) from several users, in any streams, or again and again from one user; except
  that an ordinary text's numbers tell one user's texts apart while that user posts at a
  human pace (`ordinary_numbers`): "round 1", "round 2" is a sequence, not one text again;
- links, weighed more from an account first seen moments ago;
- caps and emoji floods;
- posting rate.

A comment is flagged when its score reaches `FLAG_AT`. The false-positive rate on a set of
ordinary chat (tests/data/ordinary_comments.txt) is stated in docs/protocol.md and checked by
tests/unit/test_classifier.py. Short texts ("gg", "lol", "🔥🔥") never count as a flood: a
hype moment makes everyone say the same short thing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

from chorus.model import Comment
from region.moderation_prefilter import fold

WINDOW_S = 60.0           # what the window remembers
RATE_WINDOW_S = 10.0
MIN_FLOOD_CHARS = 12      # a folded text shorter than this is never a flood
FLAG_AT = 0.6
MAX_TEXTS = 50_000        # texts remembered in the window (oldest go first)
MAX_USERS = 100_000       # users remembered (first seen, recent posts)
NEW_ACCOUNT_S = 120.0

_LINK = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9-]{2,}\.(?:com|net|org|io|ru|xyz|"
                   r"top|info|biz|ly|gg|link|click|shop|app|me)\b(?:/\S*)?")


_NUMBER = re.compile(r"(?<!\w)\d+(?!\w)")
# A digit against a letter ("n0w", "b4d", "f0llowers"): leetspeak, spelled to slip past.
_LEET = re.compile(r"[^\W\d_]\d|\d[^\W\d_]")


@dataclass(frozen=True)
class Signals:
    """What the window knew of a comment when it saw it."""

    same_text_users: int      # distinct users who posted this folded text in the window
    same_text_by_user: int    # times this user posted it in the window (this one included)
    same_numbers_by_user: int  # of those, with the same standalone numbers as this one
    user_rate: int            # this user's comments in the last RATE_WINDOW_S
    user_age_s: float         # since this worker first saw the user


@dataclass(frozen=True)
class Score:
    score: float
    reasons: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return self.score >= FLAG_AT


class Classifier(Protocol):
    def score(self, comment: Comment, signals: Signals) -> Score: ...


def fingerprint(text: str) -> str:
    """The text with what spammers vary removed: case, accents, leetspeak, digits, spacing,
    punctuation, repeated letters."""
    # Numbers standing alone go first (fold would read a lone "0" as the letter "o").
    letters = "".join(w for w in fold(_NUMBER.sub(" ", text)) if not w.isdigit())
    out: list[str] = []
    for ch in letters:
        if ch.isalpha() and (not out or out[-1] != ch):
            out.append(ch)
    return "".join(out)


def ordinary_numbers(text: str) -> bool:
    """Whether ``text``'s standalone numbers are part of what it says ("comment 2", "3-1
    for us!"), not what a spammer varies: it has some, and no leetspeak and no link, the
    marks of a text spelled to slip past (``buy n0w 123``)."""
    return (_NUMBER.search(text) is not None and _LEET.search(text) is None
            and _LINK.search(text) is None)


def _numbers(text: str) -> str:
    """The standalone numbers of ``text`` in order, as one key ("1 2"; "" when none)."""
    return " ".join(n.lstrip("0") or "0" for n in _NUMBER.findall(text))


def _emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF


@dataclass
class HeuristicClassifier:
    """The default: weights of each signal (a comment is flagged at `FLAG_AT`)."""

    flood_users: int = 4          # distinct users with the same text
    repeats: int = 3              # the same text from one user
    rate: int = 8                 # comments of one user in RATE_WINDOW_S

    def score(self, comment: Comment, signals: Signals) -> Score:
        score = 0.0
        reasons: list[str] = []
        if signals.same_text_users >= self.flood_users:
            score += 0.6
            reasons.append(f"the same text from {signals.same_text_users} users")
        repeated = signals.same_text_by_user
        if signals.user_rate < self.rate and ordinary_numbers(comment.text):
            # A numbered sequence at a human pace (a quiz's answers, "comment 1, comment 2"):
            # only the same numbers again are the same text again. At a bot's pace, or
            # spelled to slip past, the numbers are the variation of one text.
            repeated = signals.same_numbers_by_user
        if repeated >= self.repeats:
            score += 0.6
            reasons.append(f"the same text {repeated} times")
        if _LINK.search(comment.text):
            score += 0.3
            reasons.append("a link")
            if signals.user_age_s < NEW_ACCOUNT_S:
                score += 0.3
                reasons.append("from a new account")
        letters = [ch for ch in comment.text if ch.isalpha()]
        if len(letters) >= 12 and sum(ch.isupper() for ch in letters) / len(letters) > 0.8:
            score += 0.3
            reasons.append("capitals")
        visible = [ch for ch in comment.text if not ch.isspace()]
        emoji = sum(_emoji(ch) for ch in visible)
        if emoji >= 12 and emoji / max(1, len(visible)) > 0.6:
            score += 0.3
            reasons.append("an emoji flood")
        if signals.user_rate >= self.rate:
            score += 0.3
            reasons.append(f"{signals.user_rate} comments in {RATE_WINDOW_S:.0f} s")
        return Score(round(score, 2), tuple(reasons))


@dataclass
class Window:
    """The recent past as one worker saw it, bounded in time and size. ``observe`` each
    comment in time order (``now_s``: seconds, any monotonic origin). A comment observed
    again (by id) counts once: its signals are those of the first time, so a worker may
    feed the window from the region's whole live feed and still score the comments it was
    handed (whichever copy came first)."""

    # (t, fp, user, numbers): each text in the window, counted in the two maps below
    _texts: deque[tuple[float, str, str, str]] = field(default_factory=deque)
    _by_text: dict[str, dict[str, int]] = field(default_factory=dict)     # fp -> user -> n
    # (fp, user, numbers) -> n: one user's texts told apart by their standalone numbers too
    _by_numbers: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _users: OrderedDict[str, tuple[float, deque[float]]] = field(default_factory=OrderedDict)
    _observed: OrderedDict[str, Signals] = field(default_factory=OrderedDict)  # id -> signals
    _started: float | None = None

    def observe(self, comment: Comment, now_s: float) -> Signals:
        seen = self._observed.get(comment.id)
        if seen is not None:
            return seen
        signals = self._observe(comment, now_s)
        self._observed[comment.id] = signals
        if len(self._observed) > MAX_TEXTS:
            self._observed.popitem(last=False)
        return signals

    def _observe(self, comment: Comment, now_s: float) -> Signals:
        if self._started is None:
            self._started = now_s
        self._expire(now_s)
        fp = fingerprint(comment.text)
        same_users = same_by_user = same_numbers = 0
        if len(fp) >= MIN_FLOOD_CHARS:
            users = self._by_text.setdefault(fp, {})
            users[comment.user] = users.get(comment.user, 0) + 1
            key = (fp, comment.user, _numbers(comment.text))
            self._by_numbers[key] = same_numbers = self._by_numbers.get(key, 0) + 1
            self._texts.append((now_s, fp, comment.user, key[2]))
            same_users, same_by_user = len(users), users[comment.user]
            if len(self._texts) > MAX_TEXTS:
                self._forget_text()
        first, recent = self._users.pop(comment.user, (now_s, deque()))
        self._users[comment.user] = (first, recent)
        recent.append(now_s)
        while recent and recent[0] < now_s - RATE_WINDOW_S:
            recent.popleft()
        if len(self._users) > MAX_USERS:
            self._users.popitem(last=False)
        # A user is new only to a window that has been watching longer than that: after a
        # restart everyone would look new.
        known = now_s - self._started >= NEW_ACCOUNT_S
        return Signals(same_text_users=same_users, same_text_by_user=same_by_user,
                       same_numbers_by_user=same_numbers, user_rate=len(recent),
                       user_age_s=now_s - first if known else float("inf"))

    def _expire(self, now_s: float) -> None:
        while self._texts and self._texts[0][0] < now_s - WINDOW_S:
            self._forget_text()

    def _forget_text(self) -> None:
        _, fp, user, numbers = self._texts.popleft()
        key = (fp, user, numbers)
        left = self._by_numbers.get(key, 0) - 1
        if left > 0:
            self._by_numbers[key] = left
        else:
            self._by_numbers.pop(key, None)
        users = self._by_text.get(fp)
        if users is None:
            return
        users[user] -= 1
        if users[user] <= 0:
            del users[user]
        if not users:
            del self._by_text[fp]
