"""GitHub webhook figures against a real `qgjob server` and the fake GitHub on 127.0.0.1.

    python bench/webhook.py [--deliveries 1000] [--concurrency 50] [--specs 1000] [--json]

(1) Ack latency: `--concurrency` clients post signed `push` deliveries (the recorded
    with-new-branch payload, each with its own delivery id) as fast as the server answers;
    p50/p99 of the time to the 202. The inbox processes them meanwhile, as in production.
(2) Push → queued: a push of a commit holding `--specs` spec files; the time from posting
    the delivery to its check run existing as `queued` on the fake GitHub (signature check,
    inbox, installation lookup, qgjob.toml and tree reads, the run insert, the outbox write).
Targets (issue 6): ack p99 <= 100 ms; push → queued <= 2 s.
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RawClient, running_server
from github_app.signatures import sign
from tests.standins.github import FakeGitHub, generate_app_key, running_fake_github

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "github"
PUSH = (
    SHARED
    / "payloads"
    / "payload-examples"
    / "api.github.com"
    / "push"
    / "with-new-branch.payload.json"
)
SECRET = "bench-secret"
APP_ID = 4242
REPO = "Codertocat/Hello-World"


def _headers(raw: bytes, delivery_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": sign(raw, secret=SECRET),
    }


async def ack_latencies(url: str, *, deliveries: int, concurrency: int, sha: str) -> list[float]:
    push = json.loads(PUSH.read_text())
    push["after"] = sha
    raw = json.dumps(push).encode()  # what RawClient sends for `push`, byte for byte
    parts = urlsplit(url)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(deliveries):
        queue.put_nowait(n)

    async def one_client() -> None:
        client = RawClient(parts.hostname or "", parts.port or 0, token="")
        await client.connect()
        try:
            while not queue.empty():
                n = queue.get_nowait()
                headers = _headers(raw, f"bench-{sha[:7]}-{n}")
                del headers["Content-Type"]
                start = time.perf_counter()
                status, answer = await client.post("/github/webhooks", push, headers)
                latencies.append(time.perf_counter() - start)
                if status != 202:
                    raise SystemExit(f"delivery answered {status}: {answer[:300]!r}")
        finally:
            await client.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies


async def push_to_queued(
    url: str, state: FakeGitHub, *, sha: str, branch: str, timeout_s: float = 120
) -> float:
    push = json.loads(PUSH.read_text())
    push["after"] = sha
    push["ref"] = f"refs/heads/{branch}"
    raw = json.dumps(push).encode()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = time.perf_counter()
        answer = await client.post(
            "/github/webhooks", content=raw, headers=_headers(raw, f"push-{sha}")
        )
        assert answer.status_code == 202, answer.text
        while time.perf_counter() - start < timeout_s:
            runs = state.check_runs_on(sha)
            if runs and all(r.status == "queued" for r in runs):
                return time.perf_counter() - start
            await asyncio.sleep(0.005)
    raise SystemExit("the check run did not appear in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    private, public = generate_app_key()
    state = FakeGitHub(
        app_id=APP_ID, public_key=public, openapi_path=SHARED / "openapi-subset.json"
    )
    repo = state.add_repo(REPO)
    small = repo.commit({"tests/a.spec.ts": "test()\n"}, branch="master")
    sentinel = repo.commit({"tests/b.spec.ts": "test()\n"}, branch="sentinel")
    big = repo.commit(
        {f"tests/area{n % 20}/spec_{n:04d}.spec.ts": f"test({n})\n" for n in range(args.specs)},
        branch="big",
    )
    state.add_installation(1, account="Codertocat", repositories=[REPO])
    with running_fake_github(state) as api_url:
        env = {
            "QGJOB_GITHUB_APP_ID": str(APP_ID),
            "QGJOB_GITHUB_PRIVATE_KEY": private.decode(),
            "QGJOB_GITHUB_WEBHOOK_SECRET": SECRET,
            "QGJOB_GITHUB_API_URL": api_url,
            "QGJOB_PUBLIC_URL": "https://qgjob.bench.example",
        }
        with running_server(extra_env=env) as server:
            # Warm up: the installation lookup, the token, the connection pools.
            asyncio.run(ack_latencies(server.url, deliveries=20, concurrency=4, sha=small))
            lat = asyncio.run(ack_latencies(
                server.url, deliveries=args.deliveries, concurrency=args.concurrency, sha=small
            ))  # fmt: skip
            # The inbox works through the burst in order; a push behind it measures the backlog.
            drain_s = asyncio.run(
                push_to_queued(server.url, state, sha=sentinel, branch="sentinel")
            )
            sequential = asyncio.run(
                ack_latencies(server.url, deliveries=200, concurrency=1, sha=small)
            )
            time.sleep(2)  # let the inbox settle again
            queued_s = asyncio.run(push_to_queued(server.url, state, sha=big, branch="big"))
    lat_ms = sorted(x * 1000 for x in lat)
    figures = {
        "deliveries": args.deliveries,
        "concurrency": args.concurrency,
        "ack_p50_ms": round(statistics.median(lat_ms), 1),
        "ack_p99_ms": round(lat_ms[int(len(lat_ms) * 0.99) - 1], 1),
        "ack_sequential_p50_ms": round(statistics.median(sequential) * 1000, 1),
        "backlog_drained_s": round(drain_s, 2),
        "specs": args.specs,
        "push_to_queued_s": round(queued_s, 3),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"webhook ack, {args.deliveries} deliveries from {args.concurrency} clients: "
          f"p50 {figures['ack_p50_ms']} ms, p99 {figures['ack_p99_ms']} ms "
          "(target p99 <= 100 ms)")  # fmt: skip
    print(f"  one client at a time: p50 {figures['ack_sequential_p50_ms']} ms; the burst's "
          f"backlog was processed {figures['backlog_drained_s']} s after it ended")  # fmt: skip
    print(f"push with {args.specs} specs -> check run queued on GitHub: "
          f"{figures['push_to_queued_s']} s (target <= 2 s)")  # fmt: skip
    print(f"load average: {' '.join(figures['loadavg'])}")


if __name__ == "__main__":
    main()
