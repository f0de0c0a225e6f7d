"""Workload (a) on real processes at 1/100 time scale, against the simulation's prediction.

    .venv/bin/python bench/schedule_real.py [--seed 1] [--scale 0.01] [--json]

The simulation (bench/sim, the real policy on a virtual clock) predicts workload (a)'s
makespan under our policy; this runs the same workload for real and measures it:

- a real `qgjob server` (fresh embedded PostgreSQL) with the policy's time settings scaled
  like the workload (`QGJOB_MAX_BATCH_S`, `QGJOB_DEFAULT_SETUP_S`, …), so that it decides as
  it would at full scale;
- 8 real `qgjob worker` processes, local executor: each test is `sleep` for that job's true
  duration × scale (the same draw the simulation uses), and the prepare command sleeps the
  setup time × scale unless the worker's "device" already holds that build (a marker file
  per worker: a device keeps one installed build, as in the simulation);
- a warm-up run first (the simulation's warm history: one earlier run of every spec), then
  the three app versions submitted together; the makespan is measured on the server's
  clock, from the first run's creation to the last job's finish.

Per-job overheads the simulation does not model (a shell and a `sleep` per job, HTTP events,
claims) weigh ~100x more at this scale than at full scale; on a loaded 2-core machine they
are the difference you see. Takes about a minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import REPO, Server, log_tails, running_server
from bench.sim.engine import simulate
from bench.sim.model import Workload
from bench.sim.policies import OurPolicy, SeedPolicy
from bench.sim.workloads import workload_a
from dispatch.estimates import SpecKey
from dispatch.scheduling import SchedulerConfig
from qgjob.types import Target

ORG = "acme"
WARMUP_VERSION = "v0"


def scaled_settings(scale: float) -> dict[str, str]:
    """The policy's time settings at this scale (the defaults are for full scale)."""
    config = SchedulerConfig()
    return {
        "QGJOB_AGING_S": f"{max(1.0, config.aging_bound_s * scale):g}",
        "QGJOB_MAX_BATCH_S": f"{(config.max_batch_s or 0) * scale:g}",
        "QGJOB_MIN_BATCH_S": f"{config.min_batch_s * scale:g}",
        "QGJOB_DEFAULT_SETUP_S": f"{config.default_setup_s * scale:g}",
        "QGJOB_DEFAULT_DURATION_S": f"{120.0 * scale:g}",
    }


def write_durations(workload: Workload, root: Path, scale: float) -> list[str]:
    """One file per job holding its sleep in seconds; returns the specs of the warm-up run."""
    for run in workload.runs:
        for job in run.jobs:
            path = root / job.app_version_id / job.test_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{job.duration_s * scale:.4f}\n")
    specs = sorted({job.test_path for run in workload.runs for job in run.jobs})
    for spec in specs:
        prior = workload.history.durations[SpecKey(ORG, spec, Target.EMULATOR)][0]
        path = root / WARMUP_VERSION / spec
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{prior * scale:.4f}\n")
    return specs


