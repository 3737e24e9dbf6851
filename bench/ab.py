"""Compare two source trees with one benchmark, alternating runs (A B A B ...).

    .venv/bin/python bench/ab.py A_DIR B_DIR [--rounds 3] -- bench/ingest.py --quick

The machine is shared, so a figure is only meaningful next to its baseline measured in the
same minutes: each round runs the benchmark once from each tree (its own cluster, started
from that tree's code: the benchmark runs with the tree as working directory and first on
PYTHONPATH, and the gateways it starts inherit both), then the medians per phase and the
ratio B/A are printed. A tree is a copy of the repository's chorus/, region/, global_/,
bench/ and regions.yaml (web/ may be a symbolic link); the benchmark must take ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Lower is better for these; for the others (throughput) higher is.
LOWER_IS_BETTER = ("_ms", "cpu", "cores", "missing", "cut", "kib", "forwarded", "presence")


def run(tree: Path, argv: list[str]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.run([sys.executable, *argv, "--json", out.name], cwd=tree, env=env,
                              check=False)
        if proc.returncode != 0:
            print(f"  ! run from {tree} exited {proc.returncode}", flush=True)
            return []
        result: list[dict[str, Any]] = json.loads(Path(out.name).read_text() or "[]")
        return result


def numeric(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="baseline tree")
    parser.add_argument("b", type=Path, help="candidate tree")
    parser.add_argument("--rounds", type=int, default=2)
    own, _, argv = " ".join(sys.argv[1:]).partition(" -- ")
    if not argv:
        parser.error("give the benchmark after --: -- bench/ingest.py --quick")
    args = parser.parse_args(own.split())
    argv_list = argv.split()
    runs: dict[str, list[list[dict[str, Any]]]] = {"A": [], "B": []}
    for i in range(args.rounds):
        for label, tree in (("A", args.a), ("B", args.b)):
            print(f"== round {i + 1} {label} ({tree}) load {os.getloadavg()[0]:.2f}",
                  flush=True)
            runs[label].append(run(tree.resolve(), argv_list))
    phases: list[str] = []
    for result in runs["A"] + runs["B"]:
        for row in result:
            if row["phase"] not in phases:
                phases.append(row["phase"])
    print(f"\nmedians of {args.rounds} alternating rounds; ratio = B / A")
    for phase in phases:
        print(f"\n{phase}")
        per: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
        for label in ("A", "B"):
            for result in runs[label]:
                for row in result:
                    if row["phase"] == phase:
                        for k, v in numeric(row).items():
                            per[label].setdefault(k, []).append(v)
        for key in per["A"]:
            if key not in per["B"]:
                continue
            a, b = statistics.median(per["A"][key]), statistics.median(per["B"][key])
            ratio = b / a if a else float("nan")
            better = "lower" if any(t in key for t in LOWER_IS_BETTER) else "higher"
            print(f"  {key:<26} A {a:>10.2f}   B {b:>10.2f}   B/A {ratio:6.2f}  "
                  f"({better} is better)")


if __name__ == "__main__":
    main()
