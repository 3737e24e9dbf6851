"""region/log_publish.py and `JetStreamLog.append` against a real NATS with JetStream: many
appends in flight each get their own ack (their own sequence), a repeated ``Nats-Msg-Id`` is
the first one's duplicate, and a subject no stream captures is refused at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from chorus.cluster.local import LocalCluster
from chorus.model import Comment
from region.log_jetstream import JetStreamLog
from region.log_publish import AckedPublisher, AckError

pytestmark = pytest.mark.integration

REGION = "us-east"


@pytest_asyncio.fixture
async def nc(cluster: LocalCluster) -> AsyncIterator[Nats]:
    client = await nats.connect(cluster.config.region(REGION).nats_url)
    yield client
    await client.close()


def _comment(stream: str, i: int) -> Comment:
    return Comment(id=f"{stream}-{i}", stream=stream, region=REGION, user="tester",
                   name="tester", text=f"comment {i}", ts=int(time.time() * 1000))


async def test_appends_in_flight_each_get_their_own_sequence(nc: Nats, unique: str) -> None:
    log = JetStreamLog(nc, REGION)
    appended = await asyncio.gather(*(log.append(_comment(unique, i), msg_id=f"{unique}-{i}")
                                      for i in range(300)))
    assert [a.comment.text for a in appended] == [f"comment {i}" for i in range(300)]
    assert not any(a.duplicate for a in appended)
    assert len({a.seq for a in appended}) == 300
    assert await log.count_after(unique, 0) == 300
    await log.publisher.close()


async def test_a_repeated_message_id_is_the_first_ones_duplicate(nc: Nats,
                                                                 unique: str) -> None:
    log = JetStreamLog(nc, REGION)
    first = await log.append(_comment(unique, 1), msg_id=f"k:{unique}")
    again = await log.append(_comment(unique, 2), msg_id=f"k:{unique}")
    assert again.duplicate and again.seq == first.seq
    assert again.comment == first.comment  # the stored one, not the retry's
    await log.publisher.close()


async def test_a_subject_no_stream_captures_is_refused(nc: Nats, unique: str) -> None:
    publisher = AckedPublisher(nc, timeout_s=5)
    # The server's 503 says so; a timeout would say "no ack within".
    with pytest.raises(AckError, match="no stream captures"):
        await publisher.publish(f"nowhere.{unique}", b"{}")
    await publisher.close()
