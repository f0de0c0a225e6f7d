"""`GitHubApp`: what the service holds when the GitHub App is configured, and its loops.

`running_github(settings, pool, dsn=…)` yields None when the App is not configured (the
webhook route then answers 503 and no loop starts); otherwise a `GitHubApp` whose inbox,
tracker, outbox and retention loops run until the context exits, and whose `intake`
records deliveries for the webhook route through a small pool of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import httpx

from app import background
from app.database import create_pool
from app.github.intake import WRITERS, Intake
from app.wakeups import Wakeups
from github_app.client import GitHubClient
from github_app.routing import Router
from qgjob.settings import Secret, Settings, SettingsError

logger = logging.getLogger(__name__)

# (run_id, org_id) → the page a check run's Details link opens.
DetailsUrl = Callable[[str, str], str]
OUTBOX_SLOTS = 4  # installations written to at once by one replica
INBOX_SLOTS = 4  # deliveries processed at once by one replica


def default_details_url(base_url: str) -> DetailsUrl:
    """`{QGJOB_PUBLIC_URL}/ui/runs/{run_id}`."""
    base = base_url.rstrip("/")

    def details_url(run_id: str, org_id: str) -> str:
        return f"{base}/ui/runs/{run_id}"

    return details_url


@dataclass
class GitHubApp:
    settings: Settings
    pool: asyncpg.Pool
    client: GitHubClient
    details_url: DetailsUrl
    inbox_wakeups: Wakeups = field(default_factory=Wakeups)
    outbox_wakeups: Wakeups = field(default_factory=Wakeups)
    clock: Callable[[], float] = time.time
    router: Router = field(default_factory=Router)  # filled by `running_github`
    # The webhook route's own connections (`running_github`); `pool` when there are none.
    ack_pool: asyncpg.Pool | None = None
    intake: Intake = field(init=False)

    def __post_init__(self) -> None:
        self.intake = Intake(self.ack_pool if self.ack_pool is not None else self.pool)

    @property
    def webhook_secret(self) -> str:
        secret = self.settings.github_webhook_secret
        return secret.reveal() if secret is not None else ""

    @property
    def app_id(self) -> int | None:
        raw = self.settings.github_app_id or ""
        return int(raw) if raw.isdigit() else None  # a client id is not a number


def private_key(settings: Settings) -> Secret:
    """The App's private key, from QGJOB_GITHUB_PRIVATE_KEY or the file it names."""
    if settings.github_private_key:
        return settings.github_private_key
    path = settings.github_private_key_path
    assert path is not None
    try:
        return Secret(path.read_text())
    except OSError as exc:
        raise SettingsError(
            f"QGJOB_GITHUB_PRIVATE_KEY_PATH: cannot read {path}: {exc.strerror or exc}"
        ) from exc


@asynccontextmanager
async def running_github(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    dsn: str,
    details_url: DetailsUrl | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[GitHubApp | None]:
    """The GitHub App and its background loops, or None when it is not configured."""
    if not settings.github_enabled:
        logger.info("GitHub App not configured; POST /github/webhooks answers 503")
        yield None
        return
    from app.github.handlers import build_router
    from app.github.inbox import process_forever
    from app.github.outbox import send_forever
    from app.github.retention import sweep_forever
    from app.github.tracker import track_forever

    assert settings.github_app_id is not None
    client = GitHubClient(
        app_id=settings.github_app_id,
        private_key=private_key(settings),
        base_url=settings.github_api_url,
        transport=transport,
        timeout_s=settings.github_timeout_s,
    )
    # The route's INSERTs never wait for a connection behind the loops' work (the outbox
    # holds one across a GitHub request). Its connections stay open when idle, so a burst
    # after a quiet hour does not begin by connecting.
    ack_pool = await create_pool(dsn, size=WRITERS, max_inactive_connection_lifetime=0)
    app = GitHubApp(
        settings=settings,
        pool=pool,
        client=client,
        details_url=details_url or default_details_url(settings.details_base_url),
        ack_pool=ack_pool,
    )
    app.router = build_router(app)
    tasks = [
        background.start("github-tracker", lambda: track_forever(app)),
        background.start("github-inbox", lambda: process_forever(app, slots=INBOX_SLOTS)),
        background.start("github-retention", lambda: sweep_forever(app)),
    ]
    tasks += [
        background.start(f"github-outbox-{n}", lambda: send_forever(app))
        for n in range(OUTBOX_SLOTS)
    ]
    logger.info("GitHub App on app_id=%s api=%s", settings.github_app_id, settings.github_api_url)
    try:
        yield app
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await client.aclose()
        await app.intake.aclose()
        await ack_pool.close()
