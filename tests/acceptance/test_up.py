"""`qgjob up` as a newcomer runs it: the server and one SIMULATED worker per target, then the
README's submit, and a BrowserStack run, to the end. Real processes throughout: the server,
the workers with the real executors, fake adb, fake AppWright and the fake BrowserStack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_cli
from tests.support.servers import REPO, child_env, free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(240)]


def wait_for(check: object, *, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def test_up_runs_the_readme_submit_on_simulated_workers(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = child_env(
        {
            "QGJOB_DATABASE_URL": database_url,
            "QGJOB_DATA_DIR": str(tmp_path / "data"),
            "QGJOB_ADB": str(tmp_path / "no-adb-here"),  # simulated, whatever this host has
        }
    )
    for name in ("BROWSERSTACK_USERNAME", "BROWSERSTACK_ACCESS_KEY"):
        env.pop(name, None)
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "qgjob", "up", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Press Ctrl-C" in out.read_text() or up.poll() is not None, what="up")
        banner = out.read_text()
        assert up.poll() is None, banner
        for name in ("simulated-emulator", "simulated-device", "simulated-browserstack"):
            assert f"{name}" in banner
        assert banner.count("SIMULATED") >= 4, banner
        # Not the default port or data dir: the banner says how to reach this server.
        exports = f"export QGJOB_SERVER_URL=http://127.0.0.1:{port} QGJOB_DATA_DIR={tmp_path}/data"
        assert exports in banner, banner
        cli = {**env, "QGJOB_SERVER_URL": f"http://127.0.0.1:{port}"}
        readme = run_cli(
            "submit",
            "--org-id=qualgent",
            "--app-version-id=xyz123",
            "--test=tests/onboarding.spec.js",
            "--json",
            env=cli,
        )
        assert readme.code == 0, readme.stderr
        cloud = run_cli(
            "submit",
            "--org-id=qualgent",
            "--app-version-id=xyz123",
            "--target=browserstack",
            "--test=tests/search.spec.ts",
            "--json",
            env=cli,
        )
        assert cloud.code == 0, cloud.stderr
        for submitted, outcome in ((readme, "passed"), (cloud, "flaky")):
            job_id = submitted.json()["jobs"][0]["job_id"]
            watched = run_cli("status", f"--job-id={job_id}", "--watch", env=cli, timeout_s=150)
            assert watched.code == 0, watched.stdout + watched.stderr
            shown = run_cli("status", f"--job-id={job_id}", "--json", env=cli).json()
            assert (shown["status"], shown["outcome"]) == ("COMPLETED", outcome)
        log = (tmp_path / "data" / "logs" / "simulated-emulator.log").read_text()
        assert "SIMULATED: no build uploaded" in log
        # The run page's read-only link leads to this server, not to the default port.
        admin = (tmp_path / "data" / "admin.token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
            signed = browser.post("/ui/login", data={"token": admin, "next": "/ui"})
            assert signed.status_code == 303, signed.text
            page = browser.get(f"/ui/runs/{readme.json()['run_id']}").text
        assert f"http://127.0.0.1:{port}/ui/runs/{readme.json()['run_id']}?view=" in page
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    assert code == 0, out.read_text()[-3000:]


def test_a_port_in_use_is_one_line_and_nothing_is_started(tmp_path: Path) -> None:
    """Before, `up` started its server anyway, took the other server's /readyz answer for
    its own, printed "✓ qgjob is up" and only then failed."""
    env = child_env({"QGJOB_DATA_DIR": str(tmp_path / "data")})
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        up = run_cli("up", "--port", str(port), env=env)
        server = run_cli("server", "--port", str(port), env=env)
    in_use = f"port {port} is already in use (another qgjob server?)"
    assert up.code == 2 and up.stdout == "", up.stdout
    assert up.stderr.startswith("Error: cannot listen on 127.0.0.1:") and in_use in up.stderr
    assert server.code == 1 and in_use in server.stderr, server.stderr
    assert "Traceback" not in up.stderr + server.stderr
    assert not (tmp_path / "data" / "pgdata").exists()  # no database started for nothing
    assert not (tmp_path / "data" / "logs").exists()
