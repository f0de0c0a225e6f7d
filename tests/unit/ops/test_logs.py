"""Structured logs (qgjob.logs): JSON lines with ids as fields, and never a credential."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from qgjob.logs import configure_logging, message_fields, redact, request_id_var


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_carry_the_request_id_and_the_message_fields(captured: io.StringIO) -> None:
    configure_logging(level="INFO", log_format="json", stream=captured)
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("app.api.workers").info(
            "group leased group_id=%s worker_id=%s key=%s jobs=%d", "g-1", "w-1", "acme/v1/emu", 3
        )
    finally:
        request_id_var.reset(token)
    logging.getLogger("app.reaper").warning("lease expired group_id=%s", "g-2")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "app.api.workers"
    assert first["request_id"] == "req-1"
    assert (first["group_id"], first["worker_id"], first["jobs"]) == ("g-1", "w-1", "3")
    assert first["message"].startswith("group leased")
    assert "request_id" not in second and second["group_id"] == "g-2"


def test_text_lines_are_plain_and_masked(captured: io.StringIO) -> None:
    configure_logging(level="INFO", log_format="text", stream=captured)
    logging.getLogger("x").info("calling with Authorization: Bearer qgj_abcdefghijklmnop")
    line = captured.getvalue()
    assert " INFO x: calling with Authorization: Bearer ***" in line
    assert "qgj_abcdefghijklmnop" not in line


def test_an_exception_in_json_is_one_line_and_masked(captured: io.StringIO) -> None:
    configure_logging(level="INFO", log_format="json", stream=captured)
    try:
        raise RuntimeError("connect to postgresql://qgjob:hunter2@db:5432/qgjob failed")
    except RuntimeError:
        logging.getLogger("y").exception("startup failed")
    (line,) = captured.getvalue().splitlines()
    entry = json.loads(line)
    assert "hunter2" not in line
    assert "postgresql://qgjob:***@db:5432/qgjob" in entry["exception"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("token=s3cr3t&x=1", "s3cr3t"),
        ("the token qgj_AAAAAAAAAAAAAAAA leaked", "qgj_AAAAAAAAAAAAAAAA"),
        ("installation ghs_0123456789abcdefghijABCD", "ghs_0123456789abcdefghijABCD"),
        ("postgres://u:pw@h/db", "pw@"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_message_fields_reads_key_value_pairs_only() -> None:
    fields = message_fields("job finished job_id=j1 outcome=passed reason='no device' x.y=z")
    assert fields == {"job_id": "j1", "outcome": "passed", "reason": "no device"}


def test_uvicorns_second_report_of_a_logged_exception_is_dropped() -> None:
    """A handled 500 is logged by the service with its method and path; Starlette then hands
    the exception to uvicorn, whose traceback of it would be the second one."""
    from qgjob.logs import LOGGED_MARK, not_logged_twice

    def record(name: str, error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            name, logging.ERROR, __file__, 1, "Exception in ASGI application", None,
            (type(error), error, None),
        )  # fmt: skip

    logged, fresh = RuntimeError("logged"), RuntimeError("fresh")
    setattr(logged, LOGGED_MARK, True)
    assert not not_logged_twice(record("uvicorn.error", logged))
    assert not_logged_twice(record("uvicorn.error", fresh))  # nobody logged this one
    assert not_logged_twice(record("app.errors", logged))  # the service's own line stays


async def test_the_service_marks_the_500s_it_logged() -> None:
    from starlette.requests import Request

    from app.errors import handle_unexpected
    from qgjob.logs import LOGGED_MARK

    error = RuntimeError("a bug")
    request = Request({"type": "http", "method": "GET", "path": "/v1/stats", "headers": []})
    answer = await handle_unexpected(request, error)
    assert answer.status_code == 500
    assert getattr(error, LOGGED_MARK) is True
