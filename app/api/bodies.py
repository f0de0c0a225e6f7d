"""Reading request bodies: size limit, JSON decoding, validation into a model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from app.errors import BadRequest, InvalidInput, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object")
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BadRequest("request body is not valid JSON: it is nested too deeply") from None


def _not_json(name: str) -> Any:
    """NaN and Infinity, which Python's JSON reader accepts and JSON does not have."""
    raise ValueError(f"{name} is not a JSON value")


def validate(model: type[M], data: Any) -> M:
    """`data` as `model`, or InvalidInput naming the first offending field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"request body must be a JSON object, got {type(data).__name__}")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc
    where = unstorable(parsed.model_dump(), "")
    if where is not None:
        raise InvalidInput(
            f"{where or 'body'}: text must not contain NUL characters or unpaired surrogates",
            field=where or None,
        )
    return parsed


def unstorable(value: Any, path: str) -> str | None:
    """The path of the first string PostgreSQL cannot store (NUL, an unpaired surrogate)."""
    if isinstance(value, str):
        return path if "\x00" in value or not _encodable(value) else None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and unstorable(key, path) is not None:
                return f"{path}.{key!r}".lstrip(".")
            items.append((f"{path}.{key}".lstrip("."), item))
    elif isinstance(value, list | tuple):
        items = [(f"{path}.{i}".lstrip("."), item) for i, item in enumerate(value)]
    for where, item in items:
        found = unstorable(item, where)
        if found is not None:
            return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_input(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif kind == "missing":
        message = f"field {field!r} is required"
    elif kind == "enum":
        expected = first.get("ctx", {}).get("expected", "")
        message = f"{field} must be one of {expected}; got {first.get('input')!r}"
    else:
        detail = first["msg"].removeprefix("Value error, ")
        message = detail if field and detail.startswith(field) else f"{field}: {detail}"
    return InvalidInput(message, field=field)


async def parse(request: Request, model: type[M], *, limit: int) -> M:
    return validate(model, decode_json(await read_body(request, limit=limit)))
