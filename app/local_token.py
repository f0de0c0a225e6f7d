"""The local admin token: lets the `qgjob` CLI on the server's host work with no set-up.

The server keeps one fleet-wide admin token in `<QGJOB_DATA_DIR>/admin.token` (mode 600).
Anyone who can read that file can already read the database files next to it, so it grants
nothing new; the CLI reads it when no `--token` / `QGJOB_TOKEN` is given.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import asyncpg

from app.store.tokens import create_token, find_token
from qgjob.types import Role

logger = logging.getLogger(__name__)


async def ensure_local_token(pool: asyncpg.Pool, path: Path) -> None:
    """Keep the token in `path` valid, minting and writing a new one when it is not."""
    existing = await asyncio.to_thread(read_token, path)
    if existing and await find_token(pool, existing) is not None:
        return
    raw, principal = await create_token(pool, org_id=None, role=Role.ADMIN, name="local admin")
    await asyncio.to_thread(write_private, path, raw + "\n")
    logger.info("wrote local admin token path=%s token_id=%s", path, principal.token_id)


def read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
