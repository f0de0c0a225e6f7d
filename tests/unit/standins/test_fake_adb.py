"""fake_adb as a real process: adb's exact output formats, exit codes and shared state."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standins import FAKE_ADB
from tests.standins.fake_adb import FakeDevice, read_state, write_state
from tests.unit.standins.conftest import base_env

UPDATE_INCOMPATIBLE = (
    "Failure [INSTALL_FAILED_UPDATE_INCOMPATIBLE: Package com.qualgent.demo signatures do not "
    "match previously installed version; ignoring!]"
)


@dataclass(frozen=True)
class Adb:
    state: Path
    log: Path
    apk: Path

    def __call__(
        self, *args: str, serial_env: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **base_env(),
            "QGJOB_FAKE_ADB_STATE": str(self.state),
            "QGJOB_FAKE_ADB_LOG": str(self.log),
        }
        if serial_env:
            env["ANDROID_SERIAL"] = serial_env
        return subprocess.run(
            [str(FAKE_ADB), *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    def devices(self, *devices: FakeDevice) -> None:
        write_state(self.state, devices)


@pytest.fixture
def adb(tmp_path: Path) -> Adb:
    apk = tmp_path / "app-release.apk"
    apk.write_bytes(b"PK\x03\x04")
    fake = Adb(state=tmp_path / "adb.json", log=tmp_path / "adb.jsonl", apk=apk)
    fake.devices(FakeDevice("emulator-5554"))
    return fake


def test_devices_long_listing_is_adbs_exact_format(adb: Adb) -> None:
    adb.devices(
        FakeDevice("emulator-5554"),
        FakeDevice("R58M123ABCD", state="unauthorized", usb="usb:1-1"),
        FakeDevice("0123456789ABCDEF0123456789", state="offline"),
        FakeDevice(
            "R3CN90ZZZZ", usb="usb:1-2", model="SM_S911B", product="dm1qxeea", device="dm1q"
        ),
    )
    done = adb("devices", "-l")
    assert done.returncode == 0
    assert done.stdout == (
        "List of devices attached\n"
        "emulator-5554          device product:sdk_gphone64_x86_64 model:sdk_gphone64_x86_64 "
        "device:emu64xa transport_id:1\n"
        "R58M123ABCD            unauthorized usb:1-1 transport_id:2\n"
        "0123456789ABCDEF0123456789 offline transport_id:3\n"
        "R3CN90ZZZZ             device usb:1-2 product:dm1qxeea model:SM_S911B device:dm1q "
        "transport_id:4\n"
        "\n"
    )


def test_devices_short_listing_separates_with_a_tab(adb: Adb) -> None:
    adb.devices(FakeDevice("emulator-5554"), FakeDevice("R58M123ABCD", state="offline"))
    assert (
        adb("devices").stdout
        == "List of devices attached\nemulator-5554\tdevice\nR58M123ABCD\toffline\n\n"
    )


def test_boot_completed_is_empty_while_booting_then_1(adb: Adb) -> None:
    adb.devices(FakeDevice("emulator-5554", boot_polls=2))
    answers = [
        adb("-s", "emulator-5554", "shell", "getprop", "sys.boot_completed").stdout
        for _ in range(3)
    ]
    assert answers == ["\n", "\n", "1\n"]


def test_a_device_that_never_booted_answers_empty(adb: Adb) -> None:
    adb.devices(FakeDevice("emulator-5554", boot_completed=False))
    assert adb("-s", "emulator-5554", "shell", "getprop", "sys.boot_completed").stdout == "\n"


def test_install_streams_and_records_the_package(adb: Adb) -> None:
    done = adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk))
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Performing Streamed Install\nSuccess\n",
        "",
    )
    state = read_state(adb.state)
    assert state["installs"] == [
        {
            "serial": "emulator-5554",
            "apk": str(adb.apk),
            "package": "com.qualgent.demo",
            "flags": ["-r", "-g"],
            "result": "Success",
        }
    ]
    assert (
        adb("-s", "emulator-5554", "shell", "pm", "list", "packages").stdout
        == "package:com.qualgent.demo\n"
    )


def test_an_injected_install_failure_happens_once_with_adbs_wording(adb: Adb) -> None:
    adb.devices(
        FakeDevice("emulator-5554", install_failures=["INSTALL_FAILED_INSUFFICIENT_STORAGE"])
    )
    failed = adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk))
    assert failed.returncode == 1
    assert failed.stdout == "Performing Streamed Install\n"
    assert (
        failed.stderr
        == f"adb: failed to install {adb.apk}: Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]\n"
    )
    assert adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk)).returncode == 0


def test_a_signature_conflict_lasts_until_uninstall(adb: Adb) -> None:
    sticky = {"code": "INSTALL_FAILED_UPDATE_INCOMPATIBLE", "until": "uninstall"}
    adb.devices(FakeDevice("emulator-5554", install_failures=[sticky]))
    for _ in range(2):
        failed = adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk))
        assert failed.returncode == 1
        assert failed.stderr == f"adb: failed to install {adb.apk}: {UPDATE_INCOMPATIBLE}\n"
    removed = adb("-s", "emulator-5554", "uninstall", "com.qualgent.demo")
    assert (removed.returncode, removed.stdout) == (0, "Success\n")
    assert adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk)).returncode == 0
    results = [i["result"] for i in read_state(adb.state)["installs"]]
    assert results == ["INSTALL_FAILED_UPDATE_INCOMPATIBLE"] * 2 + ["Success"]


def test_installing_again_without_replace_fails(adb: Adb) -> None:
    assert adb("-s", "emulator-5554", "install", str(adb.apk)).returncode == 0
    again = adb("-s", "emulator-5554", "install", str(adb.apk))
    assert again.returncode == 1
    assert (
        "Failure [INSTALL_FAILED_ALREADY_EXISTS: Attempt to re-install com.qualgent.demo"
        in again.stderr
    )


def test_uninstalling_a_missing_package_fails(adb: Adb) -> None:
    done = adb("-s", "emulator-5554", "uninstall", "com.qualgent.demo")
    assert (done.returncode, done.stdout) == (1, "Failure [DELETE_FAILED_INTERNAL_ERROR]\n")


def test_a_missing_apk_cannot_be_stat(adb: Adb) -> None:
    done = adb("-s", "emulator-5554", "install", "-r", "/nowhere/app.apk")
    assert (done.returncode, done.stderr) == (
        1,
        "adb: failed to stat /nowhere/app.apk: No such file or directory\n",
    )


@pytest.mark.parametrize(
    ("devices", "args", "stderr"),
    [
        ((), ("shell", "getprop", "x"), "adb: no devices/emulators found\n"),
        (
            (FakeDevice("a"), FakeDevice("b")),
            ("shell", "getprop", "x"),
            "adb: more than one device/emulator\n",
        ),
        (
            (FakeDevice("a"),),
            ("-s", "zzz", "shell", "getprop", "x"),
            "adb: device 'zzz' not found\n",
        ),
        (
            (FakeDevice("a", state="offline"),),
            ("-s", "a", "install", "-r", "APK"),
            "adb: device offline\n",
        ),
        (
            (FakeDevice("a", state="unauthorized"),),
            ("-s", "a", "shell", "getprop", "x"),
            "adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
            "Try 'adb kill-server' if that seems wrong.\n"
            "Otherwise check for a confirmation dialog on your device.\n",
        ),
    ],
    ids=["none", "several", "unknown", "offline", "unauthorized"],
)
def test_device_errors_are_adbs(
    adb: Adb, devices: tuple[FakeDevice, ...], args: tuple[str, ...], stderr: str
) -> None:
    adb.devices(*devices)
    done = adb(*(str(adb.apk) if a == "APK" else a for a in args))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", stderr)


def test_android_serial_selects_the_device(adb: Adb) -> None:
    adb.devices(FakeDevice("a", boot_completed=False), FakeDevice("b"))
    assert adb("shell", "getprop", "sys.boot_completed", serial_env="b").stdout == "1\n"


def test_concurrent_installs_on_one_state_file_are_all_recorded(adb: Adb) -> None:
    adb.devices(FakeDevice("emulator-5554"), FakeDevice("emulator-5556"))
    serials = ["emulator-5554", "emulator-5556"] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(
            pool.map(lambda s: adb("-s", s, "install", "-r", str(adb.apk)).returncode, serials)
        )
    assert codes == [0] * 12
    state = read_state(adb.state)
    assert len(state["installs"]) == 12
    assert all("com.qualgent.demo" in d["packages"] for d in state["devices"])


def test_every_call_is_logged_with_its_exit_code(adb: Adb) -> None:
    adb("devices", "-l")
    adb("-s", "nope", "shell", "getprop", "sys.boot_completed")
    calls = [json.loads(line) for line in adb.log.read_text().splitlines()]
    assert [(c["argv"], c["serial"], c["code"]) for c in calls] == [
        (["devices", "-l"], None, 0),
        (["-s", "nope", "shell", "getprop", "sys.boot_completed"], "nope", 1),
    ]


def test_without_a_state_file_it_says_what_to_set() -> None:
    done = subprocess.run(
        [str(FAKE_ADB), "devices"], env=base_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "QGJOB_FAKE_ADB_STATE" in done.stderr


def test_a_hand_written_state_with_only_serial_and_state_installs(adb: Adb) -> None:
    adb.state.write_text(json.dumps({"devices": [{"serial": "emulator-5554", "state": "device"}]}))
    done = adb("-s", "emulator-5554", "install", "-r", "-g", str(adb.apk))
    assert done.returncode == 0 and done.stdout.endswith("Success\n"), done.stderr
    assert read_state(adb.state)["devices"][0]["packages"] == {
        "com.qualgent.demo": {"apk": str(adb.apk)}
    }
