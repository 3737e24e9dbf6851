"""A drill as a Chaos Toolkit experiment (the JSON that `chaos run` reads).

Where it fits: a drill's structure is Chaos Toolkit's (a steady-state hypothesis checked
before and after, a method that injects, rollbacks), and an SRE's catalogue of experiments
can hold ours. Where it does not: our verdict rests on what a workload saw over the whole
drill (every acknowledged comment at every viewer, nothing twice, failover times), which
Chaos Toolkit's point-in-time probes with tolerances cannot express. So the experiment's
method is one action, `chorus drill NAME --json`, which runs the workload, the fault and the
rollback and exits non-zero when the verdict fails; its hypothesis probes are `chorus status`
(the local cluster) so that `chaos run` refuses to start on an unhealthy cluster and reports
one left unhealthy. For a deployment, pass the hooks file (``--hooks``) and replace the
probes with your own health checks.
"""

from __future__ import annotations

from typing import Any

from chaos.catalogue import CATALOGUE, STORM


def experiment(drill: str, *, region: str, config: str = "regions.yaml",
               hooks: str | None = None, short: bool = False) -> dict[str, Any]:
    """The Chaos Toolkit experiment that runs ``drill`` on ``region``."""
    spec = CATALOGUE.get(drill)
    summary = spec.summary if spec else "thousands of viewers of one gateway cut at once"
    hypothesis = spec.hypothesis if spec else ("every viewer back with every comment; no "
                                              "health check fails; no gateway falls over")
    args = ["--config", config, "drill", drill, "--region", region, "--json"]
    if hooks:
        args += ["--hooks", hooks]
    if short:
        args.append("--short")
    status = {"type": "probe", "name": "every part of the cluster is healthy",
              "tolerance": 0,
              "provider": {"type": "process", "path": "chorus",
                           "arguments": ["--config", config, "status"]}}
    return {
        "version": "1.0.0",
        "title": f"chorus drill {drill} on {region}",
        "description": f"{summary}. Holds: {hypothesis}.",
        "tags": ["chorus", "region-failover", drill],
        "steady-state-hypothesis": {"title": "the cluster is healthy", "probes": [status]},
        "method": [{
            "type": "action", "name": f"run the {drill} drill (workload, fault, rollback, "
                                      "verdict)",
            "provider": {"type": "process", "path": "chorus", "arguments": args,
                         "timeout": 900},
        }],
        "rollbacks": [],
    }


def names() -> tuple[str, ...]:
    return (*CATALOGUE, STORM)
