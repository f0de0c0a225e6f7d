"""The adb executor against fake adb and fake npx (real processes): devices, installs, runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path

import pytest

from dispatch.errors import InfrastructureError, JobError
from dispatch.executors.adb import AdbExecutor, AdbOptions
from dispatch.executors.adb_output import install_failure, package_named_in, parse_devices
from dispatch.executors.appwright import AppwrightOptions
from dispatch.executors.base import JobSpec
from qgjob.types import Outcome, Target
from qgjob.worker_api import ClaimedGroup
from tests.standins.fake_adb import FakeDevice, read_state, write_state
from tests.support.executors import ADB, NPX, DirectoryBuilds, group, spec, workspace

LISTING = "\n".join(
    [
        "List of devices attached",
        "emulator-5554          device product:sdk_gphone64_x86_64 "
        "model:sdk_gphone64_x86_64 device:emu64xa transport_id:1",
        "R58M123ABC             unauthorized usb:1-1 transport_id:2",
        "0123ABCD               no permissions (user in plugdev group; are your udev rules "
        "wrong?); see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:3",
        "",
    ]
)


def test_devices_are_parsed_with_their_state_and_properties() -> None:
    devices = parse_devices(LISTING)
    assert [(d.serial, d.state.split()[0]) for d in devices] == [
        ("emulator-5554", "device"),
        ("R58M123ABC", "unauthorized"),
        ("0123ABCD", "no"),
    ]
    assert devices[0].properties["model"] == "sdk_gphone64_x86_64"
    assert devices[1].properties == {"usb": "1-1", "transport_id": "2"}
    assert parse_devices("List of devices attached\nabc\toffline\n")[0].state == "offline"


def test_install_failures_name_their_reason_and_package() -> None:
    output = (
        "Performing Streamed Install\nadb: failed to install /b/app.apk: Failure "
        "[INSTALL_FAILED_UPDATE_INCOMPATIBLE: Package com.qualgent.demo signatures do not match "
        "previously installed version; ignoring!]"
    )
    code, detail = install_failure(output) or ("", "")
    assert code == "INSTALL_FAILED_UPDATE_INCOMPATIBLE"
    assert package_named_in(detail) == "com.qualgent.demo"
    assert install_failure("Performing Streamed Install\nSuccess\n") is None
    assert install_failure("Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]") == (
        "INSTALL_FAILED_INSUFFICIENT_STORAGE",
        "",
    )


class Lab:
    """A workspace, a fake adb state file, builds, and executors over them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = workspace(
            tmp_path / "app",
            {"login.spec.ts": spec(), "search.spec.ts": spec("outcome=fail")},
        )
        self.state = tmp_path / "adb.json"
        self.builds = DirectoryBuilds(tmp_path / "builds")
        self.build = self.builds.add("v1", b"PK\x03\x04 an apk")
        self.npx_log = tmp_path / "npx.jsonl"

    def devices(self, *devices: FakeDevice) -> None:
        write_state(self.state, devices)

    def executor(self, target: Target = Target.EMULATOR, **options: object) -> AdbExecutor:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_") and k != "CI"}
        env |= {"QGJOB_FAKE_ADB_STATE": str(self.state), "QGJOB_FAKE_NPX_LOG": str(self.npx_log)}
        return AdbExecutor(
            options=AdbOptions(target=target, adb=ADB, **options),  # type: ignore[arg-type]
            appwright=AppwrightOptions(
                project="android-emulator" if target is Target.EMULATOR else "android-device",
                workspace=self.root,
                npx=NPX,
                job_timeout_s=60,
            ),
            builds=self.builds,
            lock_dir=self.tmp / "locks",
            env=env,
        )

    def installs(self) -> list[dict[str, object]]:
        installs: list[dict[str, object]] = read_state(self.state)["installs"]
        return installs


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


