"""What a Prometheus scrape of `GET /metrics` costs as the job history grows.

    python bench/metrics.py [--history 100000] [--pending 2000] [--scrapes 30] [--json]

Against a real `qgjob server` (embedded PostgreSQL), prints the median and p95 time of a
scrape with an empty database, then again after `--history` finished (cancelled) jobs and
`--pending` queued ones across 4 orgs × 2 targets. The gauges read only live rows through
partial indexes, so the second figure should stay near the first whatever the history.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import running_server

RUN_SIZE = 5000


def scrape_times(client: httpx.Client, scrapes: int) -> list[float]:
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        answer = client.get("/metrics")
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    return times


def submit(client: httpx.Client, *, org: str, target: str, tests: int) -> str:
    answer = client.post(
        "/v1/runs",
        json={
            "org_id": org,
            "app_version_id": "bench",
            "tests": [f"tests/t{i}.spec.ts" for i in range(tests)],
            "targets": [target],
        },
    )
    answer.raise_for_status()
    run_id: str = answer.json()["run_id"]
    return run_id


def figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=2_000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    keys = [(f"org{i}", target) for i in range(4) for target in ("emulator", "browserstack")]
    with running_server() as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            scrape_times(client, 3)  # warm up
            empty = figures(scrape_times(client, args.scrapes))
            done = 0
            while done < args.history:
                org, target = keys[done // RUN_SIZE % len(keys)]
                run_id = submit(
                    client, org=org, target=target, tests=min(RUN_SIZE, args.history - done)
                )
                client.post(f"/v1/runs/{run_id}/cancel").raise_for_status()
                done += RUN_SIZE
            per_key = max(1, args.pending // len(keys))
            for org, target in keys:
                submit(client, org=org, target=target, tests=per_key)
            full = figures(scrape_times(client, args.scrapes))
            depth = [
                line
                for line in client.get("/metrics").text.splitlines()
                if line.startswith("qgjob_queue_depth{")
            ]
    result = {
        "empty": empty,
        "after": full,
        "history_jobs": args.history,
        "pending_jobs": per_key * len(keys),
        "queue_depth_series": len(depth),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"/metrics, empty database: median {empty['median_ms']} ms, p95 {empty['p95_ms']} ms")
    print(
        f"/metrics, {args.history:,} finished + {result['pending_jobs']:,} pending jobs: "
        f"median {full['median_ms']} ms, p95 {full['p95_ms']} ms ({len(depth)} queue series)"
    )


if __name__ == "__main__":
    main()
