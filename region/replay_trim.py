"""When the replay cache's writer trims a key to its window and renews its expiry. Pure.

Each write of the replay cache (region/replay_redis.py) adds a stream's new entries to its
sorted set; trimming the set to the window (``ZREMRANGEBYRANK``) and renewing its expiry
(``EXPIRE``) at every write made three Redis commands per stream per tick, and the client's
cost is per command (packing it, parsing its answer: 9 % of a busy gateway's CPU). A key is
trimmed now when one of these holds, and otherwise only added to:

- this writer has not trimmed it in the last `TRIM_AGE_S` (or ever: a new key gets its
  expiry with its first write, so no key is left without one);
- it was given a `TRIM_SHARE`-th of its window since its last trim here.

So after any write a key holds less than its window plus, for each of the region's writers
(one per gateway, each given part of the live feed), an eighth of the window or what that
writer added in `TRIM_AGE_S`, whichever is less. Readers follow the ``prev`` chain and never
count a key's members: a few extra old entries change nothing but memory.
"""

from __future__ import annotations

TRIM_AGE_S = 1.0      # a key written to is trimmed at least this often (seconds)
TRIM_SHARE = 8        # ... and once it was given this fraction of its window since
MAX_KEYS = 100_000    # keys remembered; past it the memory is dropped (each trims next write)


class Trims:
    """Which of a write's keys are trimmed, for one writer. ``now`` is monotonic seconds."""

    def __init__(self, *, age_s: float = TRIM_AGE_S, share: int = TRIM_SHARE,
                 max_keys: int = MAX_KEYS) -> None:
        self.age_s = age_s
        self.share = share
        self.max_keys = max_keys
        self._since: dict[str, tuple[float, int]] = {}   # key -> (last trim, added since)
        self._pruned_at = 0.0

    def due(self, key: str, added: int, keep: int, now: float) -> bool:
        """Whether to trim ``key`` (to ``keep`` entries) with this write of ``added`` entries;
        True counts it as trimmed now."""
        last = self._since.get(key)
        if (last is None or now - last[0] >= self.age_s
                or last[1] + added >= max(1, keep // self.share)):
            self._since[key] = (now, 0)
            return True
        self._since[key] = (last[0], last[1] + added)
        return False

    def prune(self, now: float) -> None:
        """Forgets keys not trimmed for `age_s` (their next write trims them anyway): the
        memory holds the keys of the last few seconds' writes. At most once per `age_s`."""
        if now - self._pruned_at < self.age_s and len(self._since) <= self.max_keys:
            return
        self._pruned_at = now
        self._since = {k: v for k, v in self._since.items() if now - v[0] < self.age_s}
        if len(self._since) > self.max_keys:
            self._since.clear()

    def __len__(self) -> int:
        return len(self._since)
