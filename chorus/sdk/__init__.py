"""The Python client (asyncio): watch a stream and post to it from the nearest healthy region.

    client = Client(["http://127.0.0.1:8101"], token=token, stream="match-42")
    async with client:                      # connects in the background
        await client.post("what a goal!")   # retried with the same client_key, failover included
        ...                                 # client.timeline: comments by id, once each

What it does for the application:
- discovers the regions from any gateway (``/v1/regions``) and ranks the healthy ones by
  measured round trip, breaking near-ties by the configured link latency (``prefer`` first);
- watches over WebSocket, falling back to SSE when a WebSocket cannot be opened;
- resumes with its cursor after a disconnect, backing off exponentially with jitter (a
  connection counts as made only once the server said hello, and a server's retry hint, a
  close code's or a 429's, is a floor under the wait);
- fails over when its region is gone (``failover_after`` failed attempts in a row) to the
  next healthy region, where cursors do not apply: it joins at the head and fills what it may
  have missed from that region's history, by comment id and time;
- hands the application a `Timeline`: no duplicate, and an explicit `Gap` where history
  could not fill a hole (``recovered: false`` that paging could not repair).

The package, one concept per module:

    client.py       `Client`: the watch loop (reconnect, resume, failover) and post
    regions.py      discovery, ranking, the next region on failover (decisions pure)
    reconnect.py    the wait before the next connection attempt (pure)
    transports.py   WebSocket and SSE, each yielding typed frames
    frames.py       the server's frames as typed values, decoded from JSON (pure)
    history.py      the history fill and its stop rule (pure)
    errors.py       what the SDK raises
"""

from chorus.sdk.client import CONNECT_TIMEOUT_S, Client
from chorus.sdk.errors import ChorusClientError
from chorus.sdk.frames import MalformedFrame, ServerFrame
from chorus.sdk.history import HISTORY_MAX_PAGES, HISTORY_PAGE, REORDER_WINDOW_MS
from chorus.sdk.regions import RegionInfo
from chorus.timeline import Gap, Timeline

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HISTORY_MAX_PAGES",
    "HISTORY_PAGE",
    "REORDER_WINDOW_MS",
    "ChorusClientError",
    "Client",
    "Gap",
    "MalformedFrame",
    "RegionInfo",
    "ServerFrame",
    "Timeline",
]
