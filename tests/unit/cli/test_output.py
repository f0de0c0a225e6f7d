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


def test_the_401_hint_says_how_to_create_a_token_once() -> None:
    told = Unauthorized(401, "unauthorized", "missing (create a token with `qgjob token create`)")
    unknown = Unauthorized(401, "unauthorized", "the token is not valid (unknown or revoked)")
    for exc in (told, unknown):
        line = describe_error(exc)
        assert line.count("qgjob token create") == 1, line
        assert "--token or QGJOB_TOKEN" in line


def test_a_refused_field_is_named_by_its_option() -> None:
    options = {"org_id": "--org-id", "tests.1": "--test /etc/passwd"}
    required = ValidationFailed(
        422, "invalid_input", "org_id is required with a token that serves every org", "org_id"
    )
    assert describe_error(required, options=options) == (
        "--org-id is required with a token that serves every org (HTTP 422 invalid_input)"
    )
    test = ValidationFailed(422, "invalid_input", "tests.1: test_path must be relative", "tests.1")
    assert describe_error(test, options=options) == (
        "--test /etc/passwd: test_path must be relative (HTTP 422 invalid_input)"
    )
    other = ValidationFailed(422, "invalid_input", "must be short", "name")
    assert describe_error(other, options=options) == "name: must be short (HTTP 422 invalid_input)"


def test_times_are_shown_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 2, 13, 4, 5, tzinfo=paris)) == "2026-01-02 12:04:05 UTC"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02 03:04:05 UTC"
    assert format_time(None) == "-"
