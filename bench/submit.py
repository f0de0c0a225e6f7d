"""Submit throughput, large-run latency and server memory, against a real `qgjob server`.

    python bench/submit.py [--seconds 10] [--clients 16] [--json]

Prints single-job submits/s with N concurrent keep-alive clients, the time to accept a
1,000-test run (median of several), and the server process's peak RSS.
Targets (issue 2): >= 1,000 submits/s; <= 300 ms for the 1,000-test run; RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RawClient, RssSampler, running_server


async def submit_load(
    url: str, token: str, *, clients: int, seconds: float
) -> tuple[int, list[float]]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def one_client(n: int) -> int:
        nonlocal errors
        client = RawClient(parts.hostname or "", parts.port or 0, token)
        await client.connect()
        done = i = 0
        try:
            while time.perf_counter() < deadline:
                body = {
                    "org_id": "bench",
                    "app_version_id": f"v{n % 4}",
                    "test_path": f"tests/c{n}/spec_{i}.spec.ts",
                }
                start = time.perf_counter()
                status, _ = await client.post("/v1/jobs", body)
                latencies.append(time.perf_counter() - start)
                if status == 201:
                    done += 1
                else:
                    errors += 1
                i += 1
        finally:
            await client.close()
        return done

    counts = await asyncio.gather(*(one_client(n) for n in range(clients)))
    if errors:
        print(f"warning: {errors} submits were not answered 201", file=sys.stderr)
    return sum(counts), latencies


async def big_runs(url: str, token: str, *, repeats: int) -> list[float]:
    parts = urlsplit(url)
    client = RawClient(parts.hostname or "", parts.port or 0, token)
    await client.connect()
    timings = []
    try:
        for r in range(repeats):
            body = {
                "org_id": "bench",
                "app_version_id": f"big{r}",
                "tests": [f"tests/suite/spec_{i:04}.spec.ts" for i in range(1000)],
            }
            start = time.perf_counter()
            status, answer = await client.post("/v1/runs", body)
            timings.append(time.perf_counter() - start)
            if status != 201 or len(json.loads(answer)["jobs"]) != 1000:
                raise SystemExit(f"1,000-test run was not accepted: {status} {answer[:200]!r}")
    finally:
        await client.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=7, help="1,000-test runs to time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with running_server() as server, RssSampler(server.pid) as rss:
        asyncio.run(submit_load(server.url, server.token, clients=4, seconds=1))  # warm-up
        submitted, latencies = asyncio.run(
            submit_load(server.url, server.token, clients=args.clients, seconds=args.seconds)
        )
        runs = asyncio.run(big_runs(server.url, server.token, repeats=args.runs))
    latencies.sort()
    figures = {
        "submits_per_s": round(submitted / args.seconds, 1),
        "clients": args.clients,
        "submit_p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "submit_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
        "run_1000_median_ms": round(1000 * statistics.median(runs), 1),
        "run_1000_max_ms": round(1000 * max(runs), 1),
        "server_peak_rss_mb": round(rss.peak_kib / 1024, 1),
    }
    if args.json:
        print(json.dumps(figures))
        return
    f = figures
    rows = [
        (f"single-job submits/s ({args.clients} clients)", f["submits_per_s"], "target >= 1000"),
        ("submit latency p50 / p99 ms", f"{f['submit_p50_ms']} / {f['submit_p99_ms']}", ""),
        (
            "1,000-test run accepted in, median ms",
            f["run_1000_median_ms"],
            f"target <= 300; max {f['run_1000_max_ms']}",
        ),
        ("server peak RSS MB", f["server_peak_rss_mb"], "target <= 150"),
    ]
    for label, value, note in rows:
        print(f"{label:<40} {value!s:>12}  {note}")


if __name__ == "__main__":
    main()
