"""One moderation state for every region: the decisions, and what they add up to. Pure.

A moderation decision is about a user or a stream, never a region. Every decision is a
`Decision`: who made it (``by``), when (``ts_ms``, the deciding gateway's wall clock), why
(``reason``), where (``origin``, the region whose log holds it, numbered ``seq`` 1, 2, 3... by
that log) and what (``action``, one of the typed actions below). The global plane
(global_/moderation.py) replicates every region's decisions to every other region; each
gateway applies them, in each origin's order, to its own `ModerationState` and reads that
copy on the post path: checking a post costs no round trip to anyone.

Actions and the key each one sets (the state keeps, per key, the decision with the greatest
``(ts_ms, origin, seq)``: last writer wins, so every region that has applied the same
decisions holds the same state whatever order the origins' streams arrived in):

=================  ==================================  =====================================
action             key                                  effect
=================  ==================================  =====================================
`Restrict`         ``ban:<user>`` / ``shadow:<user>``   refuse the user's posts (403), or
                                                        store them shown to the author only;
                                                        ``until_ms`` makes it a timeout
`Verdict`          ``comment:<stream>:<id>``            retract, hold for review, or approve
                                                        (undo either) one comment
`Pin`              ``pin:<stream>``                     the stream's pinned comment (or none)
`SlowMode`         ``slow:<stream>``                    one comment per ``interval_s`` per
                                                        user; 0 turns it off
`Terms`            ``term:<scope>:<term>`` per term     blocked terms, global (scope ``*``)
                                                        or per stream
`Policy`           ``policy:<stream>``                  what the classifier's flag does
=================  ==================================  =====================================

Every decision is also an audit record: the state keeps the latest `AUDIT_MAX` of them.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chorus.errors import Unavailable
from chorus.ids import id_time_ms, is_id
from chorus.model import STREAM_ID, Comment

GLOBAL = "*"                   # the scope of terms blocked in every stream
TIMEOUT_MIN_S = 10
TIMEOUT_MAX_S = 24 * 3600
SLOW_MODE_MAX_S = 3600
TERM_MAX_CHARS = 100
TERMS_PER_DECISION = 1000      # one decision carries at most this many terms (a message's size)
REASON_MAX_CHARS = 500
AUDIT_MAX = 10_000             # audit records kept in memory per gateway, newest last
RETRACTED_MAX = 200_000        # comment verdicts remembered; the oldest comments go first
RECENT_RETRACTIONS = 100       # per stream, sent to resuming and polling clients
RECENT_RESTORATIONS = 100      # approved comments remembered per stream, for polling clients

ClassifierAction = Literal["retract", "hold", "off"]
CommentState = Literal["retracted", "held", "approved"]
RestrictKind = Literal["ban", "shadow"]


class ModerationUnavailable(Unavailable):
    """The moderation log did not take or answer a decision; nothing was decided."""


class DecisionError(ValueError):
    """A decision that is not one (a bug or a stray message); ``reason`` says why."""


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restrict:
    """``kind`` "ban" refuses the user's posts; "shadow" stores them, shown to the author
    only. ``active`` False lifts it. ``until_ms`` (ms since the epoch) ends it by itself: a
    timeout is a ban with an end."""

    user: str
    kind: RestrictKind
    active: bool
    until_ms: int | None = None
    type: Literal["restrict"] = "restrict"

    @property
    def keys(self) -> tuple[str, ...]:
        return (f"{self.kind}:{self.user}",)


@dataclass(frozen=True)
class Verdict:
    """One comment: "retracted" (gone for everyone), "held" (hidden from everyone but its
    author and moderators until a moderator approves it), "approved" (shown again).
    ``comment``: the comment itself, carried by an approval so that every gateway can show
    it again to its live viewers without reading it from anywhere (None: not found when
    approved, or a decision of an earlier version)."""

    stream: str
    comment_id: str
    author: str
    state: CommentState
    comment: Comment | None = None
    type: Literal["verdict"] = "verdict"

    @property
    def keys(self) -> tuple[str, ...]:
        return (f"comment:{self.stream}:{self.comment_id}",)


@dataclass(frozen=True)
class Pin:
    """The stream's pinned comment; None unpins."""

    stream: str
    comment: Comment | None
    type: Literal["pin"] = "pin"

    @property
    def keys(self) -> tuple[str, ...]:
        return (f"pin:{self.stream}",)


