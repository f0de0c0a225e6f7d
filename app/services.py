"""What the lifespan builds and hands to every handler through `request.state.services`."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from app.auth import TokenVerifier
from app.policy import Policy
from app.wakeups import Wakeups
from qgjob.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    tokens: TokenVerifier
    wakeups: Wakeups
    policy: Policy = field(default_factory=Policy)
