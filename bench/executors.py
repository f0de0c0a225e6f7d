"""What the adb executor costs per group and per job, beyond AppWright itself.

Runs the real `AdbExecutor` on one group of N specs against the stand-ins (fake adb, fake
AppWright as real processes), and prints:

- prepare: device choice, boot check and `adb install`, once per group (ms);
- per job: the executor's wall time (host lock, the AppWright process, report reading,
  process-tree cleanup), p50 / p95.

    .venv/bin/python bench/executors.py [--specs 20] [--json]

The figures depend on the machine: the fake AppWright is a Python process whose start-up
dominates a job; against a real device the test itself dominates. Quote the load average
(printed) with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.executors.adb import AdbExecutor, AdbOptions
from dispatch.executors.appwright import AppwrightOptions
from dispatch.executors.base import JobSpec
from qgjob.types import Target
from tests.standins.fake_adb import FakeDevice, write_state
from tests.support.executors import ADB, NPX, DirectoryBuilds, group, spec, workspace


async def measure(specs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="qgjob-bench-") as scratch:
        tmp = Path(scratch)
        names = {f"s{n:03}.spec.ts": spec() for n in range(specs)}
        root = workspace(tmp / "app", names)
        state, log = tmp / "adb.json", tmp / "npx.jsonl"
        write_state(state, [FakeDevice("emulator-5554")])
        builds = DirectoryBuilds(tmp / "builds")
        build = builds.add("bench", b"PK\x03\x04 bench apk")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_")}
        env |= {"QGJOB_FAKE_ADB_STATE": str(state), "QGJOB_FAKE_NPX_LOG": str(log)}
        executor = AdbExecutor(
            options=AdbOptions(target=Target.EMULATOR, adb=ADB),
            appwright=AppwrightOptions(project="android-emulator", workspace=root, npx=NPX),
            builds=builds,
            lock_dir=tmp / "locks",
            env=env,
        )
        claimed = group(*(f"tests/{n}" for n in names), target=Target.EMULATOR, build=build)
        started = time.monotonic()
        await executor.prepare(claimed)
        prepare_ms = (time.monotonic() - started) * 1000
        walls = []
        for job in claimed.jobs:
            began = time.monotonic()
            await executor.run(JobSpec.of(claimed, job), cancel=asyncio.Event())
            walls.append((time.monotonic() - began) * 1000)
        await executor.close()
    walls.sort()
    return {
        "specs": specs,
        "prepare_ms": round(prepare_ms, 1),
        "job_p50_ms": round(statistics.median(walls), 1),
        "job_p95_ms": round(walls[int(0.95 * (len(walls) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.specs))
    figures["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
    if args.json:
        print(json.dumps(figures))
        return
    print(f"adb executor, one group of {figures['specs']} specs (fake adb + fake AppWright)")
    print(f"  prepare (device, boot check, install)   {figures['prepare_ms']:8.1f} ms")
    print(
        f"  per job (AppWright run, report read)    p50 {figures['job_p50_ms']:.1f} ms"
        f"   p95 {figures['job_p95_ms']:.1f} ms"
    )
    print(f"  load average (1 min)                    {figures['loadavg']:8.2f}")


if __name__ == "__main__":
    main()