@dataclass(frozen=True)
class SlowMode:
    stream: str
    interval_s: int          # 0: off
    type: Literal["slow_mode"] = "slow_mode"

    @property
    def keys(self) -> tuple[str, ...]:
        return (f"slow:{self.stream}",)


@dataclass(frozen=True)
class Terms:
    """Blocks ``add`` and unblocks ``remove`` in ``scope`` (a stream, or `GLOBAL`). Terms are
    kept as given; matching normalises them (region/moderation_prefilter.py)."""

    scope: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    type: Literal["terms"] = "terms"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"term:{self.scope}:{t}" for t in (*self.add, *self.remove))


@dataclass(frozen=True)
class Policy:
    """What a comment the classifier flags becomes in ``stream``."""

    stream: str
    classifier: ClassifierAction
    type: Literal["policy"] = "policy"

    @property
    def keys(self) -> tuple[str, ...]:
        return (f"policy:{self.stream}",)


Action = Restrict | Verdict | Pin | SlowMode | Terms | Policy


@dataclass(frozen=True)
class Decision:
    """``id`` is unique (a comment-style id of the deciding gateway); ``seq`` 0 until the
    origin's log numbered it."""

    id: str
    origin: str
    seq: int
    ts_ms: int
    by: str
    reason: str
    action: Action

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.ts_ms, self.origin, self.seq)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "origin": self.origin, "seq": self.seq, "ts_ms": self.ts_ms,
                "by": self.by, "reason": self.reason, "action": action_json(self.action)}

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Decision:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DecisionError(f"not JSON ({type(exc).__name__})") from None
        return cls.from_json(doc)

    @classmethod
    def from_json(cls, doc: Any) -> Decision:
        if not isinstance(doc, dict):
            raise DecisionError("a decision is a JSON object")
        seq = _int(doc, "seq")
        return cls(id=_text(doc, "id"), origin=_text(doc, "origin"), seq=seq,
                   ts_ms=_int(doc, "ts_ms"), by=_text(doc, "by"),
                   reason=_text(doc, "reason", empty=True),
                   action=action_from_json(doc.get("action")))


def action_json(action: Action) -> dict[str, Any]:
    match action:
        case Pin(stream=stream, comment=comment):
            return {"type": "pin", "stream": stream,
                    "comment": comment.to_json() if comment else None}
        case Terms(scope=scope, add=add, remove=remove):
            return {"type": "terms", "scope": scope, "add": list(add), "remove": list(remove)}
        case Verdict(comment=comment):
            doc = {k: v for k, v in vars(action).items() if k != "comment"}
            if comment is not None:
                doc["comment"] = comment.to_json()  # absent otherwise, as before approvals
            return doc
        case _:
            return dict(vars(action))


