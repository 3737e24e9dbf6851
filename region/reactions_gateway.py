"""A gateway's part in reactions, as its handlers and its composition root see it.

region/compose.py builds it; the handlers (region/live.py, region/reactions_api.py) take taps
through ``ingest`` and read totals and timelines through ``feed``; ``emitter`` and ``feed``
run for the gateway's life (`loops`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from region.reactions_emit import Emitter
from region.reactions_feed import ReactionFeed
from region.reactions_ingest import ReactionIngest


@dataclass(frozen=True)
class GatewayReactions:
    ingest: ReactionIngest
    emitter: Emitter
    feed: ReactionFeed

    def loops(self) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        """The loops the gateway owns, by name: each must never return by itself."""
        return [("reaction-ingest", self.ingest.run), ("reaction-emitter", self.emitter.run),
                ("reaction-feed", self.feed.run)]
