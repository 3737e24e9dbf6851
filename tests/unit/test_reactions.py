"""Reactions without servers: the aggregate and its arithmetic, the board a gateway shows, the
timeline, taking taps in batches, emitting aggregates, the feed's frames and totals, the
reaction outbox's decision, the hub messages, and the frames on both sides of the wire. (The
feed on a real gateway: tests/integration/test_reactions.py.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.config import parse_config
from chorus.durable import Delivered, decode_comment, sort_batch
from chorus.errors import ConfigError
from chorus.metrics import Metrics
from chorus.sdk import frames as sdk_frames
from global_.counts import CountBook
from global_.hub import (
    HubMessageError,
    ReactionTimelineAnswer,
    ReactionTimelineQuery,
    ReactionTotalsAnswer,
    ReactionTotalsQuery,
    decode,
)
from global_.presence import Answer
from global_.reactions import decide
from region import protocol
from region.errors import ApiError, ErrorCode
from region.reactions import (
    MAX_BUCKETS,
    Aggregate,
    Board,
    Bucket,
    Counts,
    Tap,
    Window,
    added,
    bucketed,
    by_user,
    check_kind,
    highest,
    merged,
    next_aggregate,
    page_window,
    summed,
)
from region.reactions_emit import Emitter, by_stream
from region.reactions_feed import frame_of, origin_totals, timeline_page, until_phase
from region.reactions_ingest import ReactionIngest, verdicts
from tests.unit.memory_reactions import MemoryCounter, MemoryReactionLog

KINDS = ("like", "heart", "laugh")


def agg(region: str, second: int, counts: Counts, total: Counts,
        stream: str = "s1") -> Aggregate:
    return Aggregate(region=region, stream=stream, second=second, counts=counts, total=total)


# -- counts and the aggregate -----------------------------------------------------------------


def test_counts_add_and_take_the_highest_per_kind() -> None:
    assert added({"heart": 2}, {"heart": 1, "like": 3}) == {"heart": 3, "like": 3}
    assert added({"heart": 0}, {}) == {}
    assert highest({"heart": 5, "like": 1}, {"heart": 3, "like": 4}) == {"heart": 5, "like": 4}
    assert summed([{"a": 1}, {"a": 2, "b": 1}, {}]) == {"a": 3, "b": 1}


def test_an_aggregate_round_trips_and_names_itself() -> None:
    a = agg("us-east", 1_700_000_000, {"heart": 3}, {"heart": 10, "like": 2})
    assert Aggregate.decode(a.encode()) == a
    assert a.msg_id == "us-east:s1:1700000000"


@pytest.mark.parametrize("doc", [
    [],
    {"region": "US", "stream": "s", "second": 1, "counts": {}, "total": {}},
    {"region": "us-east", "stream": "a.b", "second": 1, "counts": {}, "total": {}},
    {"region": "us-east", "stream": "s", "second": -1, "counts": {}, "total": {}},
    {"region": "us-east", "stream": "s", "second": True, "counts": {}, "total": {}},
    {"region": "us-east", "stream": "s", "second": 1, "counts": {"Heart": 1}, "total": {}},
    {"region": "us-east", "stream": "s", "second": 1, "counts": {"heart": -1}, "total": {}},
    {"region": "us-east", "stream": "s", "second": 1, "counts": {"heart": 1.5}, "total": {}},
    {"region": "us-east", "stream": "s", "second": 1, "counts": {}, "total": []},
    {"region": "us-east", "stream": "s", "second": 1, "counts": {}},
])
def test_a_malformed_aggregate_is_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        Aggregate.decode(json.dumps(doc).encode())
    with pytest.raises(ValueError):
        Aggregate.decode(b"\xff not json")


def test_the_next_aggregate_carries_the_running_total() -> None:
    first = next_aggregate("us-east", "s1", 10, {"heart": 2}, None)
    assert first.total == {"heart": 2}
    second = next_aggregate("us-east", "s1", 11, {"heart": 1, "wow": 4}, first)
    assert second.counts == {"heart": 1, "wow": 4}
    assert second.total == {"heart": 3, "wow": 4}


# -- taking taps ------------------------------------------------------------------------------


def test_a_kind_must_be_one_of_the_configured() -> None:
    assert check_kind("heart", KINDS) == "heart"
    for bad in ("", None, "rocket", 3):
        with pytest.raises(ValueError):
            check_kind(bad, KINDS)


def test_taps_are_grouped_by_user_in_order_of_arrival() -> None:
    taps = [Tap("b", "s", "like"), Tap("a", "s", "like"), Tap("b", "t", "heart")]
    assert by_user(taps) == [("b", [0, 2]), ("a", [1])]


def test_each_users_first_taps_are_counted_and_the_rest_refused() -> None:
    from region.reactions import Counted

    taps = [Tap("b", "s", "like"), Tap("a", "s", "like"), Tap("b", "s", "like")]
    out = verdicts(taps, Counted(second=7, admitted=(1, 1), retry_ms=(250, 0)),
                   rate_per_s=4.0, burst=1)
    assert [v.second for v in out] == [7, 7, 0]
    refused = out[2].error
    assert refused is not None and refused.code is ErrorCode.RATE_LIMITED
    assert refused.retry_after_s == 0.25


async def test_taps_of_one_tick_are_counted_in_one_round_trip() -> None:
    counter = MemoryCounter(burst=2)
    ingest = ReactionIngest(counter, kinds=KINDS, rate_per_s=1.0, burst=2, tick_s=0.01,
                            shard=0, metrics=Metrics("us-east", "0"))
    waiters = [ingest.take(Tap(f"u{i % 3}", "s1", "heart")) for i in range(9)]
    await ingest.flush()
    results = [w.result() for w in waiters]
    assert counter.batches == [9]
    assert sum(1 for v in results if v.error is None) == 6      # 3 users, burst 2
    assert all(v.error.code is ErrorCode.RATE_LIMITED for v in results if v.error)
    assert counter.counts == {("s1", 1000): {"heart": 6}}


async def test_an_unknown_kind_is_refused_at_once_and_a_flood_is_bounded() -> None:
    ingest = ReactionIngest(MemoryCounter(), kinds=KINDS, rate_per_s=1.0, burst=2,
                            tick_s=0.01, shard=0, metrics=Metrics("us-east", "0"),
                            max_waiting=2)
    with pytest.raises(ApiError) as info:
        ingest.take(Tap("u", "s", "rocket"))
    assert info.value.code is ErrorCode.INVALID
    ingest.take(Tap("u", "s", "like"))
    ingest.take(Tap("u", "s", "like"))
    with pytest.raises(ApiError) as info:
        ingest.take(Tap("u", "s", "like"))
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.retry_after_s


async def test_when_redis_is_down_every_tap_of_the_batch_is_refused_with_503() -> None:
    counter = MemoryCounter(down=True)
    ingest = ReactionIngest(counter, kinds=KINDS, rate_per_s=1.0, burst=2, tick_s=0.01,
                            shard=0, metrics=Metrics("us-east", "0"))
    refused: list[ApiError] = []
    waiter = ingest.take(Tap("u", "s", "like"))
    ingest.on_refused(waiter, refused.append)
    await ingest.flush()
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert [e.code for e in refused] == [ErrorCode.UNAVAILABLE]


async def test_the_ingest_loop_counts_what_is_taken_and_cancels_waiters_when_stopped() -> None:
    counter = MemoryCounter()
    ingest = ReactionIngest(counter, kinds=KINDS, rate_per_s=1.0, burst=5, tick_s=0.01,
                            shard=0, metrics=Metrics("us-east", "0"))
    loop = asyncio.create_task(ingest.run())
    try:
        assert await asyncio.wait_for(ingest.react(Tap("u", "s", "like")), 5) == 1000
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


# -- emitting ---------------------------------------------------------------------------------


async def test_closed_seconds_become_aggregates_with_running_totals() -> None:
    counter, log = MemoryCounter(burst=100), MemoryReactionLog("us-east")
    emitter = Emitter(counter, log, region="us-east", metrics=Metrics("us-east", "0"))
    await counter.count([Tap("u", "s1", "heart")] * 3, shard=0)
    counter.second += 1
    await counter.count([Tap("u", "s1", "like"), Tap("v", "s2", "wow")], shard=1)
    counter.second += 1
    assert await emitter.once() == 3
    assert [(a.stream, a.second, dict(a.counts), dict(a.total)) for _, a in log.messages] == [
        ("s1", 1000, {"heart": 3}, {"heart": 3}),
        ("s1", 1001, {"like": 1}, {"heart": 3, "like": 1}),
        ("s2", 1001, {"wow": 1}, {"wow": 1})]
    assert counter.counts == {} and await emitter.once() == 0


async def test_an_emitter_builds_on_what_another_gateway_emitted_meanwhile() -> None:
    counter, log = MemoryCounter(burst=100), MemoryReactionLog("us-east")
    emitter = Emitter(counter, log, region="us-east", metrics=Metrics("us-east", "0"))
    await counter.count([Tap("u", "s1", "heart")], shard=0)
    counter.second += 1
    await emitter.once()                          # it now remembers the newest of s1
    # Another gateway emits second 1001 while this one counts the next.
    log.put(next_aggregate("us-east", "s1", 1001, {"heart": 5}, log.messages[-1][1]))
    counter.second += 1
    await counter.count([Tap("u", "s1", "heart")], shard=0)
    counter.second += 1
    await emitter.once()
    assert log.messages[-1][1].total == {"heart": 7}


async def test_a_second_emitted_twice_is_stored_once() -> None:
    counter, log = MemoryCounter(burst=100), MemoryReactionLog("us-east")
    emitter = Emitter(counter, log, region="us-east", metrics=Metrics("us-east", "0"))
    await counter.count([Tap("u", "s1", "heart")], shard=0)
    counter.second += 1
    log.put(next_aggregate("us-east", "s1", 1000, {"heart": 1}, None))  # a gateway that died
    await emitter.once()
    assert len(log.messages) == 1 and counter.counts == {}


async def test_what_the_log_does_not_take_stays_leased_and_is_emitted_later() -> None:
    counter, log = MemoryCounter(burst=100), MemoryReactionLog("us-east", down=True)
    emitter = Emitter(counter, log, region="us-east", metrics=Metrics("us-east", "0"))
    await counter.count([Tap("u", "s1", "heart")], shard=0)
    counter.second += 1
    await emitter.once()
    assert counter.counts and not log.messages
    log.down = False
    counter.expire_leases()
    await emitter.once()
    assert [a.counts for _, a in log.messages] == [{"heart": 1}]


def test_claimed_seconds_are_emitted_per_stream_in_order() -> None:
    from region.reactions import Closed

    groups = by_stream([Closed("b", 3, {}), Closed("a", 2, {}), Closed("b", 1, {})])
    assert [[(c.stream, c.second) for c in g] for g in groups] == [[("b", 1), ("b", 3)],
                                                                   [("a", 2)]]


# -- what a gateway shows ---------------------------------------------------------------------


def test_the_board_sums_every_regions_latest_total_whatever_the_order() -> None:
    board = Board()
    assert board.open("s1")
    board.seed("s1", "eu-west", {"heart": 4})
    board.mark_ready("s1")
    assert board.apply(agg("us-east", 11, {"heart": 1}, {"heart": 6}))
    assert board.apply(agg("us-east", 10, {"heart": 2}, {"heart": 5}))  # late, older
    assert board.apply(agg("eu-west", 11, {"like": 1}, {"heart": 4, "like": 1}))
    assert board.totals("s1") == {"heart": 10, "like": 1}
    view = board.take("s1")
    assert view is not None and view.second == 11
    assert view.counts == {"heart": 3, "like": 1} and view.totals == {"heart": 10, "like": 1}
    assert board.take("s1") is None                 # nothing new
    assert board.view("s1") == type(view)(second=11, counts={}, totals=view.totals)
    assert not board.apply(agg("us-east", 12, {}, {}, stream="other"))


def test_the_board_shows_nothing_before_its_totals_are_read_and_is_bounded() -> None:
    board = Board(max_streams=1)
    board.open("s1")
    board.apply(agg("us-east", 1, {"heart": 1}, {"heart": 1}))
    assert board.take("s1") is None and board.view("s1") is None
    board.mark_ready("s1")
    assert board.take("s1") is not None
    assert not board.open("s2") and "s2" not in board
    board.close("s1")
    assert board.open("s2")


def test_frames_leave_at_the_same_phase_of_every_second() -> None:
    assert until_phase(100.0) == pytest.approx(0.6)
    assert until_phase(100.6) == pytest.approx(1.0)
    assert until_phase(100.9) == pytest.approx(0.7)
    from region.reactions import View

    frame = frame_of(View(second=5, counts={"like": 1, "heart": 2}, totals={"heart": 9}))
    assert frame == protocol.Reactions(second=5, counts=(("heart", 2), ("like", 1)),
                                       totals=(("heart", 9),))


def test_a_new_streams_totals_are_each_origins_highest_from_the_log_and_the_answers() -> None:
    # This region's log: its own newest aggregate, and ap-south's as forwarded here long ago;
    # the other regions answer with their own (eu-west's copy here was not read).
    local: dict[str, Counts | None] = {"us-east": {"heart": 9}, "eu-west": None,
                                       "ap-south": {"like": 1}}
    remote: dict[str, Counts | None] = {"eu-west": {"heart": 1}, "ap-south": {"like": 4}}
    totals = origin_totals(local, remote)
    assert totals == {"us-east": {"heart": 9}, "eu-west": {"heart": 1}, "ap-south": {"like": 4}}
    # Seeded on the board, they are what a viewer is greeted with.
    board = Board()
    board.open("s1")
    for origin, total in totals.items():
        board.seed("s1", origin, total)
    board.mark_ready("s1")
    view = board.view("s1")
    assert view is not None
    assert frame_of(view).totals == (("heart", 10), ("like", 4))


def test_totals_and_timeline_for_a_stream_not_shown_here() -> None:
    # This region's log: its own two aggregates and a copy of ap-south's; eu-west answers,
    # ap-south does not.
    own = [agg("us-east", 3600, {"heart": 2}, {"heart": 2}),
           agg("us-east", 3661, {"heart": 1}, {"heart": 3})]
    copy = [agg("ap-south", 3605, {"like": 2}, {"like": 2})]
    local: dict[str, Counts | None] = {"us-east": {"heart": 3}, "eu-west": None,
                                       "ap-south": {"like": 2}}
    remote: dict[str, Counts | None] = {"eu-west": {"wow": 1}, "ap-south": None}
    mine: dict[str, Counts | None] = {"us-east": {"heart": 3}}
    assert summed(origin_totals(mine, local, remote).values()) == {"heart": 3, "like": 2,
                                                                   "wow": 1}
    window = page_window(3600, 3720, 60)
    answers: dict[str, list[Bucket] | None] = {"eu-west": [Bucket(3600, {"wow": 1})],
                                               "ap-south": None}
    page = timeline_page(bucketed(own, 60, window.after_s, window.before_s), answers,
                         {"ap-south": bucketed(copy, 60, window.after_s, window.before_s)})
    assert page.partial == ("ap-south",)
    assert [(b.start_s, dict(b.counts)) for b in page.buckets] == [
        (3600, {"heart": 2, "wow": 1, "like": 2}), (3660, {"heart": 1})]
    # A region that did not answer, and whose copy here could not be read either.
    page = timeline_page([], answers, {})
    assert page.partial == ("ap-south",) and page.buckets == [Bucket(3600, {"wow": 1})]


# -- the timeline -----------------------------------------------------------------------------


def test_aggregates_are_bucketed_and_regions_merged() -> None:
    aggs = [agg("us-east", s, {"heart": 1}, {}) for s in (59, 60, 61, 125, 200)]
    assert bucketed(aggs, 60, 60, 200) == [Bucket(60, {"heart": 2}), Bucket(120, {"heart": 1})]
    assert bucketed(aggs, 1, 0, 61) == [Bucket(59, {"heart": 1}), Bucket(60, {"heart": 1})]
    assert merged([[Bucket(60, {"a": 1})], [Bucket(0, {"b": 1}), Bucket(60, {"a": 2})]]) == [
        Bucket(0, {"b": 1}), Bucket(60, {"a": 3})]


def test_a_page_covers_at_most_its_buckets_and_says_where_the_next_starts() -> None:
    assert page_window(61, 200, 60) == Window(60, 200, None)
    long = page_window(0, 10 * 3600, 1)
    assert long == Window(0, MAX_BUCKETS[1], MAX_BUCKETS[1])
    for bad in ((10, 10), (10, 5), (-1, 5)):
        with pytest.raises(ValueError):
            page_window(*bad, 1)


# -- across regions ---------------------------------------------------------------------------


def msg(data: bytes) -> Msg:
    """A message as a consumer hands it over (a value: its client is never connected)."""
    return Msg(Nats(), subject="rx.us-east.us-east.s1", data=data)


def test_the_durable_worker_reads_aggregates_as_well_as_comments() -> None:
    mine = msg(agg("us-east", 1, {"heart": 1}, {"heart": 1}).encode())
    theirs = msg(agg("eu-west", 1, {}, {}).encode())
    junk = msg(b"{}")
    msgs = [mine, theirs, junk]
    batch = sort_batch(msgs, "us-east", Aggregate.decode)
    assert [d.item.region for d in batch.own] == ["us-east"]
    assert batch.foreign == (msgs[1],) and batch.bad == (msgs[2],)
    # The comment default is unchanged: an aggregate is not a comment.
    assert sort_batch(msgs, "us-east").own == ()
    with pytest.raises(ValueError):
        decode_comment(mine.data)


def test_aggregates_go_only_where_the_stream_is_watched_or_no_one_answered() -> None:
    ds = [Delivered(msg(b""), agg("us-east", 1, {}, {}, stream=s)) for s in ("a", "b", "c")]
    plan = decide(ds, {"a": Answer("eu-west", 2), "b": Answer("eu-west", 0),
                       "c": Answer("eu-west", None)})
    assert [d.item.stream for d in plan.send] == ["a", "c"]
    assert [d.item.stream for d in plan.skip] == ["b"]


HUB: list[Any] = [
    ReactionTotalsQuery("s1"),
    ReactionTotalsAnswer("eu-west", "s1", 17, {"heart": 3}),
    ReactionTotalsAnswer("eu-west", "s1", 0, {}),
    ReactionTimelineQuery("s1", 60, 3600, 7200),
    ReactionTimelineAnswer("eu-west", "s1", (Bucket(3600, {"heart": 2}),)),
]


@pytest.mark.parametrize("message", HUB, ids=[m.kind for m in HUB])
def test_reaction_hub_messages_round_trip(message: Any) -> None:
    assert decode(message.kind, message.encode()) == message


@pytest.mark.parametrize(("kind", "data"), [
    ("rx_totals_query", b'{"stream": "a.b"}'),
    ("rx_totals_answer", b'{"region": "eu-west", "stream": "s", "second": 1, "total": []}'),
    ("rx_totals_answer", b'{"region": "eu-west", "stream": "s", "second": 1, '
                         b'"total": {"heart": -2}}'),
    ("rx_totals_answer", b'{"region": "eu-west", "stream": "s", "total": {}}'),
    ("rx_timeline_query", b'{"stream": "s", "resolution_s": 5, "after_s": 0, "before_s": 5}'),
    ("rx_timeline_query", b'{"stream": "s", "resolution_s": 1, "after_s": 9, "before_s": 9}'),
    ("rx_timeline_query", b'{"stream": "s", "resolution_s": 1, "after_s": 0, '
                          b'"before_s": 99999}'),
    ("rx_timeline_answer", b'{"region": "eu-west", "stream": "s", "buckets": [[1]]}'),
    ("rx_timeline_answer", b'{"region": "eu-west", "stream": "s", "buckets": {}}'),
])
def test_malformed_reaction_hub_messages_are_refused(kind: Any, data: bytes) -> None:
    with pytest.raises(HubMessageError):
        decode(kind, data)


def test_an_answer_must_answer_the_question() -> None:
    query = ReactionTimelineQuery("s1", 60, 3600, 7200)
    assert ReactionTimelineAnswer("eu-west", "s1", (Bucket(3600, {}),)).answers("eu-west", query)
    assert not ReactionTimelineAnswer("eu-west", "s1", (Bucket(0, {}),)).answers("eu-west",
                                                                                  query)
    assert not ReactionTotalsAnswer("ap-south", "s1", 0, {}).answers(
        "eu-west", ReactionTotalsQuery("s1"))


def test_a_regions_last_count_is_kept_for_a_while_then_dropped() -> None:
    now = [0.0]
    book = CountBook(stale_after_s=30, clock=lambda: now[0], max_entries=4)
    book.put("s1", "eu-west", 7)
    now[0] = 29
    assert book.get("s1", "eu-west") == 7
    now[0] = 31
    assert book.get("s1", "eu-west") is None
    for i in range(6):
        book.put(f"s{i}", "eu-west", i)
    assert len(book._entries) <= 4


class FakeDirectory:
    """Answers like global_/presence.py's directory: ``None`` viewers is no answer."""

    def __init__(self, answers: dict[str, dict[str, int | None]]) -> None:
        self.answers = answers          # region -> stream -> viewers
        self.questions: list[tuple[str, tuple[str, ...]]] = []

    async def viewers_of(self, streams: Any, region: str) -> dict[str, Answer]:
        self.questions.append((region, tuple(streams)))
        return {s: Answer(region, self.answers[region].get(s)) for s in streams}


