"""Summarise py-spy raw profiles (``--profile DIR`` of bench/ingest.py and bench/fanout.py):
the share of samples in which each function was on the stack (inclusive), and at its top
(self).

    .venv/bin/python bench/profile.py DIR/*.txt [--top 40] [--match region/,global_/]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """``fn (path/file.py:123)`` -> ``fn (path/file.py)``: lines of one function merged."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="",
                        help="comma-separated substrings: list only frames containing one")
    args = parser.parse_args()
    wanted = [m for m in args.match.split(",") if m]
    for path in args.files:
        total, inclusive, own = summarise(path)
        print(f"\n== {path.name}: {total} samples")
        for title, counter in (("inclusive", inclusive), ("self", own)):
            print(f"-- {title}")
            shown = 0
            for name, n in counter.most_common():
                if wanted and not any(w in name for w in wanted):
                    continue
                print(f"  {100 * n / max(1, total):5.1f}%  {name}")
                shown += 1
                if shown >= args.top:
                    break


if __name__ == "__main__":
    main()
