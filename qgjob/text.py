"""Text as people read it: test tools' output made plain for reports, and counts with their
noun in the right number. Shared by the worker, the service and the CLI."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves) and OSC sequences (hyperlinks) as terminals emit them.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (Playwright colours its error messages)."""
    return _ANSI.sub("", text)


def counted(count: int, noun: str, *, plural: str | None = None) -> str:
    """`1 job`, `0 jobs`, `3 jobs`: the count, then the noun in the number it calls for."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
