"""Web page latency against a real `qgjob server`: the run page of a large run, its live
fragment (200 and 304), and the runs page.

    python bench/web.py [--jobs 1000] [--requests 30] [--json]

Submits one run of `--jobs` specs, signs in through the login form, then times each page
`--requests` times, one request at a time (what one browser tab does), and prints p50/p95;
`GET /v1/runs/{id}` (the same store read, as JSON) is timed too, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import percentile_ms, running_server


async def timed(client: httpx.AsyncClient, path: str, n: int, **kwargs: object) -> list[float]:
    times: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        answer = await client.get(path, **kwargs)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        assert answer.status_code in (200, 304), (path, answer.status_code)
    return times


async def measure(url: str, token: str, *, jobs: int, requests: int) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        run = await client.post(
            "/v1/runs",
            headers=headers,
            json={
                "org_id": "bench",
                "app_version_id": "v1",
                "tests": [f"tests/area{i % 20}/spec_{i}.spec.ts" for i in range(jobs)],
            },
        )
        run.raise_for_status()
        run_id = run.json()["run_id"]
        login = await client.post("/ui/login", data={"token": token})
        assert login.status_code == 303, login.text
        page = f"/ui/runs/{run_id}"
        await client.get(page)  # warm up
        figures: dict[str, object] = {"jobs": jobs, "requests": requests}
        for name, path, extra in (
            ("run_page", page, {}),
            ("run_fragment_200", page + "?fragment=live", {}),
            ("runs_page", "/ui", {}),
        ):
            times = await timed(client, path, requests, **extra)
            figures[name] = {
                "p50_ms": round(percentile_ms(times, 0.5), 1),
                "p95_ms": round(percentile_ms(times, 0.95), 1),
            }
        times = await timed(client, f"/v1/runs/{run_id}", requests, headers=headers)
        figures["api_run_json"] = {
            "p50_ms": round(percentile_ms(times, 0.5), 1),
            "p95_ms": round(percentile_ms(times, 0.95), 1),
        }
        first = await client.get(page + "?fragment=live")
        times = await timed(
            client,
            page + "?fragment=live",
            requests,
            headers={"If-None-Match": first.headers["etag"]},
        )
        figures["run_fragment_304"] = {
            "p50_ms": round(percentile_ms(times, 0.5), 1),
            "p95_ms": round(percentile_ms(times, 0.95), 1),
        }
        figures["run_page_kib"] = round(len(first.content) / 1024, 1)
        figures["run_page_wire_kib"] = round(first.num_bytes_downloaded / 1024, 1)
        figures["run_page_encoding"] = first.headers.get("content-encoding", "identity")
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with running_server() as server:
        figures = asyncio.run(
            measure(server.url, server.token, jobs=args.jobs, requests=args.requests)
        )
    if args.json:
        print(json.dumps(figures))
        return
    print(f"run of {figures['jobs']} jobs, {figures['requests']} sequential requests each")
    names = ("run_page", "run_fragment_200", "run_fragment_304", "runs_page", "api_run_json")
    for name in names:
        value = figures[name]
        assert isinstance(value, dict)
        print(f"  {name:<18} p50 {value['p50_ms']:>7} ms   p95 {value['p95_ms']:>7} ms")
    print(
        f"  run fragment size  {figures['run_page_kib']} KiB, "
        f"{figures['run_page_wire_kib']} KiB on the wire ({figures['run_page_encoding']})"
    )


if __name__ == "__main__":
    main()
