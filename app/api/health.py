"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database does)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.services import Services


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.state.services
    if services.stopping.is_set():
        return JSONResponse(
            {"error": {"code": "stopping", "message": "the server is shutting down"}},
            status_code=503,
        )
    try:
        async with asyncio.timeout(2):
            await services.pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, Exception) as exc:  # any failure means "not ready"
        return JSONResponse(
            {"error": {"code": "not_ready", "message": f"database unreachable: {exc}"}},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})
