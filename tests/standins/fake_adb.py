#!/usr/bin/env python3
"""A stand-in for `adb` that speaks its output formats, with devices from a JSON state file.

Commands (global `-s SERIAL`, or $ANDROID_SERIAL, selects the device):

    adb version | start-server | kill-server
    adb devices [-l]                       `List of devices attached`, then `%-22s %s` rows
    adb -s S get-state | wait-for-device   (wait-for-device polls the state file)
    adb -s S shell getprop PROP            sys.boot_completed: `1` once booted, empty before
    adb -s S shell pm list packages        `package:NAME` lines
    adb -s S install [-r] [-g] [-t] [-d] APK
                           `Performing Streamed Install` / `Success`, or on stderr
                           `adb: failed to install APK: Failure [CODE: detail]`, exit 1
    adb -s S uninstall [-k] PACKAGE        `Success`, or `Failure [DELETE_FAILED_INTERNAL_ERROR]`

$QGJOB_FAKE_ADB_STATE names the state file (see `write_state`), e.g.

    {"apk_package": "com.qualgent.demo",
     "devices": [{"serial": "emulator-5554", "state": "device", "boot_polls": 2,
                  "install_failures": ["INSTALL_FAILED_INSUFFICIENT_STORAGE",
                                       {"code": "INSTALL_FAILED_UPDATE_INCOMPATIBLE",
                                        "until": "uninstall"}]}]}

A device's `state` is device, offline, unauthorized, …; `boot_completed` (default true) and
`boot_polls` (getprop answers empty that many times first) model booting. Each install
consumes the first `install_failures` entry: a code fails once, `until: uninstall` fails
every install until the package is uninstalled. Installed packages and every install are
written back to the file under an exclusive lock. $QGJOB_FAKE_ADB_LOG gets one JSON line
per call (argv, serial, exit code).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PACKAGE = "com.qualgent.demo"
DETAILS = {
    "INSTALL_FAILED_UPDATE_INCOMPATIBLE": (
        "Package {package} signatures do not match previously installed version; ignoring!"
    ),
    "INSTALL_FAILED_VERSION_DOWNGRADE": (
        "Downgrade detected: Update version code 1 is older than current 2"
    ),
    "INSTALL_FAILED_ALREADY_EXISTS": "Attempt to re-install {package} without first uninstalling.",
    "INSTALL_FAILED_NO_MATCHING_ABIS": "Failed to extract native libraries, res=-113",
    "INSTALL_PARSE_FAILED_NO_CERTIFICATES": "No signature found in package of version 2 or newer",
}
UNAUTHORIZED = (
    "adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
    "Try 'adb kill-server' if that seems wrong.\n"
    "Otherwise check for a confirmation dialog on your device."
)
State = dict[str, Any]


@dataclass
class FakeDevice:
    """One device in the state file."""

    serial: str
    state: str = "device"
    model: str = "sdk_gphone64_x86_64"
    product: str = "sdk_gphone64_x86_64"
    device: str = "emu64xa"
    usb: str | None = None  # devpath such as "usb:1-1" for physical devices
    boot_completed: bool = True
    boot_polls: int = 0
    install_failures: list[Any] = field(default_factory=list)
    packages: dict[str, Any] = field(default_factory=dict)


def write_state(
    path: Path, devices: Sequence[FakeDevice], *, apk_package: str = DEFAULT_PACKAGE
) -> None:
    """Create the state file the fake reads (tests call this)."""
    state = {"apk_package": apk_package, "devices": [asdict(d) for d in devices], "installs": []}
    path.write_text(json.dumps(state, indent=2))


def read_state(path: Path) -> State:
    """The current state, with what the fake recorded (`installs`, `packages`)."""
    state: State = json.loads(path.read_text())
    return state


class AdbError(Exception):
    """adb's own error line (printed on stderr, exit 1)."""


def main(argv: list[str]) -> int:
    code = 1
    serial = None
    try:
        args, serial = _global_options(argv)
        code = _command(args, serial)
    except AdbError as exc:
        print(str(exc), file=sys.stderr)
    finally:
        _log(argv=argv, serial=serial, code=code)
    return code


def _global_options(argv: list[str]) -> tuple[list[str], str | None]:
    serial = os.environ.get("ANDROID_SERIAL") or None
    args = list(argv)
    while args and args[0] in ("-s", "-t", "-d", "-e", "-H", "-P"):
        flag = args.pop(0)
        if flag in ("-s", "-t", "-H", "-P"):
            if not args:
                raise AdbError(f"adb: {flag} requires an argument")
            value = args.pop(0)
            serial = value if flag == "-s" else serial
    if not args:
        raise AdbError("adb: no command specified")
    return args, serial


def _command(args: list[str], serial: str | None) -> int:
    command, rest = args[0], args[1:]
    if command == "version":
        print("Android Debug Bridge version 1.0.41\nVersion 35.0.2-12147458")
        print(f"Installed as {Path(__file__).resolve()}\nRunning on Linux (x86_64)")
        return 0
    if command in ("start-server", "kill-server"):
        return 0
    if command == "devices":
        print(_devices(_load()["devices"], long="-l" in rest), end="")
        return 0
    if command == "wait-for-device":
        while not _attached(serial):
            time.sleep(0.1)
        return 0
    if command == "get-state":
        print(_find(_load(), serial, usable=False).get("state", "device"))
        return 0
    if command == "shell":
        return _shell(rest, serial)
    if command == "install":
        return _install(rest, serial)
    if command == "uninstall":
        return _uninstall(rest, serial)
    raise AdbError(f"adb: unknown command {command}")


