"""What an org id, an app version id and a test path may be: one set of rules for the
service (which refuses anything else, and publishes the patterns in /openapi.json) and for
the CLI (which checks before it submits, so that a typo is refused before anything is sent).
"""

from __future__ import annotations

import re

ORG_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
APP_VERSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")
MAX_TEST_PATH = 1024
# A repository as GitHub names it (OWNER/NAME), and a commit of it (abbreviated or whole).
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
COMMIT_SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")


def check_org_id(value: str) -> str:
    if not ORG_ID_RE.fullmatch(value):
        raise ValueError(
            "org_id must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_app_version_id(value: str) -> str:
    if not APP_VERSION_ID_RE.fullmatch(value):
        raise ValueError(
            "app_version_id must be 1-128 characters of letters, digits, '.', '_', '+', ':' "
            "or '-', starting with a letter or digit"
        )
    return value


# What a test path may be (docs/security.md): a path relative to the project root that stays
# inside it, and that the test runner cannot mistake for an option. The validator below and
# this pattern (published in /openapi.json) say the same thing; a test checks they agree.
TEST_PATH_PATTERN = (
    r"^(?!\s*$)"  # not blank
    r"(?![/\\~-])(?![A-Za-z]:)"  # not absolute, not home-relative, not an option
    r"(?!(?:.*[/\\])?\.\.(?:[/\\]|$))"  # no '..' segment
    r"[^\x00-\x1f\x7f]*$"  # no control characters (NUL, line breaks, escapes)
)


def check_test_path(value: str) -> str:
    if not value.strip():
        raise ValueError("test_path must not be empty")
    if len(value) > MAX_TEST_PATH:
        raise ValueError(f"test_path must be at most {MAX_TEST_PATH} characters")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("test_path must not contain control characters (NUL, line breaks, tabs)")
    if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(
            "test_path must be relative to the project root, not absolute "
            "(e.g. tests/login.spec.ts)"
        )
    if ".." in re.split(r"[\\/]", value):
        raise ValueError("test_path must stay inside the project: '..' is not allowed")
    if value.startswith("-"):
        raise ValueError("test_path must not start with '-' (it would be read as an option)")
    return value
