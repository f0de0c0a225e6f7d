"""`qgjob up`: the server plus one simulated worker per target, for trying qgjob out.

The workers are real `qgjob worker` processes with the `local` executor. What they run is
simulated: the repo's stand-in for AppWright (`tests/standins/fake_npx.py`, which decides
each spec's outcome from `// qgjob-fake:` comments in it) against the `examples/` project,
and the "install" writes a placeholder build. Everything this command prints says so. On a
host with adb or BrowserStack, run `qgjob server` and real `qgjob worker`s instead.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from qgjob.cli.context import reporting_errors, settings_of
from qgjob.cli.inputs import BadInput
from qgjob.settings import Settings
from qgjob.types import Target

app = typer.Typer()

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FAKE_NPX = REPO / "tests" / "standins" / "fake_npx.py"
PROJECTS = {
    Target.EMULATOR: "android-emulator",
    Target.DEVICE: "android-device",
    # The simulated BrowserStack worker plays the specs locally, like the others.
    Target.BROWSERSTACK: "android-emulator",
}


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option("--port", help="Server port.")] = None,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="Start the simulated workers.")
    ] = True,
) -> None:
    """Start the server and one simulated worker per target; Ctrl-C stops them all."""
    with reporting_errors():
        settings = settings_of(ctx)
        if port is not None:
            if not 0 < port < 65536:
                raise BadInput(f"--port must be between 1 and 65535 (got {port})")
            settings = dataclasses.replace(
                settings, port=port, server_url=f"http://127.0.0.1:{port}"
            )
        if workers and not FAKE_NPX.exists():
            raise BadInput(
                "the simulated workers need the qgjob repository checkout (tests/standins); "
                "run `qgjob up --no-workers`, or start real `qgjob worker`s"
            )
        raise typer.Exit(_supervise(settings, with_workers=workers))


def _supervise(settings: Settings, *, with_workers: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    env = {**os.environ, "QGJOB_DATA_DIR": str(settings.data_dir)}
    children: list[subprocess.Popen[bytes]] = []
    server = _spawn(
        [sys.executable, "-m", "qgjob", "server", "--port", str(settings.port)],
        env=env,
        log=log_dir / "server.log",
    )
    children.append(server)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not _wait_ready(settings.server_url, server, timeout_s=120):
            typer.echo(f"Error: the server did not start; see {log_dir / 'server.log'}", err=True)
            return 1
        names = []
        if with_workers:
            worker_env = {
                **env,
                "QGJOB_SERVER_URL": settings.server_url,
                "QGJOB_TOKEN": settings.local_token_path.read_text().strip(),
            }
            for target in Target:
                name = f"simulated-{target.value}"
                children.append(
                    _spawn(
                        _worker_command(target, name, settings),
                        env=worker_env,
                        log=log_dir / f"{name}.log",
                        cwd=EXAMPLES,
                    )
                )
                names.append(name)
        _banner(settings, names, log_dir)
        while not stop:
            if server.poll() is not None:
                typer.echo(f"Error: the server stopped; see {log_dir / 'server.log'}", err=True)
                return 1
            time.sleep(0.2)
        typer.echo("Stopping: workers drain, then the server stops…")
        return 0
    finally:
        for child in reversed(children):  # workers first, the server last
            _stop(child)


def _worker_command(target: Target, name: str, settings: Settings) -> list[str]:
    builds = settings.data_dir / "simulated-builds"
    build = f"{builds}/{{app_version_id}}.apk"
    install = (
        f'{shlex.quote(sys.executable)} -c "import pathlib, sys; p = pathlib.Path(sys.argv[1]); '
        f"p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b'simulated build')\" "
        f"{shlex.quote(build)}"
    )
    run = (
        f"QGJOB_BUILD_PATH={shlex.quote(build)} {shlex.quote(sys.executable)} "
        f'{shlex.quote(str(FAKE_NPX))} appwright test "$PWD"/{{test_path}} '
        f"--project {PROJECTS[target]} --reporter=list,json --retries 1"
    )
    return [
        sys.executable,
        "-m",
        "qgjob",
        "worker",
        "--target",
        target.value,
        "--name",
        name,
        "--executor",
        "local",
        "--prepare-command",
        install,
        "--command",
        run,
    ]


def _spawn(
    argv: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_ready(url: str, server: subprocess.Popen[bytes], *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(child: subprocess.Popen[bytes], *, timeout_s: float = 30) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _banner(settings: Settings, workers: list[str], log_dir: Path) -> None:
    database = (
        "QGJOB_DATABASE_URL"
        if settings.database_url
        else (f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}")
    )
    lines = [
        "✓ qgjob is up",
        f"  server   {settings.server_url}   ({database})",
        f"  logs     {log_dir}",
    ]
    if workers:
        lines += [
            f"  workers  {', '.join(workers)}",
            "           SIMULATED devices: no emulator, device or BrowserStack is used. Each",
            "           spec in examples/ is played by qgjob's stand-in for AppWright, which",
            "           reads its outcome from the spec's `// qgjob-fake:` comments.",
        ]
    lines += [
        "",
        "Try, in another terminal (source .venv/bin/activate first):",
        "  qgjob submit --org-id=qualgent --app-version-id=xyz123 "
        "--test=tests/onboarding.spec.ts --test=tests/login.spec.ts --test=tests/search.spec.ts",
        "  qgjob status --run-id=<run id> --watch",
        "  qgjob workers",
        "",
        "Press Ctrl-C to stop.",
    ]
    typer.echo("\n".join(lines))
