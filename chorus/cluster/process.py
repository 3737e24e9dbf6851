"""Child processes of the local cluster: what to run (a `ProcessSpec`) and how it runs.

A spec is plain data, built by pure functions (`chorus.cluster.plan`); `Child` starts one,
logs its output to a file, and stops it. Every child gets PR_SET_PDEATHSIG, so that a killed
`chorus up` (even by SIGKILL) never leaves servers behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chorus.errors import ClusterError

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessSpec:
    """One process to run.

    ``files`` are written (parents created) before start: config files rendered from
    regions.yaml. ``stop_timeout_s`` is how long a SIGTERM may take before SIGKILL.
    """

    name: str
    argv: tuple[str, ...]
    log: Path
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[Path, str] = field(default_factory=dict)
    stop_timeout_s: float = 10.0


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL it when the parent
    # thread that forked it exits.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    """A started `ProcessSpec`. Not restarted: the cluster reports a dead child instead."""

    def __init__(self, spec: ProcessSpec, proc: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.proc = proc

    @classmethod
    def start(cls, spec: ProcessSpec) -> Child:
        for path, text in spec.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
        with open(spec.log, "ab") as log:
            try:
                proc = subprocess.Popen(
                    spec.argv, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise ClusterError(f"{spec.name}: cannot start {spec.argv[0]}: {exc}") from exc
        return cls(spec, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.spec.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; returns the exit code."""
        if self.alive:
            self.thaw()  # a frozen process would only act on SIGTERM once resumed
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait),
                                       self.spec.stop_timeout_s)
            except TimeoutError:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL now (chaos drills and tests of crash recovery)."""
        if self.alive:
            self.thaw()  # a stopped process dies of SIGKILL too, but say it plainly
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: the process holds its sockets open and answers nothing (a hung server,
        which clients cannot tell from a slow one). `thaw` resumes it."""
        if self.alive:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
