"""chorus/natsclient.py: its header parser reads every block as nats-py's own does."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient

from chorus.natsclient import Client, parse_plain

BLOCKS = [
    # The log's RePublish, as every gateway receives it.
    b"NATS/1.0\r\nNats-Stream: COMMENTS\r\nNats-Subject: cmt.us-east.s17\r\n"
    b"Nats-Sequence: 123456\r\nNats-Time-Stamp: 2026-11-29T13:40:01.123456789Z\r\n"
    b"Nats-Last-Sequence: 123400\r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id: k:s:u:key\r\n\r\n",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0\r\nName:NoSpace\r\nTabbed:\tvalue \r\n\r\n",
    b"NATS/1.0\r\nBad Name: skipped\r\nno colon here\r\nGood: x\r\n\r\n",
    b"NATS/1.0\r\nUtf8: caf\xc3\xa9 \xe2\x9c\x93\r\nBroken: \xff\xfe\r\n\r\n",
    b"NATS/1.0\r\nN\xc3\xa4me: non-ascii name\r\nA: 1\r\nA: 2\r\n\r\n",
    b"NATS/1.0\r\nEmpty:\r\nColon: a:b:c\r\n\r\n",
]

STATUS_BLOCKS = [
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1016\r\nNats-Last-Stream: 1024\r\n\r\n",
]


async def _theirs(block: bytes) -> dict[str, str] | None:
    return await NatsClient()._process_headers(block)  # type: ignore[no-any-return]


@pytest.mark.parametrize("block", BLOCKS)
async def test_a_plain_block_parses_as_nats_py_parses_it(block: bytes) -> None:
    assert parse_plain(block) == await _theirs(block)
    assert await Client()._process_headers(block) == await _theirs(block)


@pytest.mark.parametrize("block", STATUS_BLOCKS)
async def test_a_block_with_an_inline_status_is_left_to_nats_py(block: bytes) -> None:
    ours = await Client()._process_headers(block)
    assert ours == await _theirs(block) and ours is not None and "Status" in ours


async def test_no_headers_are_none() -> None:
    assert await Client()._process_headers(b"") is None
