"""The moderation state: decisions in, what they add up to out (region/moderation.py)."""

from __future__ import annotations

import pytest

from chorus.model import Comment
from region.moderation import (
    AUDIT_MAX,
    Decision,
    DecisionError,
    ModerationState,
    Pin,
    Policy,
    Restrict,
    SlowMode,
    Terms,
    Verdict,
)

CID = "0000000000010000-us-east.0"


def decision(action: object, *, origin: str = "us-east", seq: int = 1, ts: int = 1000,
             by: str = "mod") -> Decision:
    return Decision(id=f"d{origin}{seq}", origin=origin, seq=seq, ts_ms=ts, by=by,
                    reason="why", action=action)  # type: ignore[arg-type]


def comment(cid: str = CID, user: str = "ann") -> Comment:
    return Comment(id=cid, stream="s", region="us-east", user=user, name=user, text="hi", ts=1)


def test_every_action_survives_the_wire() -> None:
    for action in (Restrict(user="bob", kind="shadow", active=True, until_ms=5),
                   Verdict(stream="s", comment_id=CID, author="ann", state="held"),
                   Verdict(stream="s", comment_id=CID, author="ann", state="approved",
                           comment=comment()),
                   Pin(stream="s", comment=comment()), Pin(stream="s", comment=None),
                   SlowMode(stream="s", interval_s=30),
                   Terms(scope="*", add=("a b",), remove=("c",)),
                   Policy(stream="s", classifier="off")):
        d = decision(action)
        assert Decision.decode(d.encode()) == d


@pytest.mark.parametrize("doc", [
    b"not json", b"[]", b'{"id":"x","origin":"o","seq":1,"ts_ms":1,"by":"m","reason":""}',
    b'{"id":"x","origin":"o","seq":-1,"ts_ms":1,"by":"m","reason":"","action":'
    b'{"type":"slow_mode","stream":"s","interval_s":1}}',
    b'{"id":"x","origin":"o","seq":1,"ts_ms":1,"by":"m","reason":"","action":'
    b'{"type":"verdict","stream":"s","comment_id":"nope","author":"","state":"retracted"}}',
    b'{"id":"x","origin":"o","seq":1,"ts_ms":1,"by":"m","reason":"","action":{"type":"x"}}',
])
def test_what_is_not_a_decision_is_refused(doc: bytes) -> None:
    with pytest.raises(DecisionError):
        Decision.decode(doc)


def test_a_ban_holds_until_lifted_and_a_timeout_until_its_end() -> None:
    state = ModerationState()
    state.apply(decision(Restrict(user="bob", kind="ban", active=True), seq=1))
    assert state.standing("bob", now_ms=2000).banned
    state.apply(decision(Restrict(user="bob", kind="ban", active=False), seq=2, ts=1001))
    assert not state.standing("bob", now_ms=2000).banned
    state.apply(decision(Restrict(user="bob", kind="ban", active=True, until_ms=5000),
                         seq=3, ts=1002))
    assert state.standing("bob", now_ms=4999) == state.standing("bob", now_ms=4999)
    assert state.standing("bob", now_ms=4999).until_ms == 5000
    assert not state.standing("bob", now_ms=5000).banned


def test_a_copy_that_comes_twice_is_applied_once() -> None:
    state = ModerationState()
    d = decision(SlowMode(stream="s", interval_s=5))
    assert state.apply(d) and not state.apply(d)
    assert len(state.audit) == 1 and state.applied == {"us-east": 1}


def test_the_latest_decision_wins_whatever_order_the_regions_arrive_in() -> None:
    ban = decision(Restrict(user="bob", kind="ban", active=True), origin="us-east", ts=10)
    lift = decision(Restrict(user="bob", kind="ban", active=False), origin="eu-west", ts=20)
    one, two = ModerationState(), ModerationState()
    one.apply(ban)
    one.apply(lift)
    two.apply(lift)
    two.apply(ban)
    assert not one.standing("bob", 0).banned and not two.standing("bob", 0).banned


def test_retracted_is_hidden_from_all_held_from_all_but_author_and_moderators() -> None:
    state = ModerationState()
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="held")))
    c = comment()
    assert state.hidden(c, "bob") and not state.hidden(c, "ann")
    assert not state.hidden(c, "bob", moderator=True)
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="retracted"),
                         seq=2, ts=2000))
    assert state.hidden(c, "ann") and state.hidden(c, "bob", moderator=True)
    assert state.recent_retractions("s") == (CID,)
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="approved"),
                         seq=3, ts=3000))
    assert not state.hidden(c, "bob") and state.recent_retractions("s") == ()


def test_pins_slow_mode_policy_and_terms() -> None:
    changed: list[int] = []
    state = ModerationState(on_terms=lambda: changed.append(1))
    state.apply(decision(Pin(stream="s", comment=comment()), seq=1))
    state.apply(decision(SlowMode(stream="s", interval_s=30), seq=2))
    state.apply(decision(Policy(stream="s", classifier="retract"), seq=3))
    state.apply(decision(Terms(scope="*", add=("spam", "scam")), seq=4))
    state.apply(decision(Terms(scope="s", add=("boo",), remove=()), seq=5))
    state.apply(decision(Terms(scope="*", remove=("scam",)), seq=6, ts=1001))
    assert state.pin("s") == comment() and state.pin("t") is None
    assert state.slow_mode_s("s") == 30 and state.slow_mode_s("t") == 0
    assert state.policy("s") == "retract" and state.policy("t") == "hold"
    assert state.terms("*") == ["spam"] and sorted(state.all_terms()) == [("*", "spam"),
                                                                          ("s", "boo")]
    assert len(changed) == 3


def test_the_audit_trail_is_bounded_and_filtered() -> None:
    state = ModerationState()
    for i in range(AUDIT_MAX + 5):
        state.apply(decision(Restrict(user=f"u{i % 3}", kind="ban", active=True), seq=i + 1,
                             ts=i))
    assert len(state.audit) == AUDIT_MAX
    mine = state.audit_records(user="u1", limit=3)
    assert len(mine) == 3 and all(d.action.user == "u1" for d in mine)  # type: ignore[union-attr]
    assert mine[0].seq > mine[1].seq


def test_an_approval_carries_its_comment_and_is_remembered_for_pollers() -> None:
    state = ModerationState()
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="held")))
    assert state.recent_restorations("s", 0) == ()
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="approved",
                                 comment=comment()), seq=2, ts=2000))
    assert not state.hidden(comment())
    assert state.recent_restorations("s", 2000) == (comment(),)
    assert state.recent_restorations("s", 2001) == ()          # older than asked for
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="retracted"),
                         seq=3, ts=3000))
    assert state.recent_restorations("s", 0) == ()             # taken down again
    with pytest.raises(DecisionError, match="not the comment"):
        Decision.decode(decision(Verdict(stream="s", comment_id="0000000000020000-us-east.0",
                                         author="ann", state="approved",
                                         comment=comment())).encode())


def test_a_pin_taken_down_is_no_pin() -> None:
    state = ModerationState()
    state.apply(decision(Pin(stream="s", comment=comment())))
    assert state.pin("s") == comment()
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="retracted"),
                         seq=2, ts=2000))
    assert state.pin("s") is None
    state.apply(decision(Verdict(stream="s", comment_id=CID, author="ann", state="approved"),
                         seq=3, ts=3000))
    assert state.pin("s") == comment()
