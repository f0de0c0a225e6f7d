"""Checks on command-line values, done before anything is sent to the service.

Each check returns the parsed value or raises `BadInput` with one sentence that names the
option, says what is accepted and repeats what was given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from qgjob.identifiers import (
    COMMIT_SHA_RE,
    REPO_RE,
    check_app_version_id,
    check_org_id,
    check_test_path,
)
from qgjob.models import Commit

E = TypeVar("E", bound=StrEnum)


class BadInput(Exception):
    """A command-line value that cannot be used (a usage error: exit code 2)."""


def parse_choice(enum: type[E], raw: str, *, option: str) -> E:
    """The member of `enum` whose value is `raw`, ignoring case and surrounding blanks."""
    wanted = raw.strip().lower()
    for member in enum:
        if member.value.lower() == wanted:
            return member
    accepted = ", ".join(member.value for member in enum)
    raise BadInput(f"{option} must be one of {accepted} (got {raw!r})")


def parse_uuid(raw: str, *, option: str) -> UUID:
    try:
        return UUID(raw.strip())
    except ValueError:
        raise BadInput(
            f"{option} must be a UUID such as 123e4567-e89b-12d3-a456-426614174000 (got {raw!r})"
        ) from None


def require_text(raw: str, *, option: str) -> str:
    """`raw` without surrounding blanks; refused if nothing is left."""
    value = raw.strip()
    if not value:
        raise BadInput(f"{option} must not be empty")
    return value


def require_org_id(raw: str, *, option: str = "--org-id") -> str:
    """An org id as the service accepts it (`qgjob.identifiers`)."""
    return _checked(require_text(raw, option=option), check_org_id, "org_id", option)


def require_app_version_id(raw: str, *, option: str = "--app-version-id") -> str:
    """An app version id as the service accepts it (`qgjob.identifiers`)."""
    value = require_text(raw, option=option)
    return _checked(value, check_app_version_id, "app_version_id", option)


def require_test_path(raw: str, *, option: str = "--test") -> str:
    """A spec path as the service accepts it: relative, inside the project (`qgjob.identifiers`)."""
    return _checked(require_text(raw, option=option), check_test_path, "test_path", option)


def _checked(value: str, check: Callable[[str], str], field: str, option: str) -> str:
    """`check(value)`, its refusal reworded to name the option and the value given."""
    try:
        return check(value)
    except ValueError as exc:
        raise BadInput(f"{option} {value!r} {str(exc).removeprefix(f'{field} ')}") from None


def require_positive_int(value: int, *, option: str) -> int:
    if value < 1:
        raise BadInput(f"{option} must be a whole number of at least 1 (got {value})")
    return value


def require_positive_float(value: float, *, option: str) -> float:
    if not 0 < value < math.inf:
        raise BadInput(f"{option} must be a number of seconds above 0 (got {value:g})")
    return value


def exactly_one(values: dict[str, object]) -> str:
    """The one option of `values` that was given; refused if none or several were."""
    given = [option for option, value in values.items() if value is not None]
    if len(given) != 1:
        names = " or ".join(values)
        problem = "neither was given" if not given else "both were given"
        raise BadInput(f"pass exactly one of {names} ({problem})")
    return given[0]


_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
    "tib": 1024**4,
}  # fmt: skip


def parse_size(raw: str, *, option: str) -> int:
    """A byte count such as `20GiB`, `500MB` or `1048576`."""
    text = raw.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or not value > 0:
        raise BadInput(
            f"{option} must be a size such as 20GiB, 500MB or 1048576 (bytes) (got {raw!r})"
        )
    return int(value * _SIZE_UNITS[unit])


def require_commit(repo: str | None, ref: str | None, head_sha: str | None) -> Commit | None:
    """`--repo` (OWNER/NAME), with `--ref` and `--head-sha` if given; None without `--repo`."""
    if repo is None:
        given = "--ref" if ref is not None else "--head-sha" if head_sha is not None else None
        if given is not None:
            raise BadInput(f"{given} needs --repo (the repository it is a commit of)")
        return None
    name = require_text(repo, option="--repo")
    if not REPO_RE.fullmatch(name):
        raise BadInput(f"--repo must look like OWNER/NAME, e.g. acme/shop (got {repo!r})")
    if ref is not None and not 0 < len(ref.strip()) <= 255:
        raise BadInput(f"--ref must be 1 to 255 characters, e.g. refs/heads/main (got {ref!r})")
    sha = None if head_sha is None else head_sha.strip()
    if sha is not None and not COMMIT_SHA_RE.fullmatch(sha):
        raise BadInput(
            f"--head-sha must be a commit SHA: 7 to 64 lowercase hex digits (got {head_sha!r})"
        )
    return Commit(repo=name, ref=None if ref is None else ref.strip(), head_sha=sha)