async def test_other_regions_are_counted_with_one_question_each_for_many_streams() -> None:
    from global_.counts import GlobalCounts

    now = [0.0]
    directory = FakeDirectory({"eu-west": {"a": 3, "b": 0}, "ap-south": {"a": 1, "b": 2}})
    counts = GlobalCounts(cast(Any, directory), ("eu-west", "ap-south"),
                          CountBook(clock=lambda: now[0]))
    assert await counts.counts_of(["a", "b"]) == {"a": {"eu-west": 3, "ap-south": 1},
                                                   "b": {"eu-west": 0, "ap-south": 2}}
    assert sorted(directory.questions) == [("ap-south", ("a", "b")), ("eu-west", ("a", "b"))]
    # ap-south stops answering: its last count stands for a while, then it is left out.
    directory.answers["ap-south"] = {}
    now[0] = 10
    assert await counts.counts("a") == {"eu-west": 3, "ap-south": 1}
    now[0] = 40
    assert await counts.counts("a") == {"eu-west": 3}


# -- frames on both sides ---------------------------------------------------------------------


def test_a_react_frame_names_a_kind_and_may_carry_a_ref() -> None:
    from chorus.config import Limits

    parse = protocol.parse_client_frame
    assert parse('{"type":"react","kind":"heart","ref":"r1"}', Limits()) == protocol.React(
        kind="heart", ref="r1")
    for bad in ('{"type":"react"}', '{"type":"react","kind":"Heart!"}',
                '{"type":"react","kind":7}', '{"type":"react","kind":"' + "x" * 33 + '"}'):
        with pytest.raises(ApiError) as info:
            parse(bad, Limits())
        assert info.value.code is ErrorCode.INVALID


