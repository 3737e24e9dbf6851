"""Moderation benchmark: the prefilter's cost per comment with 10,000 blocked terms.

    .venv/bin/python bench/moderation.py [--terms 10000] [--comments 20000]

Pure and local (no cluster): it builds a `Prefilter` the way a gateway does from its
moderation state, then times `blocked()` on a mix of ordinary chat, evasions and long
comments, and prints the percentiles. Retraction latency per region pair is measured by
tests/integration/test_moderation.py's retraction test (see docs/benchmarks.md).
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
    texts = []
    for i in range(args.comments):
        match i % 4:
            case 0 | 1:
                texts.append(rng.choice(ORDINARY))
            case 2:  # an evasion of a blocked term inside chat
                t = rng.choice(terms)
                texts.append(f"lol {t.upper().replace('o', '0')} !!")
            case _:  # a long comment (about 1,900 bytes)
                texts.append(" ".join(rng.choice(ORDINARY) for _ in range(60))[:1900])
    times = []
    hits = 0
    for text in texts:
        t0 = time.perf_counter_ns()
        hits += prefilter.blocked("s", text) is not None
        times.append((time.perf_counter_ns() - t0) / 1e6)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(p * len(times)))]
    print(f"prefilter: {args.terms} terms (built in {build_ms:.0f} ms), {len(texts)} comments, "
          f"{hits} blocked")
    print(f"  per comment: mean {statistics.fmean(times):.3f} ms, p50 {pct(0.5):.3f} ms, "
          f"p99 {pct(0.99):.3f} ms, max {times[-1]:.3f} ms")


if __name__ == "__main__":
    main()
