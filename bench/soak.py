"""Soak: steady submit -> dispatch -> complete for minutes; does throughput hold up?

    .venv/bin/python bench/soak.py [--minutes 10] [--rate R] [--workers 4] [--json]

A real `qgjob server` on a PostgreSQL of its own (a fresh embedded one, or a new database
on QGJOB_DATABASE_URL's server) and `--workers` real `qgjob worker` processes running
`true` per job. Unless `--rate` is given, the maximum rate is measured first: a burst of
`--probe-jobs` jobs drained by the same workers (jobs/s from first submit to last job
ended). Then runs of `--run-size` tests (one app version each, over 8 app versions) are
submitted on a fixed schedule at half that rate for `--minutes`, and once a minute
(`--window-s`) it prints: jobs finished per second in that window, the p50/p99 time from
submit to finish of those jobs, the jobs still queued, and the live and dead tuples of the
jobs, job_attempts and groups tables (pg_stat_user_tables) with their autovacuum counts.

Target (issue 9): throughput falls by no more than 10 % from the first window to the last.
At half the maximum rate a healthy queue keeps pace with the submits, so the throughput
stays at the submit rate; the submit-to-finish times and the backlog show a slowdown
before the throughput does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    Server,
    fresh_database,
    log_tails,
    postgres_cluster,
    raw_client,
    running_server,
    start_workers,
)

Figures = dict[str, Any]
APP_VERSIONS = 8
TABLES = ("jobs", "job_attempts", "groups")

_WINDOW = """
SELECT count(*) AS finished,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - created_at) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY finished_at - created_at) AS p99
FROM jobs WHERE finished_at >= $1 AND finished_at < $2
"""
_QUEUED = "SELECT count(*) FROM jobs WHERE status IN ('PENDING', 'ASSIGNED', 'RUNNING')"
_TUPLES = """
SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, pg_total_relation_size(relid) AS bytes
FROM pg_stat_user_tables WHERE relname = ANY($1::text[])
"""


class Submitter:
    """Submits runs of `run_size` tests on a fixed schedule (catching up if it falls behind)."""

    def __init__(self, server: Server, *, rate: float, run_size: int) -> None:
        self.server, self.rate, self.run_size = server, rate, run_size
        self.submitted = 0
        self.runs = 0

    async def run_for(self, seconds: float) -> None:
        client = raw_client(self.server)
        await client.connect()
        interval = self.run_size / self.rate
        start = time.monotonic()
        try:
            while (due := start + self.runs * interval) < start + seconds:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self.submit(client, self.run_size)
        finally:
            await client.close()

    async def submit(self, client: Any, tests: int) -> None:
        paths = [f"tests/soak/spec_{self.runs:06}_{i:03}.spec.ts" for i in range(tests)]
        body = {"org_id": "soak", "app_version_id": f"v{self.runs % APP_VERSIONS}"}
        status, answer = await client.post("/v1/runs", body | {"tests": paths})
        if status != 201:
            raise SystemExit(f"submit answered {status}: {answer[:300]!r}")
        self.runs += 1
        self.submitted += tests


async def wait_drained(db: asyncpg.Connection, *, timeout_s: float) -> float:
    """Seconds until nothing is queued or running (or the timeout)."""
    started = time.monotonic()
    # Polling: the database is the only place that knows (and a bench may poll).
    while await db.fetchval(_QUEUED) and time.monotonic() - started < timeout_s:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def probe_max_rate(server: Server, db: asyncpg.Connection, *, jobs: int) -> float:
    """Jobs/s of a burst of `jobs` jobs (runs of 250) from the first submit to the last end."""
    prober = Submitter(server, rate=1.0, run_size=250)
    clients = [raw_client(server) for _ in range(0, jobs, 250)]
    await asyncio.gather(*(c.connect() for c in clients))
    started = time.monotonic()
    await asyncio.gather(*(prober.submit(c, 250) for c in clients))
    await wait_drained(db, timeout_s=300)
    elapsed = time.monotonic() - started
    await asyncio.gather(*(c.close() for c in clients))
    return prober.submitted / elapsed


async def window_figures(db: asyncpg.Connection, start: Any, end: Any) -> Figures:
    row = await db.fetchrow(_WINDOW, start, end)
    seconds = (end - start).total_seconds()
    tables = {
        r["relname"]: {k: r[k] for k in ("n_live_tup", "n_dead_tup", "autovacuum_count", "bytes")}
        for r in await db.fetch(_TUPLES, list(TABLES))
    }
    return {
        "seconds": round(seconds, 1),
        "jobs_per_s": round(row["finished"] / seconds, 1),
        "p50_ms": _ms(row["p50"]),
        "p99_ms": _ms(row["p99"]),
        "queued": await db.fetchval(_QUEUED),
        "tables": tables,
        "loadavg": [f"{load:.2f}" for load in os.getloadavg()],
    }


def _ms(interval: Any) -> float | None:
    return None if interval is None else round(interval.total_seconds() * 1000, 1)


async def soak(server: Server, dsn: str, args: argparse.Namespace) -> Figures:
    db = await asyncpg.connect(dsn)
    try:
        registered = "SELECT count(*) FROM workers WHERE status <> 'offline'"
        while await db.fetchval(registered) < args.workers:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let every worker park its first claim
        rate = args.rate
        figures: Figures = {"workers": args.workers, "run_size": args.run_size}
        if rate is None:
            best = await probe_max_rate(server, db, jobs=args.probe_jobs)
            figures["max_jobs_per_s"] = round(best, 1)
            rate = figures["max_jobs_per_s"] / 2
            print(f"measured maximum: {figures['max_jobs_per_s']} jobs/s", file=sys.stderr)
        figures["rate"] = round(rate, 1)
        print(f"submitting {rate:.1f} jobs/s for {args.minutes} min", file=sys.stderr)
        submitter = Submitter(server, rate=rate, run_size=args.run_size)
        total_s = args.minutes * 60
        feeding = asyncio.create_task(submitter.run_for(total_s))
        windows: list[Figures] = []
        start = await db.fetchval("SELECT clock_timestamp()")
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < total_s - 1e-3:
            await asyncio.sleep(min(args.window_s, total_s - elapsed))
            end = await db.fetchval("SELECT clock_timestamp()")
            windows.append(await window_figures(db, start, end))
            print(render_window(len(windows), windows[-1]), file=sys.stderr)
            start = end
        await feeding
        figures["submitted"] = submitter.submitted
        figures["drain_after_s"] = round(await wait_drained(db, timeout_s=120), 2)
        figures["windows"] = windows
        first, last = windows[0]["jobs_per_s"], windows[-1]["jobs_per_s"]
        figures["fall_pct"] = round(100 * (first - last) / first, 1) if first else None
        return figures
    finally:
        await db.close()


def render_window(n: int, w: Figures) -> str:
    tables = "; ".join(
        f"{name} live {t['n_live_tup']} dead {t['n_dead_tup']} av {t['autovacuum_count']} "
        f"{t['bytes'] // 1024} KiB"
        for name, t in w["tables"].items()
    )
    return (
        f"  window {n:>2} ({w['seconds']} s): {w['jobs_per_s']:>7} jobs/s, submit->finish p50 "
        f"{w['p50_ms']} ms p99 {w['p99_ms']} ms, queued {w['queued']}, load "
        f"{' '.join(w['loadavg'])} | {tables}"
    )


def render(f: Figures) -> list[str]:
    lines = [f"soak: {f['workers']} workers running `true`, runs of {f['run_size']} tests"]
    if "max_jobs_per_s" in f:
        lines.append(f"  measured maximum {f['max_jobs_per_s']} jobs/s; soak at half of it")
    lines.append(f"  submit rate {f['rate']} jobs/s; {f['submitted']} jobs submitted")
    lines += [render_window(n, w) for n, w in enumerate(f["windows"], 1)]
    lines.append(
        f"  first window {f['windows'][0]['jobs_per_s']} jobs/s, last "
        f"{f['windows'][-1]['jobs_per_s']} jobs/s: fall {f['fall_pct']} % (target <= 10 %); "
        f"backlog drained {f['drain_after_s']} s after the last submit"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument("--window-s", type=float, default=60.0, help="report every N s")
    parser.add_argument("--rate", type=float, help="jobs/s to submit (default: half the max)")
    parser.add_argument("--probe-jobs", type=int, default=2000, help="burst size for the max")
    parser.add_argument("--run-size", type=int, default=20, help="tests per submitted run")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.minutes <= 0 or args.window_s <= 0 or (args.rate is not None and args.rate <= 0):
        parser.error("--minutes, --window-s and --rate must be positive")
    with postgres_cluster() as admin_dsn:
        dsn = asyncio.run(fresh_database(admin_dsn, "qgjob_soak"))
        with (
            running_server(extra_env={"QGJOB_DATABASE_URL": dsn}) as server,
            tempfile.TemporaryDirectory(prefix="qgjob-soak-workers-") as tmp,
        ):
            procs = start_workers(server, count=args.workers, command="true", log_dir=Path(tmp))
            try:
                figures = asyncio.run(soak(server, dsn, args))
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                codes = [proc.wait(timeout=30) for proc in procs]
            if any(codes):
                print("worker logs:\n" + log_tails(Path(tmp)), file=sys.stderr)
    figures["worker_exit_codes"] = codes
    print(json.dumps(figures, default=str) if args.json else "\n".join(render(figures)))


if __name__ == "__main__":
    main()
