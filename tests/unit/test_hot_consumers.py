"""The region's consumers of its hot log partitions, on plain values: each consumer of the
chained log (outbox per destination, archive persister, classifier) has a twin per partition
with a name, a filter and a stream of its own; a backlog sums them."""

from __future__ import annotations

import itertools
from typing import Any, cast

from nats.aio.client import Client as Nats

from chorus.cluster.ops import per_stream
from chorus.durable import total
from chorus.metrics import Metrics
from chorus.names import (
    COMMENTS_STREAM,
    archive_durable,
    classifier_durable,
    hot_archive_durable,
    hot_classifier_durable,
    hot_outbox_durable,
    hot_outbox_lease_key,
    hot_stream,
    hot_subject,
    log_subject,
    outbox_durable,
)
from global_.outbox import outbox_spec, outboxes
from region.classifier_worker import ClassifierWorker, classifier_spec
from region.moderation import ModerationState
from region.persister import consumer_spec

REGIONS = ("us-east", "eu-west", "ap-south")
P = 4


def durables_of(region: str) -> set[str]:
    return {*(hot_outbox_durable(region, dest, part)
              for dest in REGIONS if dest != region for part in range(P + 1)),
            *(hot_archive_durable(region, part) for part in range(P + 1)),
            *(hot_classifier_durable(region, part) for part in range(P + 1))}


def test_part_zero_keeps_the_chained_logs_names() -> None:
    assert hot_outbox_durable("us-east", "eu-west", 0) == outbox_durable("us-east", "eu-west")
    assert hot_archive_durable("us-east", 0) == archive_durable("us-east")
    assert hot_classifier_durable("us-east", 0) == classifier_durable("us-east")
    assert hot_outbox_lease_key("eu-west", 0) == "eu-west"
    assert outbox_spec("us-east", "eu-west", 0) == outbox_spec("us-east", "eu-west")


def test_every_consumer_has_a_name_of_its_own_in_every_region() -> None:
    # Acks travel on $JS.ACK.<stream>.<durable>...: no two regions may share a durable name,
    # and within a region each partition's twin is a consumer of its own.
    names = {region: durables_of(region) for region in REGIONS}
    # (P + 1) parts: an outbox per other region, the archive's, the classifier's.
    assert all(len(n) == (P + 1) * (len(REGIONS) - 1 + 2) for n in names.values())
    for a, b in itertools.combinations(REGIONS, 2):
        assert not names[a] & names[b], (a, b)
    for name in set().union(*names.values()):
        assert not set(name) & set(". *>\t"), name


def test_each_destination_and_partition_has_its_own_lease_key() -> None:
    keys = [hot_outbox_lease_key(dest, part) for dest in REGIONS for part in range(P + 1)]
    assert len(set(keys)) == len(keys)


def test_a_partitions_outbox_reads_that_partition_and_forwards_to_the_same_one() -> None:
    spec = outbox_spec("us-east", "eu-west", 3)
    assert spec.stream == hot_stream(3)
    assert spec.filter_subject == "hot.us-east.3.>"
    assert spec.durable == "fwd-us-east-to-eu-west-hot-3"
    # Everything but what it reads is the chained log's outbox's.
    chained = outbox_spec("us-east", "eu-west")
    assert chained.stream == COMMENTS_STREAM
    assert (spec.batch, spec.in_flight, spec.ack_wait_s, spec.max_ack_pending) == (
        chained.batch, chained.in_flight, chained.ack_wait_s, chained.max_ack_pending)
    assert log_subject("eu-west", 3, "s") == hot_subject("eu-west", 3, "s")
    assert log_subject("eu-west", 0, "s") == "cmt.eu-west.s"


def test_a_region_runs_one_outbox_per_destination_and_part_each_under_its_lease() -> None:
    nc = Nats()
    built = outboxes(nc, region="us-east", dest="eu-west", partitions=P,
                     directory=cast(Any, None), metrics=Metrics("us-east", "0"))
    assert [o.part for o in built] == list(range(P + 1))
    assert len({o.worker.spec.durable for o in built}) == P + 1
    assert len({o.lease.spec.key for o in built}) == P + 1
    assert len({o.name for o in built}) == P + 1
    assert {o.lease.spec.bucket for o in built} == {"chorus-outbox-us-east"}
    assert [o.part for o in outboxes(nc, region="us-east", dest="eu-west", partitions=0,
                                     directory=cast(Any, None),
                                     metrics=Metrics("us-east", "0"))] == [0]


def test_the_archive_and_the_classifier_read_each_partition() -> None:
    for part in range(1, P + 1):
        archive = consumer_spec("us-east", part=part)
        assert (archive.stream, archive.filter_subject) == (hot_stream(part),
                                                            f"hot.us-east.{part}.>")
        assert archive.durable == hot_archive_durable("us-east", part)
        classifier = classifier_spec("us-east", part)
        assert (classifier.stream, classifier.filter_subject) == (hot_stream(part),
                                                                  f"hot.us-east.{part}.>")
    assert consumer_spec("us-east").filter_subject == "cmt.us-east.>"


async def test_the_classifier_feeds_one_window_from_every_part() -> None:
    async def decide(*args: object, **kwargs: object) -> Any:
        raise AssertionError("nothing to decide")

    worker = ClassifierWorker(Nats(), region="us-east", state=ModerationState(),
                              decide=decide, metrics=Metrics("us-east", "0"), partitions=P)
    assert [w.spec.stream for w in worker.workers] == [COMMENTS_STREAM] + [
        hot_stream(part) for part in range(1, P + 1)]
    assert {w.handle for w in worker.workers} == {worker.handle}


def test_a_backlog_is_the_sum_of_its_parts_and_unknown_if_any_is() -> None:
    assert total([3, 0, 4]) == 7
    assert total([]) == 0
    assert total([3, None, 4]) is None


def test_the_busiest_streams_count_every_part_of_a_regions_log() -> None:
    counts = per_stream([("cmt.us-east.", {"cmt.us-east.a": 3, "cmt.us-east.b": 1}),
                         ("hot.us-east.1.", {"hot.us-east.1.a": 50}),
                         ("hot.us-east.2.", {"hot.us-east.2.a": 40, "hot.us-east.2.c": 2})])
    assert counts == {"a": 93, "b": 1, "c": 2}
