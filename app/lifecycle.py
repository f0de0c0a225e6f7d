"""What happens to a job after an attempt ends: pure decisions, no I/O.

A test that ran and failed is final (Playwright's own `--retries` already retried it); an
infrastructure error (lost worker, failed install, broken report) is retried with
exponential backoff until the job has used `max_attempts`. The delay before attempt n+1 is
`QGJOB_RETRY_BACKOFF_S · 2^(n-1)`, scaled by a random factor in [0.5, 1.5) so that jobs lost
together do not all come back at once; the store computes it in SQL where it re-queues.
"""

from __future__ import annotations

from qgjob.types import JobStatus, Outcome

LOST_WORKER = "worker lost: its lease expired without a heartbeat"


def status_after(
    outcome: Outcome, *, attempts: int, max_attempts: int, retry: bool = True
) -> JobStatus:
    """The job's status once attempt number `attempts` ended with `outcome`. `retry` False:
    the worker found that the job cannot run as asked (a spec missing from the project,
    credentials refused), so an error is final at once rather than retried."""
    if outcome.is_success:
        return JobStatus.COMPLETED
    if outcome is Outcome.ERROR and retry and attempts < max_attempts:
        return JobStatus.PENDING
    return JobStatus.FAILED


def final_error(
    error: str | None, *, attempts: int, max_attempts: int, retry: bool = True
) -> str | None:
    """The error a job keeps when it ends FAILED on an error outcome."""
    if error is None:
        return None
    if retry and attempts >= max_attempts > 1:
        return f"{error} (gave up after {attempts} attempts)"
    return error


def missing_log(job_id: str, status: JobStatus, error: str | None, *, attempt: int | None) -> str:
    """Why a job (or one of its attempts) has no log: not yet, or never will, and why."""
    which = f"attempt {attempt} of job {job_id}" if attempt else f"job {job_id}"
    if not status.is_terminal:
        return f"{which} has no log yet"
    if attempt:
        return f"{which} has no log"
    return f"{which} ended {status.value} without a log" + (f": {error}" if error else "")
