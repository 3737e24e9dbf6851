"""PNG plots of a load run over time (matplotlib, drawn off-screen)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chorus.load.run import Run


def draw(run: Run, out: Path) -> list[Path]:
    """latency.png, throughput.png, viewers.png and server.png in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = (f"chorus load {run.spec.profile}: {run.spec.viewers} viewers, "
             f"{run.spec.rate:g} posts/s per region")
    files = []

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, p in zip(axes, (50.0, 99.0), strict=True):
        for (origin, region), series in run.latencies.series(p).items():
            if series:
                ax.plot([x for x, _ in series], [y * 1000 for _, y in series],
                        label=f"{origin} → {region}", lw=1)
        ax.set_title(f"delivery p{p:g} per second")
        ax.set_xlabel("seconds into the run")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ms (post request to viewer)")
    axes[1].legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title)
    files.append(_save(fig, out / "latency.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for name in ("posts/s", "deliveries/s"):
        points = run.per_second.get(name, [])
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], label=name)
    ax.set_yscale("symlog")
    ax.set_xlabel("seconds into the run")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    files.append(_save(fig, out / "throughput.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for name, points in sorted(run.per_second.items()):
        if name.startswith("viewers ") and points:
            ax.plot([x for x, _ in points], [y for _, y in points],
                    label=name.removeprefix("viewers "))
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("connected viewers")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    files.append(_save(fig, out / "viewers.png"))

    fig, (cpu, mem) = plt.subplots(1, 2, figsize=(13, 4.5))
    for region, rows in sorted(run.resources.items()):
        if rows:
            ts = [r[0] for r in rows]
            cpu.plot(ts, [r[1] for r in rows], label=region)
            mem.plot(ts, [r[2] if not math.isnan(r[2]) else 0 for r in rows], label=region)
    cpu.set_title("server CPU per region (100 % = one core)")
    mem.set_title("server resident memory per region (MiB)")
    for ax in (cpu, mem):
        ax.set_xlabel("seconds into the run")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    files.append(_save(fig, out / "server.png"))
    return files


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
