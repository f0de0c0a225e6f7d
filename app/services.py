"""What the lifespan builds and hands to every handler through `request.state.services`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.auth import TokenVerifier
from app.github.service import GitHubApp
from app.wakeups import Wakeups
from qgjob.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    tokens: TokenVerifier
    wakeups: Wakeups
    github: GitHubApp | None = None  # None: the GitHub App is not configured
