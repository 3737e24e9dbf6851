"""Moderation benchmark: the prefilter's cost per comment with 10,000 blocked terms.

    .venv/bin/python bench/moderation.py [--terms 10000] [--comments 20000]

Pure and local (no cluster): it builds a `Prefilter` the way a gateway does from its
moderation state, then times `blocked()` on a mix of ordinary chat, evasions and long
comments (the 2,000-byte limit's last few bytes, most with an emoji: Unicode's slow path),
and prints the percentiles of each kind and of all: wall clock, and the thread's CPU time,
which a busy shared machine does not inflate (a wall-clock p99 there measures the
scheduler). Retraction latency per region pair: bench/retraction.py.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from region.moderation_prefilter import Prefilter

ORDINARY = (Path(__file__).resolve().parent.parent / "tests" / "data"
            / "ordinary_comments.txt").read_text(encoding="utf-8").splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terms", type=int, default=10_000)
    parser.add_argument("--comments", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)

    def word(n: int) -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    terms = [word(rng.randint(4, 10)) if i % 5 else f"{word(5)} {word(6)}"
             for i in range(args.terms)]
    prefilter = Prefilter()
    began = time.perf_counter()
    prefilter.rebuild([("*", t) for t in terms[: args.terms // 2]]
                      + [("s", t) for t in terms[args.terms // 2:]])
    build_ms = (time.perf_counter() - began) * 1000
    texts: list[tuple[str, str]] = []
    for i in range(args.comments):
        match i % 4:
            case 0 | 1:
                texts.append(("chat", rng.choice(ORDINARY)))
            case 2:  # an evasion of a blocked term inside chat
                t = rng.choice(terms)
                texts.append(("evasion", f"lol {t.upper().replace('o', '0')} !!"))
            case _:
                texts.append(("long", long_comment(rng)))
    times: dict[str, list[float]] = {"wall": [], "cpu": []}
    by_kind: dict[str, list[float]] = {}
    hits = 0
    for kind, text in texts:
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        hits += prefilter.blocked("s", text) is not None
        wall, cpu = (time.perf_counter_ns() - t0) / 1e6, (time.thread_time_ns() - c0) / 1e6
        times["wall"].append(wall)
        times["cpu"].append(cpu)
        by_kind.setdefault(kind, []).append(cpu)
    longest = max(len(t.encode()) for k, t in texts if k == "long")
    print(f"prefilter: {args.terms} terms (built in {build_ms:.0f} ms), {len(texts)} comments "
          f"(a quarter long, up to {longest} bytes), {hits} blocked")
    for name, values in times.items():
        print(f"  per comment, {name:>4}: {summary(values)}")
    for kind, values in by_kind.items():
        print(f"  {kind:>8}, cpu: {summary(values)}")


def long_comment(rng: random.Random, limit: int = 2000) -> str:
    """Chat lines joined up to the last whole character within ``limit`` bytes."""
    text = " ".join(rng.choice(ORDINARY) for _ in range(80))
    return text.encode()[:limit].decode(errors="ignore")


def summary(values: list[float]) -> str:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]
    return (f"mean {statistics.fmean(ordered):.3f} ms, p50 {pct(0.5):.3f} ms, "
            f"p99 {pct(0.99):.3f} ms, max {ordered[-1]:.3f} ms")


if __name__ == "__main__":
    main()
