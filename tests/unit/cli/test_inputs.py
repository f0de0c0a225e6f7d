"""Command-line value checks: what they accept and the sentence they refuse with."""

from __future__ import annotations

import uuid

import pytest

from qgjob.cli.inputs import (
    BadInput,
    exactly_one,
    parse_choice,
    parse_uuid,
    require_positive_float,
    require_positive_int,
    require_text,
)
from qgjob.types import JobStatus, Target


def test_choice_ignores_case_and_blanks() -> None:
    assert parse_choice(Target, " BrowserStack ", option="--target") is Target.BROWSERSTACK
    assert parse_choice(JobStatus, "pending", option="--status") is JobStatus.PENDING


def test_choice_refusal_lists_what_is_accepted() -> None:
    with pytest.raises(BadInput) as caught:
        parse_choice(Target, "ios", option="--target")
    assert str(caught.value) == "--target must be one of emulator, device, browserstack (got 'ios')"


def test_uuid() -> None:
    value = uuid.uuid4()
    assert parse_uuid(f" {value} ", option="--job-id") == value
    with pytest.raises(BadInput, match=r"^--job-id must be a UUID .*\(got 'abc'\)$"):
        parse_uuid("abc", option="--job-id")


def test_text_and_numbers() -> None:
    assert require_text(" tests/a.spec.js ", option="--test") == "tests/a.spec.js"
    with pytest.raises(BadInput, match=r"^--test must not be empty$"):
        require_text("   ", option="--test")
    with pytest.raises(BadInput, match=r"--limit must be a whole number of at least 1 \(got 0\)"):
        require_positive_int(0, option="--limit")
    with pytest.raises(BadInput, match="--interval must be a number of seconds above 0"):
        require_positive_float(-1.0, option="--interval")


def test_exactly_one() -> None:
    assert exactly_one({"--job-id": "x", "--run-id": None}) == "--job-id"
    with pytest.raises(BadInput, match=r"exactly one of --job-id or --run-id \(neither"):
        exactly_one({"--job-id": None, "--run-id": None})
    with pytest.raises(BadInput, match=r"\(both were given\)"):
        exactly_one({"--job-id": "x", "--run-id": "y"})
