"""JUnit XML for a run: what CI systems (Jenkins, GitLab, GitHub test reporters) read.

One `<testsuite>` per (app_version_id, target) group, one `<testcase>` per spec job.
Outcomes map the way Maven Surefire writes them, which is what those readers understand:

- passed: an empty testcase;
- flaky: a passing testcase holding a `<flakyFailure message type>` with the error of the
  attempt that failed (Surefire's rerun format; the test does not count as failed);
- failed, timed_out: `<failure message type>` with the full error as text;
- error (the infrastructure broke, not the test): `<error message type>`;
- skipped, or no outcome yet (cancelled, never ran): `<skipped message>`.

Pure: takes plain records, returns the document as a string. It lives in `qgjob` (the
package every other one may import) because both the service (`GET /v1/runs/{id}/junit`)
and the CLI (`qgjob submit --wait --junit`) render it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from qgjob.text import strip_ansi
from qgjob.types import Outcome, Target

__all__ = ["JUnitCase", "render_junit"]

# Characters XML 1.0 forbids even when escaped (ElementTree would write them verbatim).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, kw_only=True)
class JUnitCase:
    """One spec job of a run, as JUnit needs it."""

    name: str  # the spec path, e.g. "tests/login.spec.ts"
    classname: str  # e.g. "emulator.v1.2.3"; CI UIs group cases by it
    app_version_id: str
    target: Target
    duration_ms: int
    outcome: Outcome | None  # None: the job has no result (pending, running, cancelled)
    error: str | None = None
    attempts: int = 1
    log_url: str | None = None


def render_junit(
    cases: Sequence[JUnitCase], *, name: str, timestamp: datetime | None = None
) -> str:
    """The JUnit XML document for `cases`, grouped into suites in order of first appearance."""
    groups: dict[tuple[str, Target], list[JUnitCase]] = {}
    for case in cases:
        groups.setdefault((case.app_version_id, case.target), []).append(case)

    root = ET.Element("testsuites", name=_clean(name))
    for (app_version_id, target), members in groups.items():
        root.append(_suite(app_version_id, target, members, timestamp=timestamp))
    _count(root, cases)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _suite(
    app_version_id: str, target: Target, cases: Sequence[JUnitCase], *, timestamp: datetime | None
) -> ET.Element:
    suite = ET.Element("testsuite", name=_clean(f"{app_version_id} [{target}]"))
    if timestamp is not None:
        suite.set("timestamp", timestamp.replace(microsecond=0).isoformat())
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="app_version_id", value=_clean(app_version_id))
    ET.SubElement(properties, "property", name="target", value=str(target))
    for case in cases:
        suite.append(_testcase(case))
    _count(suite, cases)
    return suite


def _testcase(case: JUnitCase) -> ET.Element:
    element = ET.Element(
        "testcase",
        name=_clean(case.name),
        classname=_clean(case.classname),
        time=_seconds(case.duration_ms),
    )
    if case.attempts > 1 or case.log_url:
        properties = ET.SubElement(element, "properties")
        ET.SubElement(properties, "property", name="attempts", value=str(case.attempts))
        if case.log_url:
            ET.SubElement(properties, "property", name="log_url", value=_clean(case.log_url))
    error = _clean(strip_ansi(case.error or "")).strip()
    message = _first_line(error)
    outcome = case.outcome
    if outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
        child = ET.SubElement(element, "failure", message=message or str(outcome), type=outcome)
        child.text = error or str(outcome)
    elif outcome is Outcome.ERROR:
        child = ET.SubElement(element, "error", message=message or "error", type="error")
        child.text = error or "error"
    elif outcome is Outcome.FLAKY:
        child = ET.SubElement(
            element, "flakyFailure", message=message or "failed before passing", type="flaky"
        )
        ET.SubElement(child, "stackTrace").text = error or "failed before passing on a retry"
    elif outcome is Outcome.SKIPPED or outcome is None:
        ET.SubElement(element, "skipped", message=message or ("skipped" if outcome else "not run"))
    if case.log_url:
        ET.SubElement(element, "system-out").text = f"log: {_clean(case.log_url)}"
    return element


def _count(element: ET.Element, cases: Sequence[JUnitCase]) -> None:
    outcomes = [case.outcome for case in cases]
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(o in (Outcome.FAILED, Outcome.TIMED_OUT) for o in outcomes)))
    element.set("errors", str(sum(o is Outcome.ERROR for o in outcomes)))
    element.set("skipped", str(sum(o is Outcome.SKIPPED or o is None for o in outcomes)))
    element.set("time", _seconds(sum(case.duration_ms for case in cases)))


def _seconds(duration_ms: int) -> str:
    return f"{max(0, duration_ms) / 1000:.3f}"


def _first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def _clean(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)
