from chorus.model import Comment
from chorus.timeline import Gap, Timeline


def c(cid: str) -> Comment:
    return Comment(cid, "s", "us-east", "u", "U", cid, 0)


def test_dedupes_and_orders_by_id() -> None:
    t = Timeline()
    assert t.extend([c("b"), c("a"), c("d"), c("b"), c("c")]) == 4
    assert t.ids() == ["a", "b", "c", "d"] and t.duplicates == 1
    assert "c" in t and t.last_id == "d"


def test_oldest_fall_off_the_limit_and_may_come_back() -> None:
    t = Timeline(limit=2)
    t.extend([c("a"), c("b"), c("c")])
    assert t.ids() == ["b", "c"]
    assert t.add(c("a")) and t.ids() == ["b", "c"]  # too old to keep


def test_gaps_are_explicit_until_filled() -> None:
    t = Timeline()
    t.mark_gap("a", "f")
    t.add(c("c"))
    assert t.gaps == [Gap("a", "f")]
    t.fill_gap(Gap("a", "f"))
    assert t.gaps == []
