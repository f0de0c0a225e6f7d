"""Compare scheduling policies on issue 5's workloads with a discrete-event simulation.

    .venv/bin/python bench/schedule_sim.py [--seed N] [--cold] [--json]

Drives the real policy (`dispatch.scheduling.decide_claim`) against per-job FIFO (every job
installs) and the seed (a whole group to one worker), on a virtual clock: no sleeping, and
the same seed gives the same figures. `--cold` starts with no duration history (unknown
specs get the default estimate, then the mean of known ones) instead of one earlier run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim.engine import Policy, SimResult, simulate
from bench.sim.model import lower_bound_s
from bench.sim.policies import FifoPolicy, OurPolicy, SeedPolicy
from bench.sim.workloads import WORKLOADS

JsonDict = dict[str, object]


def policies() -> list[Policy]:
    return [FifoPolicy(), SeedPolicy(), OurPolicy()]


def figures(result: SimResult) -> JsonDict:
    return {
        "makespan_s": round(result.makespan_s, 1),
        "mean_feedback_s": round(result.mean_feedback_s, 1),
        "setup_s": round(result.setup_total_s, 1),
        "per_org_feedback_s": {org: round(s, 1) for org, s in result.per_org_feedback_s().items()},
    }


def measure(seed: int, *, warm: bool) -> JsonDict:
    workloads: JsonDict = {}
    for name, build in WORKLOADS.items():
        workload = build(seed, warm=warm)
        workloads[name] = {
            "lower_bound_s": round(lower_bound_s(workload), 1),
            "policies": {p.name: figures(simulate(workload, p)) for p in policies()},
        }
    return {"workloads": workloads}


def render(report: JsonDict, *, seed: int, warm: bool) -> str:
    history = "warm (one earlier run)" if warm else "cold (no history)"
    lines = [f"seed {seed}, duration history {history}"]
    workloads = report["workloads"]
    assert isinstance(workloads, dict)
    for name, entry in workloads.items():
        bound = entry["lower_bound_s"]
        lines.append("")
        lines.append(f"workload {name}: lower bound {bound:.0f} s")
        lines.append(
            f"  {'policy':<6} {'makespan':>9} {'/bound':>7} {'feedback':>9} {'setup':>7}  per org"
        )
        for policy, fig in entry["policies"].items():
            orgs = ", ".join(f"{o} {s:.0f}" for o, s in fig["per_org_feedback_s"].items())
            lines.append(
                f"  {policy:<6} {fig['makespan_s']:>8.0f}s {fig['makespan_s'] / bound:>7.2f}"
                f" {fig['mean_feedback_s']:>8.0f}s {fig['setup_s']:>6.0f}s  {orgs}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="start with no duration history")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    report = measure(args.seed, warm=not args.cold)
    if args.json:
        print(json.dumps(report))
    else:
        print(render(report, seed=args.seed, warm=not args.cold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
