"""The `adb` executor: Android emulators and devices on this host, driven by adb and AppWright.

`prepare(group)` once per group:

1. the build: fetched through the `BuildFetcher` (a verified local `.apk`); with
   `allow_missing_build` (only `qgjob up`'s simulated workers) a group without a build gets a
   placeholder file, and the log says so;
2. the device: `--device SERIAL`, else the first device `adb devices -l` lists in state
   `device` that no other worker on this host holds (a file lock per serial, kept until the
   worker exits); an emulator must answer `getprop sys.boot_completed` = 1 within
   `boot_timeout_s`;
3. `adb -s SERIAL install -r -g APK`. `Failure [INSTALL_FAILED_…]` is an infrastructure error
   naming the reason (the group goes to another worker). On a signature or version conflict
   (`INSTALL_FAILED_UPDATE_INCOMPATIBLE`, `INSTALL_FAILED_VERSION_DOWNGRADE`) the installed
   package is uninstalled and the install tried once more. The package name comes from
   `--package`, else from the failure text when Android names it ("Package com.x signatures
   do not match…"); qgjob does not parse APKs (no aapt), so a conflict that names no package
   and has no `--package` stays an error that says to pass `--package`.

`run(job)` then runs AppWright on the spec (`dispatch.executors.appwright`) with the serial
in `QGJOB_DEVICE_SERIAL` and `ANDROID_SERIAL` and the apk in `QGJOB_BUILD_PATH` (what
examples/appwright.config.ts reads), one AppWright process per host at a time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dispatch.errors import InfrastructureError, JobError
from dispatch.executors.adb_output import (
    AdbDevice,
    install_failure,
    package_named_in,
    parse_devices,
)
from dispatch.executors.appwright import (
    AppwrightOptions,
    HostLock,
    close_parts,
    job_result,
    locate,
    named_build,
    release,
    run_spec,
)
from dispatch.executors.base import BuildFetcher, JobResult, JobSpec, PrepareResult
from dispatch.processes import Completed, run_shell
from dispatch.sources import Sources
from qgjob.types import Target
from qgjob.worker_api import ClaimedGroup

logger = logging.getLogger(__name__)

DEFAULT_ADB = "adb"
CONFLICTS = ("INSTALL_FAILED_UPDATE_INCOMPATIBLE", "INSTALL_FAILED_VERSION_DOWNGRADE")
# Install failures that come from the build itself: any device refuses it the same way.
_BAD_BUILD = (
    "INSTALL_PARSE_FAILED_",
    "INSTALL_FAILED_INVALID_APK",
    "INSTALL_FAILED_NO_CERTIFICATES",
)
_BOOT_POLL_S = 1.0
_KEPT_GROUPS = 32
WITHHELD_ENV = ("QGJOB_TOKEN",)


@dataclass(frozen=True)
class AdbOptions:
    """The adb executor's settings (see the module docstring)."""

    target: Target  # emulator or device
    adb: str = DEFAULT_ADB  # may be several words
    device: str | None = None  # --device SERIAL; None = the first free one
    package: str | None = None  # --package, to uninstall on a signature/version conflict
    boot_timeout_s: float = 300.0
    install_timeout_s: float = 600.0
    command_timeout_s: float = 60.0
    allow_missing_build: bool = False  # qgjob up only: a placeholder for groups with no build

    @classmethod
    def adb_from(cls, env: Mapping[str, str]) -> str:
        return env.get("QGJOB_ADB") or DEFAULT_ADB


@dataclass(frozen=True)
class _Prepared:
    apk: Path
    serial: str