async def test_a_group_installs_once_and_runs_each_spec_on_the_chosen_device(lab: Lab) -> None:
    lab.devices(FakeDevice("R58M123ABC", state="unauthorized"), FakeDevice("emulator-5554"))
    executor = lab.executor()
    claimed = group(
        "tests/login.spec.ts", "tests/search.spec.ts", target=Target.EMULATOR, build=lab.build
    )
    prepared = await executor.prepare(claimed)
    assert prepared.build is not None and prepared.build.endswith("app.apk")
    outcomes = []
    for job in claimed.jobs:
        result = await executor.run(JobSpec.of(claimed, job), cancel=_never())
        outcomes.append(result.outcome)
    await executor.close()
    assert outcomes == [Outcome.PASSED, Outcome.FAILED]
    installs = lab.installs()
    assert [(i["serial"], i["flags"], i["result"]) for i in installs] == [
        ("emulator-5554", ["-r", "-g"], "Success")
    ]
    invoked = [json.loads(x) for x in lab.npx_log.read_text().splitlines()]
    envs = [i["env"] for i in invoked if i["event"] == "invoke"]
    assert {e["QGJOB_DEVICE_SERIAL"] for e in envs} == {"emulator-5554"}
    assert {e["QGJOB_BUILD_PATH"] for e in envs} == {installs[0]["apk"]}


async def test_two_workers_on_one_host_take_different_devices(lab: Lab) -> None:
    lab.devices(FakeDevice("emulator-5554"), FakeDevice("emulator-5556"))
    first, second, third = lab.executor(), lab.executor(), lab.executor()
    await first.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    await second.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    with pytest.raises(InfrastructureError, match="no free device"):
        await third.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    assert sorted(i["serial"] for i in lab.installs()) == ["emulator-5554", "emulator-5556"]
    await first.close()
    await third.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    await second.close()
    await third.close()


async def test_an_emulator_is_waited_for_until_booted(lab: Lab) -> None:
    lab.devices(FakeDevice("emulator-5554", boot_polls=2))
    executor = lab.executor()
    await executor.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    await executor.close()
    assert read_state(lab.state)["devices"][0]["boot_polls"] == 0
    lab.devices(FakeDevice("emulator-5554", boot_completed=False))
    stuck = lab.executor(boot_timeout_s=0.5)
    with pytest.raises(InfrastructureError, match="did not finish booting") as caught:
        await stuck.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    await stuck.close()
    assert caught.value.code == "boot_timeout"
    assert lab.installs() == []


async def test_an_install_failure_is_an_infrastructure_error_naming_the_reason(lab: Lab) -> None:
    lab.devices(FakeDevice("R58", install_failures=["INSTALL_FAILED_INSUFFICIENT_STORAGE"]))
    executor = lab.executor(Target.DEVICE, device="R58")
    with pytest.raises(InfrastructureError, match="INSTALL_FAILED_INSUFFICIENT_STORAGE") as caught:
        await executor.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    assert caught.value.code == "INSTALL_FAILED_INSUFFICIENT_STORAGE"
    await executor.close()


async def test_a_build_no_device_can_install_is_a_job_error(lab: Lab) -> None:
    code = "INSTALL_PARSE_FAILED_NO_CERTIFICATES"
    lab.devices(FakeDevice("R58", install_failures=[code]))
    executor = lab.executor(Target.DEVICE, device="R58")
    with pytest.raises(JobError, match="cannot be installed on any device") as caught:
        await executor.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    assert caught.value.code == code
    await executor.close()


async def test_a_signature_conflict_is_uninstalled_and_retried_once(lab: Lab) -> None:
    sticky = {"code": "INSTALL_FAILED_UPDATE_INCOMPATIBLE", "until": "uninstall"}
    lab.devices(FakeDevice("R58", install_failures=[sticky]))
    executor = lab.executor(Target.DEVICE)
    await executor.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    await executor.close()
    assert [i["result"] for i in lab.installs()] == [
        "INSTALL_FAILED_UPDATE_INCOMPATIBLE",
        "Success",
    ]


async def test_a_version_conflict_without_a_package_name_asks_for_one(lab: Lab) -> None:
    sticky = {"code": "INSTALL_FAILED_VERSION_DOWNGRADE", "until": "uninstall"}
    lab.devices(FakeDevice("R58", install_failures=[sticky]))
    executor = lab.executor(Target.DEVICE)
    with pytest.raises(InfrastructureError, match="--package"):
        await executor.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    await executor.close()
    with_package = lab.executor(Target.DEVICE, package="com.qualgent.demo")
    await with_package.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    await with_package.close()
    assert [i["result"] for i in lab.installs()][-1] == "Success"


