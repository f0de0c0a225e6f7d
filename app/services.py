"""What the lifespan builds and hands to every handler through `request.state.services`."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from app.auth import TokenVerifier
from app.sources import NoSourceAccess, SourceAccess
from app.storage import BlobStorage
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
