"""The BrowserStack executor against the fake BrowserStack (HTTP on 127.0.0.1), fake npx
(real processes) and the real service, which keeps each build's bs:// url."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatch.browserstack_api import BrowserStackApi, Credentials, UploadRateLimiter
from dispatch.errors import JobError
from dispatch.executors.appwright import AppwrightOptions
from dispatch.executors.base import JobSpec
from dispatch.executors.browserstack import BrowserStackExecutor, custom_id_for
from qgjob.browserstack_apps import BrowserStackApps
from qgjob.settings import Secret
from qgjob.types import Outcome, Target
from qgjob.worker_api import ClaimedGroup, WorkerApi
from tests.conftest import Api
from tests.standins.browserstack import (
    browserstack_state,
    create_browserstack_app,
    serve_in_thread,
)
from tests.standins.browserstack_state import BrowserStackState
from tests.support.executors import NPX, DirectoryBuilds, group, spec, workspace

pytestmark = pytest.mark.timeout(120)
USER, KEY = "qualgent-ci", "s3cret-key"


@dataclass
class Cloud:
    url: str
    state: BrowserStackState


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    app = create_browserstack_app(username=USER, access_key=KEY, parallel=5)
    with serve_in_thread(app, name="fake BrowserStack") as url:
        yield Cloud(url=url, state=browserstack_state(app))


@dataclass
class Bench:
    api: WorkerApi
    cloud: Cloud
    root: Path
    builds: DirectoryBuilds
    tmp: Path
    executors: list[BrowserStackExecutor]

    def executor(self, *, key: str = KEY) -> BrowserStackExecutor:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_") and k != "CI"}
        executor = BrowserStackExecutor(
            api=BrowserStackApi(
                base_url=self.cloud.url,
                credentials=Credentials(username=USER, access_key=Secret(key)),
            ),
            apps=BrowserStackApps(self.api),
            appwright=AppwrightOptions(
                project="android-browserstack", workspace=self.root, npx=NPX, job_timeout_s=60
            ),
            builds=self.builds,
            lock_dir=self.tmp / "locks",
            env=env,
        )
        self.executors.append(executor)
        return executor

    async def run_group(self, executor: BrowserStackExecutor, claimed: ClaimedGroup) -> list:  # type: ignore[type-arg]
        await executor.prepare(claimed)
        results = []
        for job in claimed.jobs:
            results.append(await executor.run(JobSpec.of(claimed, job), cancel=asyncio.Event()))
        return results


SPECS = {f"spec{n:02}.spec.ts": spec() for n in range(20)}
SPECS["slow-a.spec.ts"] = spec("sleep=0.5")
SPECS["slow-b.spec.ts"] = spec("sleep=0.5")
SPECS["failing.spec.ts"] = spec("outcome=fail")


@pytest.fixture
async def bench(api: Api, cloud: Cloud, tmp_path: Path) -> AsyncIterator[Bench]:
    token = await api.token("acme", "worker")
    async with WorkerApi(api.url, token) as client:
        crew = Bench(
            api=client,
            cloud=cloud,
            root=workspace(tmp_path / "app", SPECS),
            builds=DirectoryBuilds(tmp_path / "builds"),
            tmp=tmp_path,
            executors=[],
        )
        yield crew
        for executor in crew.executors:
            await executor.close()


async def test_a_group_of_20_specs_uploads_once_and_attaches_session_videos(bench: Bench) -> None:
    build = bench.builds.add("release-7", b"PK\x03\x04 shoply apk")
    tests = [f"tests/spec{n:02}.spec.ts" for n in range(20)] + ["tests/failing.spec.ts"]
    claimed = group(*tests, target=Target.BROWSERSTACK, build=build, app_version_id="release-7")
    results = await bench.run_group(bench.executor(), claimed)
    state = bench.cloud.state
    assert [a.custom_id for a in state.uploads()] == [custom_id_for("release-7")]
    assert [r.outcome for r in results] == [Outcome.PASSED] * 20 + [Outcome.FAILED]
    sessions = state.sessions
    for result in results:
        session_id = result.artifacts["browserstack_session"]
        assert session_id in sessions
        assert result.artifacts["video_url"].startswith(bench.cloud.url)
        assert session_id in result.artifacts["public_url"]
    assert sessions[results[-1].artifacts["browserstack_session"]].status == "failed"


async def test_two_groups_of_one_build_on_two_workers_upload_it_once(bench: Bench) -> None:
    build = bench.builds.add("release-8", b"PK\x03\x04 another apk")
    first = group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    second = group("tests/spec01.spec.ts", target=Target.BROWSERSTACK, build=build)
    a, b = await asyncio.gather(
        bench.run_group(bench.executor(), first), bench.run_group(bench.executor(), second)
    )
    assert [r.outcome for r in a + b] == [Outcome.PASSED, Outcome.PASSED]
    assert len(bench.cloud.state.uploads()) == 1
    urls = {s.app.app_url for s in bench.cloud.state.sessions.values()}
    assert urls == {bench.cloud.state.uploads()[0].app_url}


async def test_an_expired_upload_is_uploaded_again(bench: Bench) -> None:
    build = bench.builds.add("release-9", b"PK\x03\x04 apk nine")
    executor = bench.executor()
    old = await executor.prepare(
        group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    )
    again = await executor.prepare(
        group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    )
    assert again.build == old.build and len(bench.cloud.state.uploads()) == 1
    assert old.build is not None
    bench.cloud.state.expire(old.build)
    claimed = group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    results = await bench.run_group(bench.executor(), claimed)
    assert results[0].outcome is Outcome.PASSED
    uploads = bench.cloud.state.uploads()
    assert len(uploads) == 2 and uploads[1].app_url != old.build


async def test_the_plan_limit_holds_with_three_concurrent_groups(bench: Bench) -> None:
    bench.cloud.state.set_plan(parallel=2)
    build = bench.builds.add("release-10", b"PK\x03\x04 apk ten")
    groups = [
        group(
            "tests/slow-a.spec.ts", "tests/slow-b.spec.ts", target=Target.BROWSERSTACK, build=build
        )
        for _ in range(3)
    ]
    runs = await asyncio.gather(*(bench.run_group(bench.executor(), g) for g in groups))
    assert [r.outcome for rs in runs for r in rs] == [Outcome.PASSED] * 6
    state = bench.cloud.state
    assert state.max_running_seen == 2
    assert state.rejected_sessions == 0
    assert len(state.sessions) == 6


async def test_a_run_waits_while_the_plan_has_no_free_slot(bench: Bench) -> None:
    state = bench.cloud.state
    state.set_plan(parallel=2, other_running=2)  # colleagues use both parallels
    build = bench.builds.add("release-11", b"PK\x03\x04 apk eleven")
    claimed = group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    running = asyncio.create_task(bench.run_group(bench.executor(), claimed))
    deadline = time.monotonic() + 30
    while len(state.requests_to("/app-automate/plan.json")) < 3:
        assert time.monotonic() < deadline and not running.done()
        await asyncio.sleep(0.05)
    assert state.sessions == {}  # it read the plan and waited
    state.set_plan(other_running=1)
    results = await running
    assert results[0].outcome is Outcome.PASSED
    assert state.rejected_sessions == 0


async def test_refused_credentials_are_a_job_error_naming_them(bench: Bench) -> None:
    build = bench.builds.add("release-12", b"PK\x03\x04 apk twelve")
    executor = bench.executor(key="wrong")
    with pytest.raises(JobError, match="BROWSERSTACK_ACCESS_KEY") as caught:
        await executor.prepare(
            group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
        )
    assert caught.value.code == "browserstack_unauthorized"
    assert "wrong" not in caught.value.reason


async def test_a_build_browserstack_refuses_is_a_job_error(bench: Bench) -> None:
    # BrowserStack answers 422 for a file it cannot run: uploading it again anywhere
    # would be refused the same way, so the jobs fail at once (not max_attempts times).
    build = bench.builds.add("release-14", b"")  # an empty file: BrowserStack's 422
    with pytest.raises(JobError, match="BROWSERSTACK_INVALID_FILE_TYPE") as caught:
        await bench.executor().prepare(
            group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
        )
    assert caught.value.code == "browserstack_http_422"


async def test_a_429_is_waited_out(bench: Bench) -> None:
    state = bench.cloud.state
    offset = [-59.0]
    state.clock = lambda: time.monotonic() + offset[0]
    for _ in range(5):  # someone else used the minute's uploads 59 s ago: room again in ~1 s
        assert state.allow_upload()
    offset[0] = 0.0
    build = bench.builds.add("release-13", b"PK\x03\x04 apk thirteen")
    await bench.executor().prepare(
        group("tests/spec00.spec.ts", target=Target.BROWSERSTACK, build=build)
    )
    statuses = [status for _, _, status in state.requests_to("/app-automate/upload")]
    assert statuses[0] == 429 and statuses[-1] == 200
    assert len(state.uploads()) == 1


async def test_the_upload_rate_limiter_allows_five_a_minute() -> None:
    now = [100.0]
    limiter = UploadRateLimiter(clock=lambda: now[0])
    for _ in range(5):
        assert limiter.delay_s() == 0
        await limiter.acquire()
    assert limiter.delay_s() == pytest.approx(60.0)
    now[0] += 45
    assert limiter.delay_s() == pytest.approx(15.0)
    now[0] += 15
    assert limiter.delay_s() == 0
