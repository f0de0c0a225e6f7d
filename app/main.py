"""The qgjob service: a Starlette app whose lifespan owns the database and background work.

`create_app(settings)` builds it; `serve(settings)` runs it under uvicorn (what
`qgjob server` calls). `uvicorn app.main:app` serves the same app, configured from the
environment when it starts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import background
from app.api.routes import ENDPOINTS, api_routes
from app.auth import FailureLimit, TokenVerifier
from app.build_waits import sweep_forever
from app.database import DATABASE_ERRORS, TxConn, create_pool
from app.embedded import EmbeddedPostgres, start_embedded
from app.errors import EXCEPTION_HANDLERS
from app.github.service import DetailsUrl, running_github
from app.github.tokens import GitHubSourceAccess
from app.links import run_details_url
from app.local_token import ensure_local_token
from app.metering import MeteredTransport
from app.metrics import Metrics
from app.migrations import migrate
from app.observability import ObservabilityMiddleware
from app.openapi import build_openapi
from app.policy import policy_from_settings
from app.reaper import reap_forever
from app.sanity import RefuseControlCharacters
from app.schema import missing_migrations
from app.services import Services
from app.sources import NoSourceAccess, SourceAccess
from app.storage import LocalBlobStorage
from app.wakeups import Wakeups, listen_forever
from app.web.routes import CompressPages, web_routes
from qgjob import __version__
from qgjob.listening import CannotListen, bind_listener
from qgjob.logs import configure_logging
from qgjob.settings import Settings

logger = logging.getLogger(__name__)
# An upload's temporary file untouched this long belongs to an upload that died.
STALE_UPLOAD_S = 24 * 3600.0


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    source_access: SourceAccess | None = None,
    github_details_url: DetailsUrl | None = None,
) -> Starlette:
    """The ASGI app. Its lifespan sets up the database and background loops, from
    `settings` or, when there are none, from `QGJOB_*` variables read as it starts; given
    `services` already running (as `serve` does), it uses those instead. `source_access`
    hands workers tokens to read run repositories (default: none)."""
    openapi = build_openapi(ENDPOINTS, version=__version__)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if services is not None:
            yield {"services": services}
            return
        resolved = settings if settings is not None else Settings.from_env()
        async with running_services(
            resolved, source_access=source_access, github_details_url=github_details_url
        ) as started:
            yield {"services": started}

    routes = [*api_routes(), Route("/openapi.json", openapi_json, methods=["GET"]), *web_routes()]
    return Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(ObservabilityMiddleware),
            Middleware(RefuseControlCharacters),
            Middleware(CompressPages),
        ],
        lifespan=lifespan,
    )


def signed_run_links(settings: Settings) -> DetailsUrl:
    """Check runs link to their run's signed, read-only page, which opens without signing in."""

    def details_url(run_id: str, org_id: str) -> str:
        return run_details_url(settings, org_id, run_id)

    return details_url


@asynccontextmanager
async def running_services(
    settings: Settings,
    *,
    source_access: SourceAccess | None = None,
    github_details_url: DetailsUrl | None = None,
) -> AsyncIterator[Services]:
    """Database (embedded unless QGJOB_DATABASE_URL is set), migrations, local token, and
    the GitHub App's loops when it is configured (which then grants workers source tokens
    unless `source_access` says otherwise)."""
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is None:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir)
        dsn = embedded.dsn
    else:
        dsn = settings.database_url.reveal()
    try:
        pool = await connect(dsn, settings=settings)
        try:
            async with pool.acquire() as conn:
                await prepare_schema(conn, migrate_on_start=settings.migrate_on_start)
            await ensure_local_token(pool, settings.local_token_path)
            where = (
                f"embedded PostgreSQL in {embedded.pgdata}" if embedded else "QGJOB_DATABASE_URL"
            )
            logger.info("qgjob %s ready database=%s", __version__, where)
            wakeups = Wakeups()
            metrics = Metrics()
            storage = LocalBlobStorage(settings.data_dir / "builds")
            await storage.clear_stale_uploads(older_than_s=STALE_UPLOAD_S)
            loops = [
                background.start("listen", lambda: listen_forever(dsn, wakeups)),
                background.start(
                    "reaper",
                    lambda: reap_forever(
                        pool,
                        interval_s=settings.reaper_interval_s,
                        backoff_s=settings.retry_backoff_s,
                        offline_after_s=settings.lease_ttl_s,
                        metrics=metrics,
                    ),
                ),
                background.start(
                    "build-waits",
                    lambda: sweep_forever(
                        pool,
                        interval_s=settings.build_sweep_interval_s,
                        wait_s=settings.build_wait_s,
                        live_within_s=settings.lease_ttl_s,
                    ),
                ),
            ]
            try:
                async with running_github(
                    settings,
                    pool,
                    dsn=dsn,
                    details_url=github_details_url or signed_run_links(settings),
                    transport=MeteredTransport(metrics),
                ) as github:
                    if source_access is None and github is not None:
                        source_access = GitHubSourceAccess(github)
                    yield Services(
                        settings=settings,
                        pool=pool,
                        tokens=TokenVerifier(
                            pool,
                            limit=FailureLimit(
                                max_failures=settings.auth_failures_max,
                                window_s=settings.auth_failures_window_s,
                            ),
                        ),
                        wakeups=wakeups,
                        policy=policy_from_settings(settings),
                        metrics=metrics,
                        storage=storage,
                        source_access=source_access or NoSourceAccess(),
                        github=github,
                    )
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        finally:
            await pool.close()
            logger.info("stopped: background loops ended, database pool closed")
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


