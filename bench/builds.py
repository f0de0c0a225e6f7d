"""Build upload and download through a real `qgjob server`, and the server's memory meanwhile.

    python bench/builds.py [--mib 512] [--json]

Uploads a file of N MiB with `QgjobClient.upload_build` (the CLI's path: sha256 first, then
a streamed body), then fetches it with a worker's `BuildCache` from the service's download
route, then fetches it again (a cache hit). Prints MiB/s for each and the server process's
peak RSS before and after: streaming means the peak does not grow with the file's size.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RssSampler, rss_kib, running_server
from dispatch.buildcache import BuildCache
from qgjob.client import QgjobClient
from qgjob.worker_api import ClaimedBuild

CHUNK = 1024 * 1024


def write_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        for i in range(mib):
            chunk = i.to_bytes(8, "big") + block[8:]  # distinct blocks, cheap to make
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


async def measure(url: str, token: str, pid: int, mib: int, tmp: Path) -> dict[str, float]:
    source = tmp / "bench-build.apk"
    write_file(source, mib)
    before_kib = rss_kib(pid)
    async with QgjobClient(url, token, timeout_s=60) as client:
        started = time.perf_counter()
        with RssSampler(pid) as sampler:
            digest = await asyncio.to_thread(_sha256, source)
            hashed = time.perf_counter()
            build = await client.upload_build(
                org_id="bench", app_version_id="v1", path=source, sha256=digest
            )
        uploaded = time.perf_counter()
        claimed = ClaimedBuild(
            app_version_id="v1",
            sha256=build.sha256,
            size=build.size,
            filename=build.filename,
            platform=str(build.platform),
            download_path=build.download_path,
        )
        cache = BuildCache(tmp / "cache", 10 * mib * CHUNK, api=client)
        with RssSampler(pid) as download_sampler:
            t0 = time.perf_counter()
            await cache.fetch(claimed)
            fetched = time.perf_counter()
        await cache.fetch(claimed)
        hit = time.perf_counter()
        await cache.close()
    return {
        "mib": mib,
        "sha256_mib_s": mib / (hashed - started),
        "upload_mib_s": mib / (uploaded - hashed),
        "download_mib_s": mib / (fetched - t0),
        "cache_hit_ms": (hit - fetched) * 1000,
        "server_rss_before_mib": before_kib / 1024,
        "server_rss_peak_upload_mib": sampler.peak_kib / 1024,
        "server_rss_peak_download_mib": download_sampler.peak_kib / 1024,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    extra = {"QGJOB_MAX_BUILD_BYTES": str((args.mib + 1) * CHUNK)}
    with running_server(extra_env=extra) as server, tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(measure(server.url, server.token, server.pid, args.mib, Path(tmp)))
    if args.json:
        print(json.dumps(figures))
        return
    print(f"build of {args.mib} MiB")
    print(f"  sha256 on the client      {figures['sha256_mib_s']:8.1f} MiB/s")
    print(f"  upload (streamed)         {figures['upload_mib_s']:8.1f} MiB/s")
    print(f"  worker download + verify  {figures['download_mib_s']:8.1f} MiB/s")
    print(f"  worker cache hit          {figures['cache_hit_ms']:8.1f} ms")
    print(
        f"  server RSS: {figures['server_rss_before_mib']:.0f} MiB before, peak "
        f"{figures['server_rss_peak_upload_mib']:.0f} MiB during upload, "
        f"{figures['server_rss_peak_download_mib']:.0f} MiB during download"
    )


if __name__ == "__main__":
    main()