def test_viewers_and_reactions_frames_decode_to_the_same_values_in_the_sdk() -> None:
    sent: list[protocol.ServerFrame] = [
        protocol.Viewers(count=3),
        protocol.Viewers(count=3, total=10, regions=(("eu-west", 7), ("us-east", 3))),
        protocol.Reactions(second=9, counts=(("heart", 2),),
                           totals=(("heart", 5), ("like", 1)))]
    for frame in sent:
        text = protocol.encode(frame)
        assert json.loads(text) == protocol.to_json(frame)
        got = sdk_frames.decode(text)
        assert got is not None and vars(got) == vars(frame)
    assert json.loads(protocol.encode(sent[0])) == {"type": "viewers", "count": 3}
    assert json.loads(protocol.encode(sent[1]))["regions"] == {"eu-west": 7, "us-east": 3}
    with pytest.raises(sdk_frames.MalformedFrame):
        sdk_frames.decode('{"type":"reactions","second":1,"counts":{"heart":-1},"totals":{}}')


def test_the_reactions_section_of_the_config_is_checked() -> None:
    base = """
regions:
  aa: {gateways: 1, gateway_port: 9001, nats: {client_port: 9101, monitor_port: 9201},
      redis: {port: 9301}, cassandra: {address: 127.0.0.9}}
links:
  aa: {latency_ms: 0, proxy_port: 9401}
"""
    assert parse_config(base).reactions.kinds[0] == "like"
    config = parse_config(base + "reactions: {kinds: [fire, clap], shards: 2}\n")
    assert config.reactions.kinds == ("fire", "clap") and config.reactions.shards == 2
    for body, key in (("{kinds: []}", "reactions.kinds"),
                      ("{kinds: [Fire]}", "reactions.kinds[0]"),
                      ("{kinds: [a, a]}", "reactions.kinds[1]"),
                      ("{shards: 0}", "reactions.shards"),
                      ("{user_burst: 0}", "reactions.user_burst"),
                      ("{retention_days: 0}", "reactions.retention_days"),
                      ("{colour: red}", "reactions.colour")):
        with pytest.raises(ConfigError) as info:
            parse_config(base + f"reactions: {body}\n")
        assert info.value.key == key
