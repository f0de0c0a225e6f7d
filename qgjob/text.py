"""Text as test tools print it, made plain for reports: shared by the worker and the service."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves) and OSC sequences (hyperlinks) as terminals emit them.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (Playwright colours its error messages)."""
    return _ANSI.sub("", text)