class AdbExecutor:
    """Runs jobs on one Android emulator or device (see the module docstring)."""

    def __init__(
        self,
        *,
        options: AdbOptions,
        appwright: AppwrightOptions,
        builds: BuildFetcher | None,
        lock_dir: Path,
        sources: Sources | None = None,
        placeholder_dir: Path | None = None,
        env: Mapping[str, str],
    ) -> None:
        if options.target not in (Target.EMULATOR, Target.DEVICE):
            raise ValueError(f"the adb executor serves emulator and device, not {options.target}")
        self.options = options
        self.appwright = appwright
        self.builds = builds
        self.sources = sources
        self.lock_dir = lock_dir
        self.placeholder_dir = placeholder_dir or lock_dir / "placeholder-builds"
        self._env = {k: v for k, v in env.items() if k not in WITHHELD_ENV}
        self._serial: str | None = None
        self._serial_fd: int | None = None
        self._device_choice = asyncio.Lock()
        self._groups: OrderedDict[object, _Prepared] = OrderedDict()
        self._host = HostLock(lock_dir, "appwright")

    def __repr__(self) -> str:
        return f"AdbExecutor(target={self.options.target}, device={self.options.device!r})"

    async def prepare(self, group: ClaimedGroup) -> PrepareResult:
        started = time.monotonic()
        apk = await self._build(group)
        serial = await self._device()
        if self.options.target is Target.EMULATOR:
            await self._wait_booted(serial)
        await self._install(serial, apk)
        self._groups[group.group_id] = _Prepared(apk=apk, serial=serial)
        while len(self._groups) > _KEPT_GROUPS:
            self._groups.popitem(last=False)
        install_ms = int((time.monotonic() - started) * 1000)
        logger.info("installed serial=%s apk=%s install_ms=%d", serial, apk, install_ms)
        return PrepareResult(install_ms=install_ms, build=str(apk))

    async def run(self, job: JobSpec, *, cancel: asyncio.Event) -> JobResult:
        prepared = self._groups.get(job.group_id)
        if prepared is None:
            raise InfrastructureError("the group was not prepared on this worker", code="state")
        root, spec = await locate(job, workspace=self.appwright.workspace, sources=self.sources)
        env = {
            **self._env,
            "QGJOB_BUILD_PATH": str(prepared.apk),
            "QGJOB_DEVICE_SERIAL": prepared.serial,
            "ANDROID_SERIAL": prepared.serial,
        }
        # Appium on port 4723 and `pkill -f appium` after each test: one run per host.
        async with self._host.held():
            done = await run_spec(self.appwright, spec, env=env, cancel=cancel, cwd=root)
        return job_result(done)

    async def close(self) -> None:
        await self._release_device()
        await close_parts(self.builds, self.sources)

    async def _release_device(self) -> None:
        if self._serial_fd is not None:
            release(self._serial_fd)
            self._serial_fd, self._serial = None, None

    # --- the build ------------------------------------------------------------------------

    async def _build(self, group: ClaimedGroup) -> Path:
        if group.build is not None and self.builds is not None:
            if not group.build.filename.lower().endswith(".apk"):
                raise JobError(
                    f"the {self.options.target} executor installs .apk builds; "
                    f"{group.build.filename} is not one",
                    code="unsupported_build",
                )
            blob = await self.builds.fetch(group.build)
            return named_build(
                blob,
                filename=group.build.filename,
                sha256=group.build.sha256,
                directory=self.lock_dir / "named-builds",
            )
        if self.options.allow_missing_build:
            apk = self._placeholder(group.app_version_id)
            logger.warning(
                "SIMULATED: no build uploaded for app_version_id=%s; installing placeholder %s",
                group.app_version_id,
                apk,
            )
            return apk
        if group.build is not None:
            raise InfrastructureError("this worker has no build cache", code="no_build_cache")
        raise JobError(
            f"no build is registered for app version {group.app_version_id}; upload one "
            "with `qgjob build upload`",
            code="no_build",
        )

    def _placeholder(self, app_version_id: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", app_version_id)[:100] or "build"
        path = self.placeholder_dir / f"{name}.apk"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"qgjob placeholder build: SIMULATED, not an Android package\n")
        return path

    # --- the device -----------------------------------------------------------------------

    async def _device(self) -> str:
        async with self._device_choice:
            listed = {d.serial: d for d in await self._list_devices()}
            if self._serial is not None:
                if listed.get(self._serial, AdbDevice(self._serial, "gone")).state == "device":
                    return self._serial
                serial, gone = self._serial, listed.get(self._serial)
                await self._release_device()  # another worker may have it when it is back
                raise InfrastructureError(
                    f"device {serial} is {gone.state if gone else 'no longer attached'}",
                    code="device_lost",
                )
            wanted = self.options.device
            if wanted is not None:
                device = listed.get(wanted)
                if device is None or device.state != "device":
                    state = device.state if device else "not attached"
                    raise InfrastructureError(
                        f"device {wanted} is {state} (adb devices -l lists: "
                        f"{_listing(listed.values())})",
                        code="device_unavailable",
                    )
                candidates = [wanted]
            else:
                candidates = [s for s, d in listed.items() if d.state == "device"]
                # Prefer the kind asked for; `adb` names emulators emulator-PORT.
                emulator = self.options.target is Target.EMULATOR
                preferred = [s for s in candidates if s.startswith("emulator-") == emulator]
                candidates = preferred + [s for s in candidates if s not in preferred]
            for serial in candidates:
                fd = HostLock(self.lock_dir, f"device-{_safe(serial)}").try_acquire()
                if fd is not None:
                    self._serial, self._serial_fd = serial, fd
                    logger.info("device chosen serial=%s", serial)
                    return serial
            if not candidates:
                raise InfrastructureError(
                    f"no usable device: adb devices -l lists {_listing(listed.values())}"
                    f"{_remedy(listed.values())}",
                    code="no_usable_device",
                )
            raise InfrastructureError(
                f"no free device: adb devices -l lists {_listing(listed.values())}, and the "
                "usable ones are held by other workers on this host",
                code="no_free_device",
            )

    async def _list_devices(self) -> list[AdbDevice]:
        done = await self._adb("devices", "-l")
        if done.exit_code != 0:
            raise InfrastructureError(
                f"`adb devices -l` failed ({done.exit_code}): {done.output.strip()}",
                code="adb_failed",
            )
        return parse_devices(done.output)

    async def _wait_booted(self, serial: str) -> None:
        deadline = time.monotonic() + self.options.boot_timeout_s
        while True:
            done = await self._adb("-s", serial, "shell", "getprop", "sys.boot_completed")
            if done.exit_code == 0 and done.output.strip() == "1":
                return
            if time.monotonic() >= deadline:
                raise InfrastructureError(
                    f"emulator {serial} did not finish booting within "
                    f"{self.options.boot_timeout_s:g} s (sys.boot_completed is "
                    f"{done.output.strip()!r})",
                    code="boot_timeout",
                )
            await asyncio.sleep(_BOOT_POLL_S)

    async def _install(self, serial: str, apk: Path) -> None:
        failure = await self._install_once(serial, apk)
        if failure is None:
            return
        code, detail = failure
        if code in CONFLICTS:
            package = self.options.package or package_named_in(detail)
            if package is None:
                raise InfrastructureError(
                    f"install on {serial} failed: {code} ({detail}); a conflicting build is "
                    "installed and its package name is unknown: start the worker with "
                    "--package NAME so that qgjob can uninstall it",
                    code=code,
                )
            logger.info(
                "install conflict serial=%s code=%s: uninstalling %s", serial, code, package
            )
            await self._adb("-s", serial, "uninstall", package)
            failure = await self._install_once(serial, apk)
            if failure is None:
                return
            code, detail = failure
        reason = f"install on {serial} failed: {code}" + (f" ({detail})" if detail else "")
        if code.startswith(_BAD_BUILD):
            raise JobError(f"{reason}: the build cannot be installed on any device", code=code)
        raise InfrastructureError(reason, code=code)

    async def _install_once(self, serial: str, apk: Path) -> tuple[str, str] | None:
        done = await self._adb(
            "-s", serial, "install", "-r", "-g", str(apk), timeout_s=self.options.install_timeout_s
        )
        failure = install_failure(done.output)
        if failure is None and done.exit_code != 0:
            raise InfrastructureError(
                f"install on {serial} failed (exit {done.exit_code}): {done.output.strip()}",
                code="install_failed",
            )
        return failure

    async def _adb(self, *args: str, timeout_s: float | None = None) -> Completed:
        argv = [*shlex.split(self.options.adb), *args]
        try:
            done = await run_shell(
                shlex.join(argv),
                env=self._env,
                timeout_s=timeout_s or self.options.command_timeout_s,
                cancel=None,
                kill_grace_s=2.0,
            )
        except OSError as exc:
            raise InfrastructureError(f"cannot run adb ({argv[0]}): {exc}", code="spawn") from exc
        if done.stopped is not None:
            raise InfrastructureError(
                f"`adb {' '.join(args)}` did not answer within "
                f"{timeout_s or self.options.command_timeout_s:g} s",
                code="adb_timeout",
            )
        return done


# What to do about a device adb lists in a state that cannot run tests.
_REMEDIES = {
    "unauthorized": "accept the USB debugging prompt on the device",
    "offline": "reconnect it or restart adb (adb kill-server)",
    "no permissions": "give this user access to the USB device (udev rules)",
}


def _remedy(devices: Iterable[AdbDevice]) -> str:
    """`; <serial> is <state>: <what to do>` for each listed device that is not usable."""
    found = []
    for device in devices:
        remedy = _REMEDIES.get(device.state.split(" (", 1)[0])  # `no permissions (…)`
        if remedy is not None:
            found.append(f"; {device.serial} is {device.state}: {remedy}")
    return "".join(found)


def _listing(devices: Iterable[AdbDevice]) -> str:
    rows = [f"{d.serial} ({d.state})" for d in devices]
    return ", ".join(rows) or "no devices"


def _safe(serial: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", serial)