def action_from_json(doc: Any) -> Action:
    if not isinstance(doc, dict):
        raise DecisionError("'action' is not a JSON object")
    match doc.get("type"):
        case "restrict":
            kind = doc.get("kind")
            if kind not in ("ban", "shadow"):
                raise DecisionError("restrict 'kind' is ban or shadow")
            until = doc.get("until_ms")
            if until is not None:
                until = _int(doc, "until_ms")
            return Restrict(user=_text(doc, "user"), kind=kind, active=_bool(doc, "active"),
                            until_ms=until)
        case "verdict":
            state = doc.get("state")
            if state not in ("retracted", "held", "approved"):
                raise DecisionError("verdict 'state' is retracted, held or approved")
            comment_id = _text(doc, "comment_id")
            if not is_id(comment_id):
                raise DecisionError("verdict 'comment_id' is not a comment id")
            stream = _stream(doc, "stream")
            comment = _comment(doc, "comment")
            if comment is not None and (comment.id, comment.stream) != (comment_id, stream):
                raise DecisionError("verdict 'comment' is not the comment it is about")
            return Verdict(stream=stream, comment_id=comment_id,
                           author=_text(doc, "author", empty=True), state=state,
                           comment=comment)
        case "pin":
            return Pin(stream=_stream(doc, "stream"), comment=_comment(doc, "comment"))
        case "slow_mode":
            return SlowMode(stream=_stream(doc, "stream"), interval_s=_int(doc, "interval_s"))
        case "terms":
            scope = _text(doc, "scope")
            if scope != GLOBAL and not STREAM_ID.match(scope):
                raise DecisionError("terms 'scope' is '*' or a stream id")
            return Terms(scope=scope, add=_strings(doc, "add"), remove=_strings(doc, "remove"))
        case "policy":
            action = doc.get("classifier")
            if action not in ("retract", "hold", "off"):
                raise DecisionError("policy 'classifier' is retract, hold or off")
            return Policy(stream=_stream(doc, "stream"), classifier=action)
        case other:
            raise DecisionError(f"unknown action type {str(other)[:32]!r}")


def _comment(doc: dict[str, Any], key: str) -> Comment | None:
    raw = doc.get(key)
    try:
        return None if raw is None else Comment.from_json(raw)
    except ValueError as exc:
        raise DecisionError(f"{doc.get('type')} {key!r}: {exc}") from None


def _text(doc: dict[str, Any], key: str, *, empty: bool = False) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or (not value and not empty):
        raise DecisionError(f"{key!r} is not a {'' if empty else 'non-empty '}string")
    return value


def _stream(doc: dict[str, Any], key: str) -> str:
    value = _text(doc, key)
    if not STREAM_ID.match(value):
        raise DecisionError(f"{key!r} is not a stream id")
    return value


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecisionError(f"{key!r} is not a non-negative integer")
    return value


