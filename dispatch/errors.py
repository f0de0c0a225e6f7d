"""The worker's exceptions: whether a failure is worth retrying is decided by its type.

```
DispatchError                 base of everything the worker raises on purpose
 ├── InfrastructureError      transient: the device, the tool, the network or the report broke
 │                            (adb install failure, missing or unreadable report, a run that ran
 │                            no test, BrowserStack 5xx/429). Retry the job, preferably elsewhere.
 └── JobError                 permanent: the job cannot run as asked (spec file absent from the
                              workspace, unsupported build type, credentials refused). Retrying
                              the same job anywhere fails the same way.
```

A test that fails is not an exception: it is an `Outcome` in a parsed report.
Third-party errors (OSError, httpx errors, json errors) are translated at the edge with
`raise InfrastructureError(...) from exc`, so that `is_transient` is all a caller needs.
"""

from __future__ import annotations

from typing import ClassVar


class DispatchError(Exception):
    """Something the worker could not do; `reason` says what, for people and for job records."""

    transient: ClassVar[bool] = False

    def __init__(self, reason: str, *, code: str | None = None, log: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # A short machine-readable tag, e.g. "INSTALL_FAILED_UPDATE_INCOMPATIBLE" or "no_report".
        self.code = code
        # What the job's run wrote before it failed so, when it ran: kept as the job's log.
        self.log = log

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, code={self.code!r})"


class InfrastructureError(DispatchError):
    """The environment failed, not the test: retry the job (preferably on another worker)."""

    transient = True


class JobError(DispatchError):
    """The job itself cannot run as asked; a retry would fail the same way."""

    transient = False


def is_transient(exc: BaseException) -> bool:
    """True when retrying the job may succeed. Errors the worker did not classify are not."""
    return isinstance(exc, DispatchError) and exc.transient
