"""What adb prints, read into values: `adb devices -l` rows and install failures. Pure.

Formats (AOSP adb, see shared/reference/executors.md §3): a device row is `%-22s %s` of
serial and state, then `key:value` words (`usb:1-1`, `product:`, `model:`, `device:`, always
last `transport_id:`); the one state with spaces is `no permissions (…)`. A failed install
ends with `Failure [INSTALL_FAILED_CODE: detail]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_FAILURE = re.compile(r"Failure \[((?:INSTALL|DELETE)_[A-Z_]+)(?::\s*([^\]]*))?\]")
_PACKAGE_IN_DETAIL = re.compile(r"\bPackage ([A-Za-z][\w]*(?:\.[A-Za-z][\w]*)+)")
_DEVICE_ROW = re.compile(
    r"^(?P<serial>\S+)\s+(?P<state>no permissions[^\]]*\]|no permissions.*?\)(?=\s|$)|\S+)"
    r"(?P<rest>.*)$"
)
_PROPERTY = re.compile(r"^[a-z_]+:\S*$")


@dataclass(frozen=True)
class AdbDevice:
    """One row of `adb devices -l`."""

    serial: str
    state: str
    properties: Mapping[str, str] = field(default_factory=dict)


def parse_devices(text: str) -> list[AdbDevice]:
    """Rows of `adb devices -l` (or `adb devices`), any state. Pure.

    A row is `%-22s %s` of serial and state, then `key:value` words (`usb:1-1`, `product:`,
    `model:`, `device:`, always last `transport_id:`). The one state with spaces is
    `no permissions (…)`, which may end in a bracketed url.
    """
    devices = []
    for line in text.splitlines():
        match = _DEVICE_ROW.match(line.strip())
        if match is None or line.startswith(("List of devices", "*")):
            continue
        properties = dict(
            word.split(":", 1) for word in match["rest"].split() if _PROPERTY.match(word)
        )
        devices.append(AdbDevice(match["serial"], match["state"].strip(), properties))
    return devices


def install_failure(output: str) -> tuple[str, str] | None:
    """(`INSTALL_FAILED_…` code, detail) from adb's install output, or None. Pure."""
    match = _FAILURE.search(output)
    if match is None:
        return None
    return match[1], (match[2] or "").strip()


def package_named_in(detail: str) -> str | None:
    """The package a failure detail names ("Package com.x signatures do not match…")."""
    match = _PACKAGE_IN_DETAIL.search(detail)
    return match[1] if match else None
