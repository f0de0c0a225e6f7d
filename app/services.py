"""What the lifespan builds and hands to every handler through `request.state.services`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from app.auth import TokenVerifier
from app.github.service import GitHubApp
from app.metrics import Metrics
from app.policy import Policy
from app.sources import NoSourceAccess, SourceAccess
from app.storage import BlobStorage
from app.store.claim_turns import ClaimTurns
from app.wakeups import Wakeups
from qgjob.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    tokens: TokenVerifier
    wakeups: Wakeups
    storage: BlobStorage
    # Who hands workers a token to read a run's repository (the GitHub App fills this in).
    source_access: SourceAccess = field(default_factory=NoSourceAccess)
    policy: Policy = field(default_factory=Policy)
    metrics: Metrics = field(default_factory=Metrics)
    # Set when the server begins a graceful shutdown: long-polls answer at once, readyz says 503.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    github: GitHubApp | None = None  # None: the GitHub App is not configured
    # Claims of this process that arrive together share a turn of the claim lock.
    claims: ClaimTurns = field(init=False)

    def __post_init__(self) -> None:
        self.claims = ClaimTurns(self.pool, on_turn=self.metrics.observe_claim_turn)

    def begin_shutdown(self) -> None:
        self.stopping.set()
        self.wakeups.wake()
