"""chorus/natsclient.py's `Client.flush` on the real server: once it returns, a subscription
made before it is at the server, so a message published right after from another connection
reaches it. (nats-py 2.16's own flush can return before the SUB is written: its PING
overtakes the queued command.)"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.aio.msg import Msg

from chorus import natsclient
from chorus.cluster.local import LocalCluster

pytestmark = pytest.mark.integration

ROUNDS = 200


async def test_a_subscription_is_at_the_server_once_flush_returns(
        cluster: LocalCluster) -> None:
    url = cluster.config.region("us-east").nats_url
    subscriber = await natsclient.connect(url, name="flush-test-subscriber")
    publisher = await nats.connect(url, name="flush-test-publisher")
    heard: dict[str, asyncio.Event] = {}

    async def on_message(msg: Msg) -> None:
        heard[msg.subject].set()
    missed: list[int] = []
    try:
        for i in range(ROUNDS):
            subject = f"flush-test.{i}"
            heard[subject] = asyncio.Event()
            sub = await subscriber.subscribe(subject, cb=on_message)
            await subscriber.flush()
            await publisher.publish(subject, b"x")
            await publisher.flush()
            try:
                # A message that is coming comes within milliseconds; one published before
                # the subscription never does.
                await asyncio.wait_for(heard[subject].wait(), 2)
            except TimeoutError:
                missed.append(i)
            await sub.unsubscribe()
        assert missed == [], f"published after flush, not delivered: rounds {missed}"
    finally:
        await subscriber.close()
        await publisher.close()
