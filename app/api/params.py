"""Path and query parameters: parsed into typed values or refused with a clear 422."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TypeVar

from starlette.requests import Request

from app.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    raw = request.path_params[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a UUID, got {raw!r}", field=name) from None


def query_uuid(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a UUID, got {raw!r}", field=name) from None


def query_enum(request: Request, name: str, kind: type[E]) -> E | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    for member in kind:
        if member.value.lower() == raw.lower():
            return member
    accepted = ", ".join(m.value for m in kind)
    raise InvalidInput(f"{name} must be one of {accepted}; got {raw!r}", field=name)


def query_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}", field=name)
    return value


def query_str(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None
