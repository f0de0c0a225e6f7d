"""Typed reads of fields out of decoded JSON (webhook payloads and API responses).

A missing or mistyped field raises the error class the caller names, with the dotted path
of the field, so that "pull_request.head.sha is missing" reaches the log instead of a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from github_app.errors import GitHubAppError

T = TypeVar("T")
_MISSING = object()


def lookup(obj: Any, dotted: str) -> Any:
    """The value at `dotted` (e.g. "pull_request.head.sha"), or `_MISSING` if any step is absent."""
    for part in dotted.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def present(obj: Any, dotted: str) -> bool:
    """Whether `dotted` exists and is not null."""
    return lookup(obj, dotted) not in (_MISSING, None)


def _check(value: Any, kind: type[T], dotted: str, error: type[GitHubAppError]) -> T:
    # bool is an int subclass; an id or a count must not silently accept `true`.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise error(f"{dotted} must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r:.80}")
    return value


def required(obj: Any, dotted: str, kind: type[T], *, error: type[GitHubAppError]) -> T:
    """The value at `dotted`, which must be present, not null, and of type `kind`."""
    value = lookup(obj, dotted)
    if value is _MISSING or value is None:
        raise error(f"{dotted} is missing")
    return _check(value, kind, dotted, error)


def optional(obj: Any, dotted: str, kind: type[T], *, error: type[GitHubAppError]) -> T | None:
    """The value at `dotted` if present and not null (then of type `kind`), else None."""
    value = lookup(obj, dotted)
    if value is _MISSING or value is None:
        return None
    return _check(value, kind, dotted, error)


def objects(obj: Any, dotted: str, *, error: type[GitHubAppError]) -> list[Mapping[str, Any]]:
    """The list of objects at `dotted`; absent or null counts as empty."""
    value = optional(obj, dotted, list, error=error)
    if value is None:
        return []
    for index, item in enumerate(value):
        _check(item, dict, f"{dotted}[{index}]", error)
    return value


_KIND_NAMES: dict[type[Any], str] = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    dict: "an object",
    list: "an array",
}
