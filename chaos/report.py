"""A drill's report: a readable summary, a JSON document, and a PNG timeline.

The timeline has two panels over the drill's seconds: comments delivered per second to the
viewers of each region, and their delivery latency (median and worst per second), with every
fault window shaded. matplotlib draws it headless (Agg).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.verdict import Arrival, Verdict


@dataclass
class DrillReport:
    drill: str
    region: str
    seconds: float
    stream: str
    target: str                    # "local cluster" or the regions.yaml a deployment uses
    verdict: Verdict
    steady_before: list[str]       # what did not hold ([] = held)
    steady_after: list[str]
    recovered_s: float | None      # rollback -> healthy again and every viewer converged
    converged_s: float | None      # after the traffic stopped: every viewer has everything
    windows: list[tuple[float, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["passed"] = self.passed
        for viewer in doc["verdict"]["viewers"]:
            viewer["missing"] = viewer["missing"][:50]   # every id is in verdict.missing
        return doc

    def text(self) -> str:
        v = self.verdict
        lines = [
            f"drill {self.drill} on {self.region} ({self.target}), fault {self.seconds:g} s, "
            f"stream {self.stream}: {'PASSED' if self.passed else 'FAILED'}",
            f"  steady state before: {_held(self.steady_before)}",
            f"  steady state after:  {_held(self.steady_after)}",
            f"  posts: {v.acknowledged} acknowledged, {v.unknown} outcome unknown, "
            f"{v.refused} refused",
            f"  delivered to every viewer: {'yes' if not v.missing else 'no'}; missing "
            f"{len(v.missing)}, rendered twice {v.duplicates}, gaps {v.gaps}, "
            f"failovers {v.failovers}"
            + (f" (p99 {v.failover_p99_s:.1f} s)" if v.failover_p99_s is not None else ""),
            f"  recovered in {_s(self.recovered_s)} after the rollback; converged "
            f"{_s(self.converged_s)} after the traffic stopped",
            "  worst lateness by origin: " + ", ".join(
                f"{o} {ms / 1000:.1f} s" for o, ms in sorted(v.max_late_ms.items())),
            "  worst disorder by origin: " + ", ".join(
                f"{o} {ms / 1000:.1f} s" for o, ms in sorted(v.max_disorder_ms.items())),
        ]
        for key, value in self.extra.items():
            lines.append(f"  {key}: {value}")
        for c in v.viewers:
            lines.append(
                f"  viewer {c.name:<12} on {c.region or '-':<9} received {c.received:>5}  "
                f"missing {len(c.missing)}  twice {c.rendered_twice}  gaps {c.gaps}  "
                f"failovers {c.failovers}  failbacks {c.failbacks}"
                + (f"  unreadable frames {c.malformed}" if c.malformed else "")
                + (f"  moved after {c.failover_s:.1f} s" if c.failover_s is not None else ""))
        if v.missing:
            lines.append(f"  missing ids: {', '.join(v.missing[:20])}"
                         + (" ..." if len(v.missing) > 20 else ""))
        for reason in v.reasons:
            lines.append(f"  FAILED: {reason}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def write(self, out_dir: Path, arrivals: Sequence[Arrival],
              homes: dict[str, str]) -> list[Path]:
        """Writes ``<drill>.json`` and ``<drill>.png`` into ``out_dir``; returns the paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = out_dir / f"{self.drill}.json"
        doc.write_text(json.dumps(self.as_json(), indent=2), encoding="utf-8")
        png = out_dir / f"{self.drill}.png"
        timeline_png(png, self, arrivals, homes)
        return [doc, png]


def _held(notes: list[str]) -> str:
    return "held" if not notes else "; ".join(notes)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def per_second(arrivals: Sequence[Arrival], homes: dict[str, str]
               ) -> dict[str, dict[int, list[float]]]:
    """Latencies (ms) by the viewer's home region and the second they arrived in. Pure."""
    out: dict[str, dict[int, list[float]]] = {}
    for a in arrivals:
        region = homes.get(a.viewer, "?")
        out.setdefault(region, {}).setdefault(int(a.at_s), []).append(a.late_ms)
    return out


def timeline_png(path: Path, report: DrillReport, arrivals: Sequence[Arrival],
                 homes: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = per_second(arrivals, homes)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for region, seconds in sorted(data.items()):
        xs = sorted(seconds)
        top.plot(xs, [len(seconds[x]) for x in xs], label=region, linewidth=1.2)
        medians = [sorted(seconds[x])[len(seconds[x]) // 2] / 1000 for x in xs]
        worst = [max(seconds[x]) / 1000 for x in xs]
        line = bottom.plot(xs, medians, linewidth=1.2, label=f"{region} median")[0]
        bottom.plot(xs, worst, linewidth=0.8, linestyle="--", color=line.get_color(),
                    label=f"{region} worst")
    for axis in (top, bottom):
        for began, ended, _label in report.windows:
            axis.axvspan(began, max(ended, began + 0.1), color="tab:red", alpha=0.12)
    for began, _ended, label in report.windows[:12]:
        top.annotate(label, (began, 1), xycoords=("data", "axes fraction"), fontsize=7,
                     va="top", color="tab:red")
    top.set_ylabel("comments delivered / s\n(to each region's viewers)")
    bottom.set_ylabel("delivery latency (s)")
    bottom.set_xlabel("seconds since the drill began")
    bottom.set_yscale("symlog", linthresh=0.1)
    top.legend(loc="upper right", fontsize=8)
    bottom.legend(loc="upper right", fontsize=7, ncol=3)
    verdict = "PASSED" if report.passed else "FAILED"
    fig.suptitle(f"chorus drill {report.drill} on {report.region}: {verdict} "
                 f"({report.verdict.acknowledged} acknowledged, "
                 f"{len(report.verdict.missing)} missing, {report.verdict.duplicates} twice)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
