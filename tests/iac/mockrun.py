"""Runs Pulumi programs under mocks and records every resource they declare.

Each run gets its own thread, event loop and Pulumi settings (Pulumi keeps them in context
variables), so runs do not leak into each other or into pytest-asyncio's loop. No CLI, no
engine, no credentials: the mocks echo inputs back as outputs and add the few computed
attributes the program reads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs
from pulumi.runtime.stack import run_pulumi_func

PROJECT = "chorus"
STACK = "test"


@dataclass(frozen=True)
class Resource:
    """One registered resource (custom or component) with its inputs as the engine saw
    them: camelCase keys, the same shape a CrossGuard policy receives as ``props``."""

    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    custom: bool

    @property
    def provider_name(self) -> str | None:
        """Name of the provider resource (``aws-us-east``), from its reference."""
        if not self.provider:
            return None
        urn, _, _ = self.provider.rpartition("::")
        return urn.rsplit("::", 1)[-1]


# How the engine marks a secret value: {SIG_KEY: SECRET_SIG, "value": ...}.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def reveal(value: Any) -> Any:
    """``value`` with every secret wrapper replaced by the value it wraps."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return reveal(value.get("value"))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _computed(name: str) -> dict[str, Any]:
    """Attributes AWS would compute, for the outputs the program reads."""
    return {
        "arn": f"arn:aws:mock:::{name}",
        "arnSuffix": f"mock/{name}",
        "dnsName": f"{name}.elb.mock",
        "zoneId": "ZMOCK",
        "domainName": f"{name}.cloudfront.mock",
        "bucket": f"{name}-bucket",
        "bucketRegionalDomainName": f"{name}.s3.mock",
        "primaryEndpointAddress": f"{name}.cache.mock",
        "serviceNamespace": "ecs",
        "scalableDimension": "ecs:service:DesiredCount",
        "resourceId": f"service/{name}",
        # Physical names that AWS or Pulumi's auto-naming would choose.
        "name": name,
    }


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Resource] = field(default_factory=list)
    _provider_regions: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid = f"{args.name}-id"
        with self._lock:
            self.resources.append(Resource(type=args.typ, name=args.name,
                                           inputs=reveal(dict(args.inputs)),
                                           provider=args.provider,
                                           custom=bool(args.custom)))
            if args.typ == "pulumi:providers:aws":
                self._provider_regions[rid] = args.inputs.get("region", "mock-1")
        state = {**_computed(args.name), **args.inputs}
        return rid, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        region = self._provider_regions.get((args.provider or "").rsplit("::", 1)[-1], "mock-1")
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": [f"{n}-id" for n in names], "id": region}, []
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": f"ami-{region}", "name": "al2023-ami-2023.mock-x86_64"}, []
        return {}, []


def _close_thread_loop() -> None:
    """Close the event loop Pulumi's runtime made for this worker thread, if any."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:  # none in this thread
        return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


class _LoopClosingExecutor(ThreadPoolExecutor):
    """The runtime calls the mock monitor in executor threads, and each such call makes an
    event loop for its thread when there is none; close it once the call is done, or the
    loops leak (ResourceWarning, which the test settings turn into errors)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def call() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                _close_thread_loop()

        return super().submit(call)


@dataclass(frozen=True)
class Run:
    """A finished run: what the program returned (Outputs resolved) and what it declared."""

    value: Any
    resources: tuple[Resource, ...]

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]

    def named(self, name: str, typ: str) -> Resource:
        (found,) = [r for r in self.resources if r.name == name and r.type == typ]
        return found


def run(program: Callable[[], Any], config: Mapping[str, str] | None = None) -> Run:
    """Run ``program`` under fresh mocks and stack config; resolve what it returns.

    ``program`` may return Outputs nested in dicts and lists; they come back as values.
    Exceptions raised by the program or by a resource registration are re-raised here.
    """
    result: dict[str, Any] = {}

    def body() -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(_LoopClosingExecutor(max_workers=4))
        asyncio.set_event_loop(loop)
        try:
            mocks = RecordingMocks()
            pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=False)
            pulumi.runtime.set_all_config(dict(config or {}))
            returned: list[Any] = []
            loop.run_until_complete(run_pulumi_func(lambda: returned.append(program())))
            value = returned[0] if returned else None
            if value is not None:
                value = loop.run_until_complete(pulumi.Output.from_input(value).future())
            result["run"] = Run(value=value, resources=tuple(mocks.resources))
        except BaseException as exc:  # handed to the calling thread, raised there
            result["error"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            asyncio.set_event_loop(None)

    thread = threading.Thread(target=body, name="pulumi-mocks")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    finished: Run = result["run"]
    return finished
