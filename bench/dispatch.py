"""Dispatch latency, end-to-end throughput with real workers, and the store vs PgQueuer.

    .venv/bin/python bench/dispatch.py [--quick] [--parts latency,e2e,store] [--consumers K]
                                          [--json]

1. Latency: one idle worker keeps a long-poll claim open on a real `qgjob server`; one job
   is submitted on another connection; the time until the claim's 200 arrives is measured
   from the submit's 201 arriving and from the submit being sent (targets p50 <= 10 ms,
   p99 <= 50 ms). The job is then finished so the worker is idle again.
2. End to end: 4 `qgjob worker` processes running `true` per job, HTTP included; runs of
   1,000 tests over 4 app versions; from the first submit to all jobs terminal (polling
   /v1/stats every 100 ms) (target >= 1,500 jobs/s), with the CPU used by each party.
   Before it, the ceiling of any design that starts a process per job on this machine:
   4 processes doing nothing but start `/bin/sh -c true` one after another (what a worker
   starts for `--command true`), with no server, database or HTTP.
3. Store vs PgQueuer, on one PostgreSQL (a fresh embedded one, or QGJOB_DATABASE_URL), each
   in a database of its own. Each side first enqueues and drains N/2 jobs, not timed, so
   that the timed drain runs on tables, planner statistics and caches of a queue in
   service rather than of an empty schema (whose statistics say "no rows" and give plans
   no running service has). Then the same N jobs enqueued in batches of 1,000 (not timed),
   the same VACUUM ANALYZE + CHECKPOINT, and K consumers (`--consumers`, 4) drain them.
   For ours it also prints the turns of the claim lock: how many, claims and ms per turn,
   and the share of the drain they held the lock (turns run one at a time).
   Ours, per group of up to 100 jobs: the claim as the claim endpoint makes it
   (`ClaimTurns.claim`: the claims waiting together share a turn of the claim lock, one
   transaction on one connection; per claim pick a key, take its jobs, insert the group and
   the attempt rows), then, on the consumer's own connection, the events transaction
   exactly as the events endpoint runs it (`report_events`) for a batch holding every
   job's start and finish: lock the lease and read the jobs, apply the batch (one
   set-based statement), settle the group. PgQueuer: `PgQueuer.run(mode=drain)`
   with a no-op entrypoint; one dequeue statement per batch (marks jobs picked, writes log
   rows), completions flushed per batch (deletes the jobs, writes log rows), heartbeats
   buffered. Batch 10 is its benchmark's default; 100 is shown as well. Both sides commit
   with the cluster's durability (synchronous_commit and fsync as printed). Target: ours
   >= 2x PgQueuer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.database import create_pool
from app.migrations import migrate
from app.store import events as ev
from app.store.claim_turns import ClaimTurns
from app.store.jobs import NewRun, insert_run
from app.store.leases import ClaimRequest
from app.store.workers import register_worker
from bench.harness import (
    Server,
    cpu_by_party,
    fresh_database,
    log_tails,
    percentile_ms,
    postgres_cluster,
    raw_client,
    running_server,
    settle,
    start_workers,
)
from qgjob.types import Outcome, Priority, RunSource, Target

Figures = dict[str, Any]


async def dispatch_latency(server: Server, *, warmup: int, iterations: int) -> Figures:
    claimer, submitter = raw_client(server), raw_client(server)
    await claimer.connect()
    await submitter.connect()
    worker = {"name": "latency", "target_types": ["emulator"], "capacity": 1}
    status, body = await submitter.post("/v1/workers", worker)
    assert status == 201, (status, body)
    claim_path = f"/v1/workers/{json.loads(body)['worker_id']}/claim"

    async def timed_claim() -> tuple[float, int, bytes]:
        answer = await claimer.post(claim_path, {"wait_s": 30})
        return time.perf_counter(), *answer

    from_sent: list[float] = []
    from_201: list[float] = []
    for i in range(warmup + iterations):
        claim = asyncio.create_task(timed_claim())
        await asyncio.sleep(0.03)  # let the server find nothing and park the claim
        job = {"org_id": "bench", "app_version_id": f"lat{i % 4}", "test_path": f"t/{i}.ts"}
        sent = time.perf_counter()
        status, body = await submitter.post("/v1/jobs", job)
        accepted = time.perf_counter()
        assert status == 201, (status, body)
        claimed, status, group_body = await claim
        assert status == 200, (status, group_body)
        group = json.loads(group_body)
        assert group["jobs"][0]["job_id"] == json.loads(body)["job_id"]
        if i >= warmup:
            from_sent.append(claimed - sent)
            from_201.append(claimed - accepted)
        event = {"type": "job_finished", "job_id": group["jobs"][0]["job_id"]}
        event |= {"outcome": "passed", "duration_ms": 1}
        finish = {"lease_token": group["lease_token"], "events": [event]}
        status, body = await submitter.post(f"/v1/groups/{group['group_id']}/events", finish)
        assert status == 200, (status, body)
    await claimer.close()
    await submitter.close()
    return {
        "iterations": iterations,
        "from_201_p50_ms": percentile_ms(from_201, 0.5),
        "from_201_p99_ms": percentile_ms(from_201, 0.99),
        "from_sent_p50_ms": percentile_ms(from_sent, 0.5),
        "from_sent_p99_ms": percentile_ms(from_sent, 0.99),
        "claims_before_201": sum(1 for d in from_201 if d < 0),
    }


async def job_counts(http: httpx.AsyncClient) -> dict[str, int]:
    answer = (await http.get("/v1/stats")).json()
    counts: dict[str, int] = {**answer["jobs"], "active_workers": answer["workers"]["active"]}
    return counts


def _spawn_for(seconds: float) -> int:
    """How many `/bin/sh -c true` this process starts and reaps one after another."""
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subprocess.run(
            ["/bin/sh", "-c", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=True,
        )
        count += 1
    return count


def spawn_ceiling(*, processes: int, seconds: float) -> Figures:
    """Processes started per second by `processes` processes that do nothing else."""
    with ProcessPoolExecutor(processes) as pool:
        counts = list(pool.map(_spawn_for, [seconds] * processes))
    return {"processes": processes, "per_s": round(sum(counts) / seconds, 1)}


async def end_to_end(server: Server, *, workers: int, runs: int, tests: int) -> Figures:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        before = await job_counts(http)
        with tempfile.TemporaryDirectory(prefix="qgjob-bench-workers-") as tmp:
            logs = Path(tmp)
            procs = start_workers(server, count=workers, command="true", log_dir=logs)
            try:
                wanted = before["active_workers"] + workers
                while (await job_counts(http))["active_workers"] < wanted:
                    if any(p.poll() is not None for p in procs):
                        raise SystemExit("a worker exited:\n" + log_tails(logs))
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.5)  # registered; let every worker park its first claim
                figures = await drain_through_workers(server, http, procs, before, runs, tests)
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                codes = [proc.wait(timeout=30) for proc in procs]
            if any(codes):
                print("worker logs:\n" + log_tails(logs), file=sys.stderr)
    return figures | {"worker_exit_codes": codes}


async def drain_through_workers(
    server: Server,
    http: httpx.AsyncClient,
    procs: list[subprocess.Popen[bytes]],
    before: dict[str, int],
    runs: int,
    tests: int,
) -> Figures:
    """Submit `runs` runs at once (a connection each) and wait for every job to end."""
    submitters = [raw_client(server) for _ in range(runs)]
    await asyncio.gather(*(c.connect() for c in submitters))

    async def submit(n: int) -> float:
        paths = [f"tests/suite/spec_{i:04}.spec.ts" for i in range(tests)]
        body = {"org_id": "bench", "app_version_id": f"e2e{n}", "tests": paths}
        status, answer = await submitters[n].post("/v1/runs", body)
        assert status == 201, (status, answer[:200])
        return time.perf_counter()

    cpu_before = cpu_by_party(server, procs)
    start = time.perf_counter()
    accepted = await asyncio.gather(*(submit(n) for n in range(runs)))
    while True:
        counts = await job_counts(http)
        if counts["completed"] + counts["failed"] + counts["cancelled"] >= counts["total"]:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_by_party(server, procs)
    await asyncio.gather(*(c.close() for c in submitters))
    return {
        "jobs": runs * tests,
        "workers": len(procs),
        "seconds": round(elapsed, 3),
        "jobs_per_s": round(runs * tests / elapsed, 1),
        "all_runs_accepted_s": round(max(accepted) - start, 3),
        "failed": counts["failed"] - before["failed"],
        "cpu_s": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after}
        | {"two_cores_x_wall": round(2 * elapsed, 2)},
    }


async def drain_ours(admin_dsn: str, *, jobs: int, consumers: int, warmup: int) -> Figures:
    """Runs of 1,000 tests, one app version each (10 groups of 100); K consumers drain
    `warmup` jobs (not timed), then `jobs` jobs (timed)."""
    dsn = await fresh_database(admin_dsn, "qgjob_bench")
    pool = await create_pool(dsn, size=consumers + 1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        register = partial(
            register_worker, pool, org_id=None, target_types=[Target.EMULATOR], labels={}
        )
        worker_ids = [await register(name=f"s{k}", capacity=1) for k in range(consumers)]
        await enqueue_ours(pool, warmup, prefix="warm")
        await settle(dsn)
        turns = ClaimTurns(pool)
        await asyncio.gather(*(consume_groups(pool, turns, w) for w in worker_ids))
        started = time.perf_counter()
        await enqueue_ours(pool, jobs, prefix="v")
        enqueue_s = time.perf_counter() - started
        await settle(dsn)
        timed = ClaimTurns(pool, on_turn=lambda claims, s: served.append((claims, s)))
        served: list[tuple[int, float]] = []
        started = time.perf_counter()
        groups = await asyncio.gather(*(consume_groups(pool, timed, w) for w in worker_ids))
        elapsed = time.perf_counter() - started
        completed = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'COMPLETED'")
    finally:
        await pool.close()
    assert completed == warmup + jobs, (completed, warmup, jobs)
    turn_s = sum(s for _, s in served)
    return {"jobs_per_s": round(jobs / elapsed, 1), "seconds": round(elapsed, 3)} | {
        "enqueue_s": round(enqueue_s, 3),
        "groups": sum(groups),
        # The serial part: turns run one at a time (docs/performance.md, fifth pass).
        "turns": len(served),
        "claims_per_turn": round(sum(c for c, _ in served) / len(served), 2),
        "turn_ms": round(1000 * turn_s / len(served), 1),
        "turn_share": round(turn_s / elapsed, 2),
    }


async def enqueue_ours(pool: asyncpg.Pool, jobs: int, *, prefix: str) -> None:
    for first in range(0, jobs, 1000):
        tests = [f"tests/spec_{i:04}.spec.ts" for i in range(min(1000, jobs - first))]
        new = NewRun(
            org_id="bench",
            app_version_id=f"{prefix}{first}",
            tests=tests,
            targets=[Target.EMULATOR],
            priority=Priority.NORMAL,
            source=RunSource.API,
            max_attempts=3,
        )
        await insert_run(pool, new)


async def consume_groups(pool: asyncpg.Pool, turns: ClaimTurns, worker_id: uuid.UUID) -> int:
    """Claim groups as the claim endpoint does, and report each job started and passed as
    the events endpoint does (a transaction), until there is nothing left to claim."""
    wanted = ClaimRequest(worker_id=worker_id, targets=[Target.EMULATOR], lease_ttl_s=30.0)
    groups = 0
    async with pool.acquire() as conn:
        while True:
            group = await turns.claim(wanted)
            if group is None:
                return groups
            group_id = uuid.UUID(group["group_id"])
            job_ids = [uuid.UUID(job["job_id"]) for job in group["jobs"]]
            async with conn.transaction():
                reported = await ev.report_events(
                    conn,
                    group_id=group_id,
                    lease_token=group["lease_token"],
                    org_scope=None,
                    started=job_ids,
                    finished=[ev.Finished(j, Outcome.PASSED, 1, None, {}, None) for j in job_ids],
                    backoff_s=10,
                )
            assert reported.applied.applied == len(job_ids), reported
            assert reported.group_finished, group_id
            groups += 1


async def drain_pgqueuer(
    admin_dsn: str, *, jobs: int, consumers: int, batch_size: int, warmup: int
) -> Figures:
    """PgQueuer's own drain: K PgQueuer instances (a connection each), a no-op entrypoint;
    `warmup` jobs (not timed), then `jobs` jobs (timed)."""
    from pgqueuer import AsyncpgDriver, PgQueuer, Queries
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    dsn = await fresh_database(admin_dsn, "pgq_bench")
    ran = 0
    async with AsyncExitStack() as stack:
        setup = await asyncpg.connect(dsn)
        stack.push_async_callback(setup.close)
        queries = Queries(AsyncpgDriver(setup))
        await queries.install()
        conns = []
        for _ in range(consumers):
            conns.append(await asyncpg.connect(dsn))
            stack.push_async_callback(conns[-1].close)

        async def enqueue(count: int) -> None:
            for first in range(0, count, 1000):  # batches of 1,000, like our runs
                size = min(1000, count - first)
                await queries.enqueue(["bench"] * size, [b""] * size, [0] * size)

        async def drain() -> None:
            pgqs = []
            for conn in conns:
                pgq = PgQueuer(AsyncpgDriver(conn))

                @pgq.entrypoint("bench")
                async def bench(job: Job) -> None:
                    nonlocal ran
                    ran += 1

                pgqs.append(pgq)
            runs = (p.run(batch_size=batch_size, mode=QueueExecutionMode.drain) for p in pgqs)
            await asyncio.gather(*runs)

        await enqueue(warmup)
        await settle(dsn)
        await drain()
        started = time.perf_counter()
        await enqueue(jobs)
        enqueue_s = time.perf_counter() - started
        await settle(dsn)
        started = time.perf_counter()
        await drain()
        elapsed = time.perf_counter() - started
        left = await setup.fetchval("SELECT count(*) FROM pgqueuer")
        logged = await setup.fetchval("SELECT count(*) FROM pgqueuer_log WHERE status='successful'")
    assert ran == warmup + jobs == logged, (ran, warmup, jobs, logged)
    assert left == 0, left
    return {"jobs_per_s": round(jobs / elapsed, 1), "seconds": round(elapsed, 3)} | {
        "enqueue_s": round(enqueue_s, 3)
    }


async def store_vs_pgqueuer(admin_dsn: str, *, jobs: int, consumers: int) -> Figures:
    conn = await asyncpg.connect(admin_dsn)
    names = ("server_version", "shared_buffers", "synchronous_commit", "fsync")
    settings = {name: await conn.fetchval(f"SHOW {name}") for name in names}
    await conn.close()
    figures: Figures = {"jobs": jobs, "consumers": consumers, "postgres": settings}
    figures["pgqueuer_version"] = metadata.version("pgqueuer")
    # PgQueuer both before and after ours, so that a drift in machine load shows.
    sides = {"pgqueuer_batch_10": 10, "ours": 0, "pgqueuer_batch_100": 100}
    warmup = jobs // 2
    figures["warmup_jobs"] = warmup
    for side, batch in sides.items():
        figures[side] = await (
            drain_pgqueuer(
                admin_dsn, jobs=jobs, consumers=consumers, batch_size=batch, warmup=warmup
            )
            if batch
            else drain_ours(admin_dsn, jobs=jobs, consumers=consumers, warmup=warmup)
        )
    for batch in (10, 100):
        theirs = figures[f"pgqueuer_batch_{batch}"]["jobs_per_s"]
        figures[f"ratio_vs_batch_{batch}"] = round(figures["ours"]["jobs_per_s"] / theirs, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, few iterations (< 60 s)")
    parser.add_argument("--parts", default="latency,e2e,store", help="comma-separated parts")
    parser.add_argument(
        "--consumers", type=int, default=4, help="store part: consumers on each side (4)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    figures: Figures = {"loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    if parts & {"latency", "e2e"}:
        with running_server() as server:
            if "latency" in parts:
                iterations = (5, 40) if args.quick else (20, 200)
                figures["latency"] = asyncio.run(
                    dispatch_latency(server, warmup=iterations[0], iterations=iterations[1])
                )
            if "e2e" in parts:
                figures["spawn_ceiling"] = spawn_ceiling(processes=4, seconds=3.0)
                tests = 250 if args.quick else 1000
                figures["e2e"] = asyncio.run(end_to_end(server, workers=4, runs=4, tests=tests))
    if "store" in parts:
        with postgres_cluster() as dsn:
            jobs = 4000 if args.quick else 20000
            figures["store"] = asyncio.run(
                store_vs_pgqueuer(dsn, jobs=jobs, consumers=args.consumers)
            )
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(figures) if args.json else "\n".join(render(figures)))


def render(f: Figures) -> list[str]:
    lines = [f"load average before: {' '.join(f['loadavg_before'])}"]
    if lat := f.get("latency"):
        lines += [
            f"dispatch latency to an idle long-polling worker ({lat['iterations']} submits):",
            f"  from the submit's 201 arriving to the claim's 200 arriving: p50 "
            f"{lat['from_201_p50_ms']} ms, p99 {lat['from_201_p99_ms']} ms  (targets <= 10, <= 50)",
            f"  from the submit being sent to the claim's 200 arriving:     p50 "
            f"{lat['from_sent_p50_ms']} ms, p99 {lat['from_sent_p99_ms']} ms",
            f"  claims answered before the submit's 201 arrived: {lat['claims_before_201']}",
        ]
    if e2e := f.get("e2e"):
        cpu = e2e["cpu_s"]
        lines += [
            f"end to end, {e2e['workers']} `qgjob worker` processes running `true`, HTTP included:",
            f"  {e2e['jobs']} jobs in {e2e['seconds']} s = {e2e['jobs_per_s']} jobs/s  (target "
            f">= 1500); runs all accepted after {e2e['all_runs_accepted_s']} s; "
            f"failed {e2e['failed']}; worker exit codes {e2e['worker_exit_codes']}",
            f"  ceiling with a process per job here: {f['spawn_ceiling']['processes']} processes "
            f"that only start `sh -c true` reach {f['spawn_ceiling']['per_s']}/s",
            f"  CPU s: server {cpu['server']}, workers with their shells {cpu['workers']}, "
            f"postgres {cpu['postgres']}; 2 cores x wall = {cpu['two_cores_x_wall']}",
            "  CPU ms per job: "
            + ", ".join(
                f"{party} {1000 * cpu[party] / e2e['jobs']:.2f}"
                for party in ("server", "workers", "postgres")
            ),
        ]
    if st := f.get("store"):
        pg = st["postgres"]
        lines.append(
            f"store layer vs PgQueuer {st['pgqueuer_version']}: {st['jobs']} jobs, "
            f"{st['consumers']} consumers, PostgreSQL {pg['server_version']} ("
            + ", ".join(f"{k} {v}" for k, v in pg.items() if k != "server_version")
            + ")"
        )
        lines += [
            "  each side claims and finishes every job, one commit per step, same durability:",
            "    ours, per group of <= 100 jobs: a claim in a turn of the claim lock shared by the",
            "      claims waiting for it (lock, touch the worker, pick a key, take its jobs + open",
            "      the group and attempt rows + mark the worker busy; the key's next first",
            "      look from the listing)",
            "      and an events transaction (lock the lease, read the jobs, record attempts +",
            "      move jobs, cancelled jobs, finish the group and free the worker)",
            "    PgQueuer, per batch: one dequeue statement (jobs marked picked, log rows), then",
            "      the completions flushed (jobs deleted, log rows written)",
        ]
        for side in ("ours", "pgqueuer_batch_10", "pgqueuer_batch_100"):
            got = st[side]
            lines.append(
                f"  {side:<20} {got['jobs_per_s']:>9} jobs/s  (drain {got['seconds']} s; "
                f"enqueue, not timed, {got['enqueue_s']} s)"
            )
        ours = st["ours"]
        lines.append(
            f"  ours: {ours['turns']} turns of the claim lock, {ours['claims_per_turn']} claims "
            f"and {ours['turn_ms']} ms each; turns held the lock {ours['turn_share']:.0%} of "
            "the drain"
        )
        lines.append(
            f"  ours / PgQueuer: {st['ratio_vs_batch_10']}x (batch 10), "
            f"{st['ratio_vs_batch_100']}x (batch 100)  (target >= 2)"
        )
    return [*lines, f"load average after: {' '.join(f['loadavg_after'])}"]


if __name__ == "__main__":
    main()
