"""The three workloads of issue 5, generated deterministically from a seed.

- Spec durations: each spec has a true median drawn lognormal (median 45 s, σ = 0.5) on an
  emulator; a device takes ×1.2 and BrowserStack ×1.6 (remote round trips); every run of a
  spec varies around its median by a lognormal factor (σ = 0.15).
- Setup (fetch + install, or upload): emulator 60 s, device 90 s, BrowserStack 30 s.
- History: *warm* records one earlier run of every spec the workload uses (a different draw
  of the run-to-run noise) and one setup per (org, target); *cold* records nothing, so every
  spec starts at the default estimate and the policy learns as jobs finish.

(a) 3 app versions × the same 40 specs, one org, all at t = 0, 8 emulators.
(b) acme pushes 300 specs at t = 0; globex, initech and umbrella each submit 6 small runs
    (4-10 of their 40 specs, a new build per run), one at a random instant in each 5-minute
    window of the first 30 minutes — the same expected load per org, so per-org feedback
    compares how the policy treats orgs rather than how much each happened to submit.
(c) 2 app versions of 30 specs on 4 emulators, 12 of them on 2 devices and 10 on BrowserStack
    with 2 parallel sessions (one worker, capacity 2, uploads kept).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.sim.model import RunSubmission, SimJob, SimWorker, Workload
from dispatch.estimates import DurationHistory, EstimateConfig, SetupKey, SpecKey, UnknownSpecPolicy
from qgjob.types import Target

MEDIAN_S = 45.0
SPEC_SIGMA = 0.5
RUN_SIGMA = 0.15
SLOWDOWN = {Target.EMULATOR: 1.0, Target.DEVICE: 1.2, Target.BROWSERSTACK: 1.6}
SETUP_S = {Target.EMULATOR: 60.0, Target.DEVICE: 90.0, Target.BROWSERSTACK: 30.0}
TRICKLE_RUNS = 6
TRICKLE_SPECS = 6
TRICKLE_EVERY_S = 300.0
ESTIMATES = EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN)


@dataclass(frozen=True)
class Suite:
    """An org's spec files and each one's true median duration on an emulator."""

    org_id: str
    medians_s: dict[str, float]


def make_suite(rng: random.Random, org_id: str, size: int) -> Suite:
    medians = {
        f"tests/{org_id}/spec{n:03d}.spec.ts": rng.lognormvariate(math.log(MEDIAN_S), SPEC_SIGMA)
        for n in range(size)
    }
    return Suite(org_id, medians)


def _draw_s(rng: random.Random, suite: Suite, path: str, target: Target) -> float:
    return suite.medians_s[path] * SLOWDOWN[target] * rng.lognormvariate(0.0, RUN_SIGMA)


@dataclass
class _Builder:
    """Makes runs; draws the warm history's earlier run from its own generator, so that a
    workload's true durations are the same warm or cold."""

    rng: random.Random
    warm: bool
    history: DurationHistory
    prior_rng: random.Random = field(default_factory=random.Random)

    def run(
        self,
        *,
        suite: Suite,
        app_version_id: str,
        submitted_s: float,
        specs: Sequence[tuple[str, Target]],
    ) -> RunSubmission:
        run_id = f"{suite.org_id}/{app_version_id}"
        jobs = tuple(
            SimJob(
                job_id=f"{run_id}/{target}/{path}",
                run_id=run_id,
                org_id=suite.org_id,
                app_version_id=app_version_id,
                target=target,
                test_path=path,
                duration_s=_draw_s(self.rng, suite, path, target),
            )
            for path, target in specs
        )
        if self.warm:
            for path, target in specs:
                key = SpecKey(suite.org_id, path, target)
                if key not in self.history.durations:
                    prior_s = _draw_s(self.prior_rng, suite, path, target)
                    self.history = self.history.recorded(key, prior_s)
            for target in {target for _, target in specs}:
                setup_key = SetupKey(suite.org_id, target)
                if setup_key not in self.history.setups:
                    self.history = self.history.setup_recorded(setup_key, SETUP_S[target])
        return RunSubmission(run_id, suite.org_id, submitted_s, jobs)


def _builder(rng: random.Random, warm: bool, history_seed: str) -> _Builder:
    return _Builder(rng, warm, DurationHistory(ESTIMATES), random.Random(history_seed))


def _emulators(count: int) -> tuple[SimWorker, ...]:
    return tuple(SimWorker(f"emu-{n + 1}", frozenset({Target.EMULATOR})) for n in range(count))


def workload_a(seed: int, *, warm: bool = True) -> Workload:
    rng = random.Random(f"a/{seed}")
    builder = _builder(rng, warm, f"a/{seed}/history")
    suite = make_suite(rng, "acme", 40)
    specs = [(path, Target.EMULATOR) for path in suite.medians_s]
    runs = tuple(
        builder.run(suite=suite, app_version_id=f"v{n}", submitted_s=0.0, specs=specs)
        for n in (1, 2, 3)
    )
    return Workload(
        "a", "3 app versions x 40 specs, 8 emulators", runs, _emulators(8), SETUP_S, builder.history
    )


def workload_b(seed: int, *, warm: bool = True) -> Workload:
    rng = random.Random(f"b/{seed}")
    builder = _builder(rng, warm, f"b/{seed}/history")
    push = make_suite(rng, "acme", 300)
    runs = [
        builder.run(
            suite=push,
            app_version_id="main-1",
            submitted_s=0.0,
            specs=[(path, Target.EMULATOR) for path in push.medians_s],
        )
    ]
    for org_id in ("globex", "initech", "umbrella"):
        suite = make_suite(rng, org_id, 40)
        for number in range(1, TRICKLE_RUNS + 1):
            at_s = (number - 1) * TRICKLE_EVERY_S + rng.uniform(30.0, TRICKLE_EVERY_S)
            paths = rng.sample(sorted(suite.medians_s), TRICKLE_SPECS)
            specs = [(path, Target.EMULATOR) for path in paths]
            runs.append(
                builder.run(
                    suite=suite, app_version_id=f"pr-{number}", submitted_s=at_s, specs=specs
                )
            )
    runs.sort(key=lambda run: (run.submitted_s, run.run_id))
    return Workload(
        "b",
        "push of 300 specs + small runs from 3 orgs, 8 emulators",
        tuple(runs),
        _emulators(8),
        SETUP_S,
        builder.history,
    )


def workload_c(seed: int, *, warm: bool = True) -> Workload:
    rng = random.Random(f"c/{seed}")
    builder = _builder(rng, warm, f"c/{seed}/history")
    suite = make_suite(rng, "acme", 30)
    paths = sorted(suite.medians_s)
    on_device = rng.sample(paths, 12)
    on_cloud = rng.sample(paths, 10)
    specs = [
        *((path, Target.EMULATOR) for path in paths),
        *((path, Target.DEVICE) for path in on_device),
        *((path, Target.BROWSERSTACK) for path in on_cloud),
    ]
    runs = tuple(
        builder.run(suite=suite, app_version_id=f"v{n}", submitted_s=0.0, specs=specs)
        for n in (1, 2)
    )
    workers = (
        *_emulators(4),
        *(SimWorker(f"dev-{n + 1}", frozenset({Target.DEVICE})) for n in range(2)),
        SimWorker("bs-1", frozenset({Target.BROWSERSTACK}), capacity=2, keeps_builds=True),
    )
    return Workload(
        "c",
        "2 versions on 4 emulators, 2 devices, BrowserStack with 2 parallel sessions",
        runs,
        workers,
        SETUP_S,
        builder.history,
    )


WORKLOADS = {"a": workload_a, "b": workload_b, "c": workload_c}