async def test_a_missing_or_wrong_build_is_a_job_error_unless_simulated(lab: Lab) -> None:
    lab.devices(FakeDevice("emulator-5554"))
    strict = lab.executor()
    with pytest.raises(JobError, match="no build is registered"):
        await strict.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=None))
    ipa = lab.builds.add("v2", b"an ipa", filename="app.ipa")
    with pytest.raises(JobError, match=r"\.apk"):
        await strict.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=ipa))
    await strict.close()
    simulated = lab.executor(allow_missing_build=True)
    claimed = group("tests/login.spec.ts", target=Target.EMULATOR, build=None)
    prepared = await simulated.prepare(claimed)
    result = await simulated.run(JobSpec.of(claimed, claimed.jobs[0]), cancel=_never())
    await simulated.close()
    assert prepared.build is not None and "placeholder" in prepared.build
    assert result.outcome is Outcome.PASSED


async def test_a_device_that_goes_away_fails_the_next_group(lab: Lab) -> None:
    lab.devices(FakeDevice("emulator-5554"))
    executor = lab.executor()
    await executor.prepare(group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build))
    lab.devices(FakeDevice("emulator-5554", state="offline"))
    with pytest.raises(InfrastructureError, match=r"^device emulator-5554 is offline$"):
        await executor.prepare(
            group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build)
        )
    # Nothing usable left: the error says so, and what to do, not "held by other workers".
    with pytest.raises(InfrastructureError) as caught:
        await executor.prepare(
            group("tests/login.spec.ts", target=Target.EMULATOR, build=lab.build)
        )
    assert caught.value.code == "no_usable_device"
    assert "emulator-5554 is offline: reconnect it or restart adb" in caught.value.reason
    await executor.close()


async def test_an_unauthorized_device_says_to_accept_the_prompt(lab: Lab) -> None:
    lab.devices(FakeDevice("R58M123ABC", state="unauthorized"))
    executor = lab.executor()
    with pytest.raises(InfrastructureError) as caught:
        await executor.prepare(group("tests/login.spec.ts", target=Target.DEVICE, build=lab.build))
    assert "R58M123ABC is unauthorized: accept the USB debugging prompt" in caught.value.reason
    await executor.close()


def _never() -> asyncio.Event:
    return asyncio.Event()


async def test_two_workers_on_one_host_never_run_appwright_at_once(lab: Lab) -> None:
    (lab.root / "tests" / "slow.spec.ts").write_text(spec("sleep=0.4"))
    lab.devices(FakeDevice("emulator-5554"), FakeDevice("emulator-5556"))
    first, second = lab.executor(), lab.executor()
    groups = [
        group("tests/slow.spec.ts", "tests/slow.spec.ts", target=Target.EMULATOR, build=lab.build)
        for _ in range(2)
    ]

    async def run_all(executor: AdbExecutor, claimed: ClaimedGroup) -> list[Outcome]:
        await executor.prepare(claimed)
        results = [
            await executor.run(JobSpec.of(claimed, j), cancel=_never()) for j in claimed.jobs
        ]
        return [r.outcome for r in results]

    outcomes = await asyncio.gather(run_all(first, groups[0]), run_all(second, groups[1]))
    await first.close()
    await second.close()
    assert outcomes == [[Outcome.PASSED] * 2] * 2
    events = [json.loads(x) for x in lab.npx_log.read_text().splitlines()]
    spans = {}
    for event in events:
        spans.setdefault(event["pid"], []).append(event["time"])
    intervals = sorted((min(t), max(t)) for t in spans.values())
    assert len(intervals) == 4
    serials = {e["env"]["QGJOB_DEVICE_SERIAL"] for e in events if e["event"] == "invoke"}
    assert serials == {"emulator-5554", "emulator-5556"}  # two devices, yet one run at a time
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(intervals))