def _devices(devices: Sequence[State], *, long: bool) -> str:
    lines = ["List of devices attached"]
    for number, dev in enumerate(devices, start=1):
        serial, state = dev["serial"], dev.get("state", "device")
        if not long:
            lines.append(f"{serial}\t{state}")
            continue
        row = f"{serial:<22} {state}"
        if dev.get("usb"):
            row += f" {dev['usb']}"
        if state == "device":
            for key in ("product", "model", "device"):
                if dev.get(key):
                    row += f" {key}:{dev[key]}"
        row += f" transport_id:{dev.get('transport_id', number)}"
        lines.append(row)
    return "\n".join(lines) + "\n\n"


def _shell(rest: list[str], serial: str | None) -> int:
    if rest[:1] == ["getprop"] and len(rest) == 2:
        with _locked() as state:
            dev = _find(state, serial)
            value = ""
            if rest[1] in ("sys.boot_completed", "dev.bootcomplete"):
                if dev.get("boot_polls", 0) > 0:
                    dev["boot_polls"] -= 1
                elif dev.get("boot_completed", True):
                    value = "1"
            else:
                value = str(dev.get("props", {}).get(rest[1], ""))
        print(value)
        return 0
    if rest[:3] == ["pm", "list", "packages"]:
        dev = _find(_load(), serial)
        print("".join(f"package:{name}\n" for name in sorted(dev.get("packages", {}))), end="")
        return 0
    raise AdbError(f"/system/bin/sh: {' '.join(rest)}: not found")


def _install(rest: list[str], serial: str | None) -> int:
    paths = [arg for arg in rest if not arg.startswith("-")]
    if len(paths) != 1:
        raise AdbError("adb: need APK file on command line")
    apk = paths[0]
    if not Path(apk).is_file():
        raise AdbError(f"adb: failed to stat {apk}: No such file or directory")
    with _locked() as state:
        dev = _find(state, serial)
        print("Performing Streamed Install", flush=True)
        package = state.get("apk_package", DEFAULT_PACKAGE)
        code = _next_failure(dev)
        packages = dev.setdefault("packages", {})
        if code is None and "-r" not in rest and package in packages:
            code = "INSTALL_FAILED_ALREADY_EXISTS"
        record = {"serial": dev["serial"], "apk": apk, "package": package, "flags": rest[:-1]}
        state.setdefault("installs", []).append({**record, "result": code or "Success"})
        if code is None:
            packages[package] = {"apk": apk}
    if code is not None:
        detail = DETAILS.get(code, "")
        reason = f"{code}: {detail.format(package=package)}" if detail else code
        raise AdbError(f"adb: failed to install {apk}: Failure [{reason}]")
    print("Success")
    return 0


def _next_failure(dev: State) -> str | None:
    failures = dev.get("install_failures") or []
    if not failures:
        return None
    first = failures[0]
    if isinstance(first, dict):  # sticky: stays until the package is uninstalled
        return str(first["code"])
    failures.pop(0)
    return str(first)


def _uninstall(rest: list[str], serial: str | None) -> int:
    names = [arg for arg in rest if not arg.startswith("-")]
    with _locked() as state:
        dev = _find(state, serial)
        packages = dev.setdefault("packages", {})
        failures = dev.get("install_failures") or []
        # A sticky failure stands for a conflicting build already on the device: removable.
        conflicting = any(isinstance(f, dict) for f in failures)
        dev["install_failures"] = [f for f in failures if not isinstance(f, dict)]
        removed = bool(names) and (packages.pop(names[0], None) is not None or conflicting)
    print("Success" if removed else "Failure [DELETE_FAILED_INTERNAL_ERROR]")
    return 0 if removed else 1


def _attached(serial: str | None) -> bool:
    try:
        return str(_find(_load(), serial, usable=False).get("state", "device")) == "device"
    except AdbError:
        return False


def _find(state: State, serial: str | None, *, usable: bool = True) -> State:
    devices: list[State] = state.get("devices", [])
    if serial is None:
        if not devices:
            raise AdbError("adb: no devices/emulators found")
        if len(devices) > 1:
            raise AdbError("adb: more than one device/emulator")
        dev = devices[0]
    else:
        dev = next((d for d in devices if d["serial"] == serial), {})
        if not dev:
            raise AdbError(f"adb: device '{serial}' not found")
    status = dev.get("state", "device")
    if usable and status == "unauthorized":
        raise AdbError(UNAUTHORIZED)
    if usable and status != "device":
        raise AdbError(f"adb: device {status}")
    return dev


def _state_path() -> Path:
    path = os.environ.get("QGJOB_FAKE_ADB_STATE")
    if not path:
        raise AdbError("fake adb: set QGJOB_FAKE_ADB_STATE to a state file (see its docstring)")
    return Path(path)


def _load() -> State:
    with _locked() as state:
        return state


@contextmanager
def _locked() -> Iterator[State]:
    """The state under an exclusive lock; changes are written back atomically."""
    path = _state_path()
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: State = json.loads(path.read_text()) if path.exists() else {"devices": []}
        before = json.dumps(state, sort_keys=True)
        yield state
        if json.dumps(state, sort_keys=True) != before:
            temporary = path.with_name(f".{path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(state, indent=2))
            os.replace(temporary, path)


def _log(**fields: object) -> None:
    target = os.environ.get("QGJOB_FAKE_ADB_LOG")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(json.dumps({"pid": os.getpid(), "time": time.time(), **fields}) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