class StartupError(Exception):
    """The service cannot start; the message says why, in one line."""


async def prepare_schema(conn: TxConn, *, migrate_on_start: bool) -> None:
    """Migrate, or (when a separate `qgjob migrate` step owns that) check it was done."""
    if migrate_on_start:
        await migrate(conn)
        return
    missing = await missing_migrations(conn)
    if missing:
        raise StartupError(
            f"the database lacks migrations {', '.join(map(str, missing))} "
            "and QGJOB_MIGRATE_ON_START is false: run `qgjob migrate` first"
        )


async def connect(dsn: str, *, settings: Settings) -> asyncpg.Pool:
    """A pool, retrying while the database is not reachable yet (it may be starting too)."""
    where = describe_dsn(dsn)
    deadline = time.monotonic() + settings.db_connect_timeout_s
    delay_s = 0.2
    while True:
        try:
            return await create_pool(dsn, size=settings.db_pool_size)
        except DATABASE_ERRORS as exc:
            if time.monotonic() + delay_s > deadline:
                raise StartupError(
                    f"cannot connect to PostgreSQL at {where}: {exc or type(exc).__name__} "
                    f"(gave up after {settings.db_connect_timeout_s:g}s; "
                    "check QGJOB_DATABASE_URL, or unset it to use the embedded database)"
                ) from exc
            logger.warning("database not reachable yet at %s: %s; retrying", where, exc)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


def describe_dsn(dsn: str) -> str:
    """host:port/database of a DSN, without its credentials."""
    parts = urlsplit(dsn)
    host = parts.hostname or parse_qs(parts.query).get("host", ["local socket"])[0]
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def serve(settings: Settings) -> None:
    """Run the service in the foreground until SIGINT/SIGTERM (then exit 0).

    The database comes up before the HTTP server, so that a failure to start is one clear
    `StartupError` for the CLI to print rather than a traceback from the ASGI lifespan.

    Shutdown is graceful: on the signal the listening socket closes, `/readyz` answers 503,
    claims that are long-polling answer 204 at once, requests in flight get up to
    `QGJOB_SHUTDOWN_GRACE_S` to finish; then the background loops are cancelled and awaited,
    the pool is closed, and the embedded database (if any) is stopped.
    """
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    try:  # before the database starts, so that a port in use costs nothing
        listener = bind_listener(settings.host, settings.port)
    except CannotListen as exc:
        raise StartupError(str(exc)) from None
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was there before it; make that handler end the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    with listener:
        asyncio.run(_serve(settings, listener))


class _Server(uvicorn.Server):
    """uvicorn's server, telling the services as soon as a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, *, services: Services) -> None:
        super().__init__(config)
        self._services = services

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._services.stopping.is_set():
            logger.info("shutting down signal=%s", signal.Signals(sig).name)
        self._services.begin_shutdown()
        super().handle_exit(sig, frame)


async def _serve(settings: Settings, listener: socket.socket) -> None:
    async with running_services(settings) as services:
        config = uvicorn.Config(
            create_app(settings, services=services),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # keep configure_logging's handler and format
            access_log=False,
            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        )
        server = _Server(config, services=services)
        _freeze_startup_heap()
        await server.serve(sockets=[listener])
        if not server.started:
            raise StartupError(f"could not listen on {settings.host}:{settings.port}")


def _freeze_startup_heap() -> None:
    """Take what starting made (modules, routes, the OpenAPI document, pools), which lives as
    long as the process, out of the cyclic collector's reach: a full collection then scans
    only what serving made since. It runs on the event loop, so it stalls every request in
    flight: 35-55 ms before, about 7 ms after (bench/README.md, webhook acknowledgements)."""
    gc.collect()
    gc.freeze()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


app = create_app()
