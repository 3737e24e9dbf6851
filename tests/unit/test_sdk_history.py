import pytest

from chorus.model import Comment
from chorus.sdk.history import REORDER_WINDOW_MS, HistoryPage, StopRule


def cid(ms: int) -> str:
    return f"{ms:012x}0000-us-east.0"


def page(*ms: int, nxt: str | None = "older") -> HistoryPage:
    return HistoryPage(tuple(Comment(cid(t), "s", "us-east", "u", "U", "t", t) for t in ms), nxt)


def test_a_fresh_client_takes_one_page() -> None:
    rule = StopRule.after(None)
    assert rule.stop_ms is None
    assert rule.done(page(100_000, 90_000))


def test_an_anchor_that_is_not_an_id_takes_one_page() -> None:
    assert StopRule.after("not-an-id").done(page(100_000))


def test_pages_back_past_the_anchor_less_the_reorder_window() -> None:
    rule = StopRule.after(cid(100_000))
    assert rule.stop_ms == 100_000 - REORDER_WINDOW_MS
    assert not rule.done(page(120_000, 100_000))   # still inside what may be new to us
    assert not rule.done(page(96_000, 95_000))     # exactly at the window's edge: not past it
    assert rule.done(page(96_000, 94_999))         # older than the window: done


def test_stops_when_history_is_exhausted() -> None:
    assert StopRule.after(cid(100_000)).done(page(120_000, nxt=None))
    assert StopRule.after(cid(100_000)).done(page(nxt=None))


def test_an_empty_page_with_more_behind_it_goes_on() -> None:
    assert not StopRule.after(cid(100_000)).done(page())


def test_page_decodes_the_history_endpoint() -> None:
    comment = Comment(cid(5), "s", "us-east", "u", "U", "t", 5)
    assert HistoryPage.from_json({"items": [comment.to_json()], "next": "tok"}) == \
        HistoryPage((comment,), "tok")
    assert HistoryPage.from_json({"items": []}) == HistoryPage((), None)


@pytest.mark.parametrize("doc", [None, {"next": None}, {"items": {}},
                                 {"items": [], "next": 3}, {"items": [{"id": "x"}]}])
def test_page_refuses_what_is_not_a_page(doc: object) -> None:
    with pytest.raises(ValueError):
        HistoryPage.from_json(doc)
