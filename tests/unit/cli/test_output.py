"""The one-line error sentences and the pure renderers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from qgjob.cli.inputs import BadInput
from qgjob.cli.output import describe_error, format_time
from qgjob.errors import Forbidden, ServerUnreachable, Unauthorized, ValidationFailed


def test_field_is_named_once() -> None:
    plain = ValidationFailed(422, "invalid_input", "must be relative", "tests.0")
    assert describe_error(plain) == "tests.0: must be relative (HTTP 422 invalid_input)"
    named = ValidationFailed(422, "invalid_input", "org_id must be 1-64 characters", "org_id")
    assert describe_error(named) == "org_id must be 1-64 characters (HTTP 422 invalid_input)"


def test_hints() -> None:
    unreachable = describe_error(ServerUnreachable("http://10.0.0.1:8000", "timed out"))
    assert unreachable.startswith("cannot reach the qgjob server at http://10.0.0.1:8000")
    assert "`qgjob server`" in unreachable
    assert "QGJOB_TOKEN" in describe_error(Unauthorized(401, "unauthorized", "bad token"))
    forbidden = Forbidden(403, "forbidden", "a submitter token cannot do this")
    assert describe_error(forbidden) == "a submitter token cannot do this (HTTP 403 forbidden)"
    assert describe_error(BadInput("--test must not be empty")) == "--test must not be empty"


def test_times_are_shown_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 2, 13, 4, 5, tzinfo=paris)) == "2026-01-02 12:04:05 UTC"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02 03:04:05 UTC"
    assert format_time(None) == "-"