def start_workers(
    server: Server, workload: Workload, *, root: Path, scale: float, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    setup_s = workload.setup_s[Target.EMULATOR] * scale
    # Shell builtins and one `sleep`: as little process start-up per job as there can be.
    where = shlex.quote(str(root))
    command = f"read -r s < {where}/{{app_version_id}}/{{test_path}}; exec sleep $s"
    prepare = (
        'held=; [ -f "$SIM_DEVICE" ] && read -r held < "$SIM_DEVICE"; '
        'if [ "$held" != {app_version_id} ]; then '
        f'sleep {setup_s:.4f}; echo {{app_version_id}} > "$SIM_DEVICE"; fi'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_")}
    env.update({"QGJOB_SERVER_URL": server.url, "QGJOB_TOKEN": server.token})
    env["QGJOB_LOG_LEVEL"] = "WARNING"
    procs = []
    for worker in workload.workers:
        argv = [sys.executable, "-m", "qgjob", "worker", "--target", "emulator"]
        argv += ["--executor", "local", "--command", command, "--prepare-command", prepare]
        argv += ["--capacity", str(worker.capacity), "--name", worker.worker_id]
        device = {"SIM_DEVICE": str(root / f"device-{worker.worker_id}")}
        with (log_dir / f"{worker.worker_id}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(argv, env={**env, **device}, cwd=REPO, stdout=log, stderr=log)
            )
    return procs


def submit(client: httpx.Client, version: str, specs: list[str]) -> str:
    body = {"org_id": ORG, "app_version_id": version, "tests": specs, "targets": ["emulator"]}
    answer = client.post("/v1/runs", json=body)
    answer.raise_for_status()
    run_id: str = answer.json()["run_id"]
    return run_id


def run_jobs(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    answer = client.get("/v1/jobs", params={"run_id": run_id, "limit": 500})
    answer.raise_for_status()
    jobs: list[dict[str, Any]] = answer.json()["jobs"]
    return jobs


def wait_done(
    client: httpx.Client, run_ids: list[str], *, timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [job for run_id in run_ids for job in run_jobs(client, run_id)]
        if all(job["status"] in ("COMPLETED", "FAILED", "CANCELLED") for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            pending = sum(1 for job in jobs if job["finished_at"] is None)
            raise SystemExit(f"{pending} jobs unfinished after {timeout_s:.0f} s")
        time.sleep(0.2)


def measure_real(workload: Workload, *, scale: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qgjob-real-") as tmp:
        root, log_dir = Path(tmp) / "durations", Path(tmp) / "logs"
        log_dir.mkdir()
        specs = write_durations(workload, root, scale)
        with running_server(extra_env=scaled_settings(scale)) as server:
            workers = start_workers(server, workload, root=root, scale=scale, log_dir=log_dir)
            headers = {"Authorization": f"Bearer {server.token}"}
            try:
                with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
                    warmup = submit(client, WARMUP_VERSION, specs)
                    wait_done(client, [warmup], timeout_s=120)
                    versions = sorted({run.jobs[0].app_version_id for run in workload.runs})
                    runs = [submit(client, version, specs) for version in versions]
                    jobs = wait_done(client, runs, timeout_s=600)
                    created = [
                        datetime.fromisoformat(
                            client.get(f"/v1/runs/{run_id}").json()["created_at"]
                        )
                        for run_id in runs
                    ]
            except BaseException:
                print(log_tails(log_dir), file=sys.stderr)
                raise
            finally:
                for proc in workers:
                    proc.send_signal(signal.SIGTERM)
                for proc in workers:
                    proc.wait(timeout=30)
    start = min(created)
    finished = [datetime.fromisoformat(job["finished_at"]) for job in jobs]
    failed = sum(1 for job in jobs if job["status"] != "COMPLETED")
    return {
        "makespan_s": round((max(finished) - start).total_seconds(), 3),
        "jobs": len(jobs),
        "not_completed": failed,
        **overheads(workload, jobs, scale=scale),
    }


def overheads(workload: Workload, jobs: list[dict[str, Any]], *, scale: float) -> dict[str, Any]:
    """Where real time went beyond the true durations: per job (its measured run minus its
    sleep) and between jobs on one worker (results, claims, setups)."""
    true_s = {
        (job.app_version_id, job.test_path): job.duration_s * scale
        for run in workload.runs
        for job in run.jobs
    }
    extra = [
        job["duration_ms"] / 1000 - true_s[(job["app_version_id"], job["test_path"])]
        for job in jobs
        if job["duration_ms"] is not None
    ]
    by_worker: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for job in jobs:
        span = (
            datetime.fromisoformat(job["started_at"]),
            datetime.fromisoformat(job["finished_at"]),
            job["group_id"],
        )
        by_worker.setdefault(job["worker_id"], []).append(span)
    inside: list[float] = []
    across: list[float] = []
    for spans in by_worker.values():
        ordered = sorted(spans)
        for earlier, later in itertools.pairwise(ordered):
            gap = (later[0] - earlier[1]).total_seconds()
            (inside if earlier[2] == later[2] else across).append(gap)
    leases = len({job["group_id"] for job in jobs})
    return {
        "mean_job_overhead_s": round(sum(extra) / max(1, len(extra)), 4),
        "mean_gap_in_lease_s": round(sum(inside) / max(1, len(inside)), 4),
        "mean_gap_between_leases_s": round(sum(across) / max(1, len(across)), 4),
        "leases": leases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=0.01, help="time scale (default 1/100)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    workload = workload_a(args.seed, warm=True)
    predicted_s = simulate(workload, OurPolicy()).makespan_s * args.scale
    seed_s = simulate(workload, SeedPolicy()).makespan_s * args.scale
    load_before = os.getloadavg()
    real = measure_real(workload, scale=args.scale)
    load_after = os.getloadavg()
    error = real["makespan_s"] / predicted_s - 1.0
    report = {
        "workload": "a",
        "seed": args.seed,
        "scale": args.scale,
        "simulated_makespan_s": round(predicted_s, 3),
        "simulated_seed_policy_makespan_s": round(seed_s, 3),
        "real_makespan_s": real["makespan_s"],
        "relative_error": round(error, 3),
        "jobs": real["jobs"],
        "jobs_not_completed": real["not_completed"],
        "mean_job_overhead_s": real["mean_job_overhead_s"],
        "mean_gap_in_lease_s": real["mean_gap_in_lease_s"],
        "mean_gap_between_leases_s": real["mean_gap_between_leases_s"],
        "leases": real["leases"],
        "load_average": {"before": load_before, "after": load_after},
    }
    if args.json:
        print(json.dumps(report))
        return 0
    verdict = "met" if abs(error) <= 0.15 else "MISSED"
    print(f"workload (a), seed {args.seed}, time scale {args.scale:g}, {real['jobs']} jobs")
    print(
        f"  simulated makespan (ours): {predicted_s:7.2f} s   (the seed's policy: {seed_s:.2f} s)"
    )
    print(f"  real makespan:             {real['makespan_s']:7.2f} s")
    print(f"  real / simulated - 1: {error:+.1%}  (target within 15 %: {verdict})")
    print(
        f"  per job beyond its sleep: {real['mean_job_overhead_s'] * 1000:.0f} ms; gap between "
        f"jobs of a lease {real['mean_gap_in_lease_s'] * 1000:.0f} ms, between a worker's "
        f"leases {real['mean_gap_between_leases_s'] * 1000:.0f} ms (setup included); "
        f"{real['leases']} leases"
    )
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