def _bool(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        raise DecisionError(f"{key!r} is not true or false")
    return value


def _strings(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DecisionError(f"{key!r} is not a list of strings")
    return tuple(value)


# -- the state -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """What the state says of one user's post to one stream at one time."""

    banned: bool = False
    shadow: bool = False
    until_ms: int | None = None      # when the ban ends (a timeout); None: no end


@dataclass
class _Restriction:
    order: tuple[int, str, int]
    active: bool
    until_ms: int | None


@dataclass
class ModerationState:
    """Every decision applied so far, and what they add up to. Not thread-safe; one per
    gateway, fed by the global plane's replica (global_/moderation.py) in each origin's
    order. ``on_terms`` is called after blocked terms change (the prefilter rebuilds)."""

    applied: dict[str, int] = field(default_factory=dict)   # origin -> last seq applied
    audit: deque[Decision] = field(default_factory=lambda: deque(maxlen=AUDIT_MAX))
    on_terms: Callable[[], None] | None = None
    _orders: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    _restrictions: dict[str, _Restriction] = field(default_factory=dict)
    _comments: OrderedDict[tuple[str, str], tuple[CommentState, str]] = field(
        default_factory=OrderedDict)
    _recent: dict[str, deque[str]] = field(default_factory=dict)
    _restored: dict[str, deque[tuple[int, Comment]]] = field(default_factory=dict)
    _pins: dict[str, Comment | None] = field(default_factory=dict)
    _slow: dict[str, int] = field(default_factory=dict)
    _terms: dict[str, dict[str, bool]] = field(default_factory=dict)
    _policies: dict[str, ClassifierAction] = field(default_factory=dict)

    # -- applying ----------------------------------------------------------------------------

    def apply(self, decision: Decision) -> bool:
        """Applies ``decision`` unless its origin's ``seq`` was applied already (a copy that
        came twice: replication and a catch-up). True when it was new."""
        if decision.seq <= self.applied.get(decision.origin, 0):
            return False
        self.applied[decision.origin] = decision.seq
        self.audit.append(decision)
        action = decision.action
        if isinstance(action, Terms):
            self._apply_terms(decision, action)
            return True
        (key,) = action.keys
        if self._orders.get(key, (-1, "", -1)) >= decision.order:
            return True  # an older decision about the same thing: the newer one stands
        self._orders[key] = decision.order
        match action:
            case Restrict(active=active, until_ms=until):
                self._restrictions[key] = _Restriction(decision.order, active, until)
            case Verdict(stream=stream, comment_id=comment_id, author=author, state=state,
                         comment=comment):
                self._set_verdict(stream, comment_id, author, state)
                if state == "approved" and comment is not None:
                    self._restored.setdefault(stream, deque(maxlen=RECENT_RESTORATIONS)
                                              ).append((decision.ts_ms, comment))
            case Pin(stream=stream, comment=comment):
                self._pins[stream] = comment
            case SlowMode(stream=stream, interval_s=interval):
                self._slow[stream] = interval
            case Policy(stream=stream, classifier=classifier):
                self._policies[stream] = classifier
        return True

    def _apply_terms(self, decision: Decision, terms: Terms) -> None:
        changed = False
        scope = self._terms.setdefault(terms.scope, {})
        for term, on in [*((t, True) for t in terms.add), *((t, False) for t in terms.remove)]:
            key = f"term:{terms.scope}:{term}"
            if self._orders.get(key, (-1, "", -1)) >= decision.order:
                continue
            self._orders[key] = decision.order
            scope[term] = on
            changed = True
        if changed and self.on_terms is not None:
            self.on_terms()

    def _set_verdict(self, stream: str, comment_id: str, author: str,
                     state: CommentState) -> None:
        key = (stream, comment_id)
        self._comments.pop(key, None)
        if state == "approved":
            return
        self._comments[key] = (state, author)
        recent = self._recent.setdefault(stream, deque(maxlen=RECENT_RETRACTIONS))
        if comment_id in recent:
            recent.remove(comment_id)  # at most RECENT_RETRACTIONS long
        recent.append(comment_id)
        if len(self._comments) > RETRACTED_MAX:
            # Bounded: the oldest comments' verdicts go first (by their id's time). A comment
            # that old is beyond every replay window; the archive's own mark still hides it.
            oldest = min(self._comments, key=lambda k: _id_ms(k[1]))
            self._comments.pop(oldest)

    # -- reading -----------------------------------------------------------------------------

    def standing(self, user: str, now_ms: int) -> Standing:
        ban = self._live(f"ban:{user}", now_ms)
        shadow = self._live(f"shadow:{user}", now_ms)
        return Standing(banned=ban is not None, shadow=shadow is not None,
                        until_ms=ban.until_ms if ban is not None else None)

    def _live(self, key: str, now_ms: int) -> _Restriction | None:
        found = self._restrictions.get(key)
        if found is None or not found.active:
            return None
        if found.until_ms is not None and found.until_ms <= now_ms:
            return None
        return found

    def hidden(self, comment: Comment, viewer: str | None = None, *,
               moderator: bool = False) -> bool:
        """Whether ``viewer`` must not see ``comment``: retracted (from everyone), or held for
        review (from everyone but its author and moderators)."""
        verdict = self._comments.get((comment.stream, comment.id))
        if verdict is None:
            return False
        state, _ = verdict
        if state == "held":
            return not moderator and viewer != comment.user
        return True

    def state_of(self, stream: str, comment_id: str) -> CommentState | None:
        verdict = self._comments.get((stream, comment_id))
        return verdict[0] if verdict else None

    def recent_retractions(self, stream: str) -> tuple[str, ...]:
        """The stream's latest retracted or held comments (at most `RECENT_RETRACTIONS`)."""
        return tuple(i for i in self._recent.get(stream, ())
                     if (stream, i) in self._comments)

    def recent_restorations(self, stream: str, since_ms: int) -> tuple[Comment, ...]:
        """The stream's comments approved at or after ``since_ms`` (the deciding gateway's
        clock) and shown now: a long-poll carries them, as a poller may have been between
        two polls when the live ``restore`` frame went out."""
        return tuple(c for ts, c in self._restored.get(stream, ())
                     if ts >= since_ms and (stream, c.id) not in self._comments)

    def pin(self, stream: str) -> Comment | None:
        """The stream's pinned comment; None when nothing is pinned, or when the pinned
        comment was taken down since (a pin never shows what retraction hid)."""
        pinned = self._pins.get(stream)
        if pinned is None or (stream, pinned.id) in self._comments:
            return None
        return pinned

    def slow_mode_s(self, stream: str) -> int:
        return self._slow.get(stream, 0)

    def policy(self, stream: str) -> ClassifierAction:
        return self._policies.get(stream, "hold")

    def terms(self, scope: str) -> list[str]:
        return sorted(t for t, on in self._terms.get(scope, {}).items() if on)

    def all_terms(self) -> Iterator[tuple[str, str]]:
        """Every blocked (scope, term)."""
        for scope, terms in self._terms.items():
            for term, on in terms.items():
                if on:
                    yield scope, term

    def audit_records(self, *, user: str | None = None, stream: str | None = None,
                      limit: int = 100) -> list[Decision]:
        """Newest first, filtered by the user or stream a decision is about."""
        out: list[Decision] = []
        for decision in reversed(self.audit):
            if user is not None and _user_of(decision.action) != user:
                continue
            if stream is not None and _stream_of(decision.action) != stream:
                continue
            out.append(decision)
            if len(out) >= limit:
                break
        return out


def _id_ms(comment_id: str) -> int:
    try:
        return id_time_ms(comment_id)
    except ValueError:
        return 0


def _user_of(action: Action) -> str | None:
    match action:
        case Restrict(user=user):
            return user
        case Verdict(author=author):
            return author
    return None


def _stream_of(action: Action) -> str | None:
    match action:
        case Verdict(stream=s) | Pin(stream=s) | SlowMode(stream=s) | Policy(stream=s):
            return s
        case Terms(scope=scope):
            return None if scope == GLOBAL else scope
    return None


# -- the seam to the global plane --------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A decision as its moderator is told: stored by its origin as ``seq``, applied by the
    regions in ``applied``, not (yet) by those in ``pending`` (unreachable, or slower than
    the wait); they apply it when they can (docs/protocol.md, "Moderation")."""

    decision: Decision
    applied: tuple[str, ...]
    pending: tuple[str, ...]


class DecisionLog(Protocol):
    """Where a gateway's decisions go: the global plane's replica (global_/moderation.py)."""

    async def decide(self, action: Action, *, by: str, reason: str,
                     wait: bool = True) -> Outcome:
        """Stores the decision in this region's moderation log, then waits (bounded) until
        every reachable region has applied it; ``wait`` False returns once it is stored and
        applied here (the classifier: nobody waits for its answer, and its next comment
        should not wait for the slowest region either). Raises ModerationUnavailable when
        this region's log did not take it."""
        ...

    async def ready(self) -> None:
        """Returns once this gateway has applied every decision it knows exists (its start
        replay; a healed link's backlog). Raises ModerationUnavailable when that takes longer
        than the bound: posts wait rather than pass a check they should have failed."""
        ...


def decisions_of(data: Iterable[bytes]) -> list[Decision]:
    """Decodes what can be decoded (tests and tools)."""
    return [Decision.decode(d) for d in data]
