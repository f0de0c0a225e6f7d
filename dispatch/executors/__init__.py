"""Executors: what runs a group's jobs on a device, an emulator, BrowserStack or this host.

Every executor follows `dispatch.executors.base.Executor`; the worker loop knows nothing else.
"""

from __future__ import annotations

from dispatch.executors.base import Executor, JobResult, JobSpec, PrepareResult

__all__ = ["Executor", "JobResult", "JobSpec", "PrepareResult"]
