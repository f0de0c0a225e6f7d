"""Tokens are hashed at rest, and no token or secret ever reaches a log.

The log test runs the real thing: a `qgjob server` process (DEBUG logging, a database URL
carrying a password) and a `qgjob worker` process, a submit, a run to completion, a cancel,
failed authentications with look-alike tokens. Then every log line either process wrote is
searched for every raw token, the tokens' hashes, and the database password.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from app.store.tokens import new_raw_token
from tests.conftest import Api
from tests.support.crew import Crew, ended, new_token
from tests.support.servers import ServerProcess, child_env, free_port
from tests.support.waiting import eventually
from tests.support.workers import run_cli_async

DB_PASSWORD = "pw-4f1e9c-never-log-me"


async def _every_text_in_the_database(pool: asyncpg.Pool) -> str:
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    texts = []
    for t in tables:
        rows = await pool.fetch(f'SELECT row_to_json(x)::text AS j FROM "{t["tablename"]}" x')
        texts += [r["j"] for r in rows]
    return "\n".join(texts)


async def test_tokens_are_stored_only_as_sha256_hashes(api: Api, pool: asyncpg.Pool) -> None:
    raws = [await api.token("acme", role) for role in ("submitter", "admin", "worker")]
    raws.append(api.admin_token)
    stored = {bytes(r["token_hash"]) for r in await pool.fetch("SELECT token_hash FROM api_tokens")}
    assert {hashlib.sha256(raw.encode()).digest() for raw in raws} <= stored
    everything = await _every_text_in_the_database(pool)
    for raw in raws:
        assert raw not in everything
        assert raw.removeprefix("qgj_") not in everything
    columns = await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_tokens'"
    )
    assert {c["column_name"] for c in columns} >= {"token_hash"}
    assert not {c["column_name"] for c in columns} & {"token", "raw", "raw_token", "secret"}


def _with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}{port}"))


async def test_no_token_or_secret_in_any_log(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path, crew: Crew
) -> None:
    # The test cluster trusts local connections: the password is carried, never checked.
    dsn = _with_password(database_url, DB_PASSWORD)
    env = child_env(
        {
            "QGJOB_DATABASE_URL": dsn,
            "QGJOB_DATA_DIR": str(tmp_path / "data"),
            "QGJOB_LOG_LEVEL": "DEBUG",
            "QGJOB_LEASE_TTL_S": "5",
            "QGJOB_HEARTBEAT_INTERVAL_S": "0.5",
        }
    )
    server = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    try:
        admin = (tmp_path / "data" / "admin.token").read_text().strip()
        submitter = await new_token(server.url, admin, "acme", "submitter")
        worker_token = await new_token(server.url, admin, "acme", "worker")
        cli_env = child_env({"QGJOB_SERVER_URL": server.url, "QGJOB_TOKEN": submitter})
        submitted = await run_cli_async(
            "submit",
            "--org-id=acme",
            "--app-version-id=v1",
            "--test=t/a.ts",
            "--json",
            "--test=t/b.ts",
            env=cli_env,
        )
        assert submitted.code == 0, submitted.stderr
        worker = await crew.start(
            "w",
            url=server.url,
            token=worker_token,
            command="echo ran {test_path}",
            env_extra={"QGJOB_LOG_LEVEL": "DEBUG"},
        )
        await eventually(lambda: ended(pool, 2), what="both jobs to end")
        # Failed authentications, with look-alikes of real tokens.
        forged = [new_raw_token(), submitter[:-4] + "AAAA", "Bearer " + submitter]
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for bad in forged:
                answer = await client.get("/v1/stats", headers={"Authorization": f"Bearer {bad}"})
                assert answer.status_code == 401
        wrong = await run_cli_async("stats", env={**cli_env, "QGJOB_TOKEN": forged[0]})
        assert wrong.code == 1
        worker.send(signal.SIGTERM)
        assert await worker.wait() == 0
    finally:
        server.stop()
    secrets = {
        "admin token": admin,
        "submitter token": submitter,
        "worker token": worker_token,
        **{f"forged token {i}": f for i, f in enumerate(forged)},
        "database password": DB_PASSWORD,
    }
    for raw in (admin, submitter, worker_token):
        secrets[f"hash of {raw[:6]}…"] = hashlib.sha256(raw.encode()).hexdigest()
    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    assert set(logs) >= {"server.log", "w.log"}
    assert "authentication failed" in logs["server.log"]
    found = [
        (what, name) for what, s in secrets.items() for name, text in logs.items() if s in text
    ]
    assert found == [], f"secrets in logs: {found}"
