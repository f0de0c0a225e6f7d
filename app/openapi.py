"""The OpenAPI 3.1 document, generated from the route table and the pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.routes import Endpoint
from app.api.schemas import ErrorBody

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Malformed request (bad JSON)",
    401: "Missing or invalid token",
    403: "The token may not do this",
    404: "Not found (or belongs to another org)",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Invalid field",
    429: "Too many failed authentications from this client (see Retry-After)",
    503: "Not ready, or the database is unavailable right now (see Retry-After)",
}
# Every route may answer these whatever it does: a control character in its path (400) or
# query (422), an unknown query parameter (422) (app/sanity.py, app/api/routes.py); and every
# route that takes a token, too many failed authentications (429) or no database (503).
_ANY_ROUTE = (400, 422)
_ANY_AUTHENTICATED = (429, 503)


def build_openapi(endpoints: tuple[Endpoint, ...], *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody}
    for e in endpoints:
        models.update(m for m in (e.request, e.response) if m is not None)
    _, schemas = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qgjob",
            "version": version,
            "description": "Queue, group and dispatch AppWright mobile end-to-end tests.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": e.summary,
        "operationId": f"{e.method.lower()}_{e.path.strip('/').replace('/', '_')}".replace("{", "")
        .replace("}", "")
        .replace("-", "_"),
        "tags": [e.tag],
        "responses": {},
    }
    if e.deprecated:
        op["deprecated"] = True
    if e.public:
        op["security"] = []
    if e.params:
        op["parameters"] = [_param(p) for p in e.params]
    if e.request is not None:
        content: dict[str, Any] = {"application/json": {"schema": {"$ref": _ref(e.request)}}}
        if e.raw_body is not None:
            content[e.raw_body] = {"schema": {"type": "string", "format": "binary"}}
        op["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "OK" if e.status == 200 else "Created"}
    if e.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _ref(e.response)}}}
    elif e.text:
        ok["content"] = {e.text_type: {"schema": {"type": "string"}}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    op["responses"][str(e.status)] = ok
    for status in e.also_ok:
        op["responses"][str(status)] = {**ok, "description": "OK"}
    if e.no_content:
        op["responses"]["204"] = {"description": "Nothing to do before the wait ran out"}
    errors = (*e.errors, *_ANY_ROUTE, *(() if e.public else _ANY_AUTHENTICATED))
    for status in sorted(set(errors)):
        op["responses"][str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": _ref(ErrorBody)}}},
        }
    return op


def _ref(model: type[BaseModel]) -> str:
    return _REF.format(model=model.__name__)


def _param(p: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.schema_type}
    if p.schema_format:
        schema["format"] = p.schema_format
    if p.enum:
        schema["enum"] = list(p.enum)
    limits = {
        "minimum": p.minimum,
        "maximum": p.maximum,
        "pattern": p.pattern,
        "minLength": p.min_length,
        "maxLength": p.max_length,
    }
    schema |= {name: value for name, value in limits.items() if value is not None}
    return {
        "name": p.name,
        "in": p.where,
        "required": p.where == "path",
        "description": p.description,
        "schema": schema,
    }
