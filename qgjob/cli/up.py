"""`qgjob up`: the server plus one worker per target, for trying qgjob out.

The workers are real `qgjob worker` processes with the real executors (`--executor adb` for
emulator and device, `--executor browserstack`), running the specs of `examples/`. What they
drive depends on the host, and the banner says which:

- SIMULATED (the default on a laptop): the repository's stand-ins. Fake adb
  (`tests/standins/fake_adb.py`) with an emulator and a device in a state file under the
  data dir, fake AppWright (`tests/standins/fake_npx.py`, which reads each spec's outcome
  from its `// qgjob-fake:` comments) and the fake BrowserStack server, started here. Groups
  without an uploaded build get a placeholder build (`--allow-missing-build`).
- REAL: `adb` on PATH (or `QGJOB_ADB`) listing an emulator or a device drives that one, and
  `BROWSERSTACK_USERNAME` / `BROWSERSTACK_ACCESS_KEY` drive BrowserStack, with `npx`
  AppWright in examples/ (run `npm install` there first). Real workers need uploaded builds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import httpx
import typer

from qgjob.cli.context import reporting_errors, settings_of
from qgjob.cli.inputs import BadInput
from qgjob.listening import CannotListen, bind_listener, local_url
from qgjob.settings import Settings, default_data_dir
from qgjob.types import Target

app = typer.Typer()

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STANDINS = REPO / "tests" / "standins"
FAKE_NPX = STANDINS / "fake_npx.py"
FAKE_ADB = STANDINS / "fake_adb.py"
SIMULATED_DEVICES = {Target.EMULATOR: "emulator-5554", Target.DEVICE: "R58M40SIMUL"}
SIMULATED_BROWSERSTACK = ("qgjob-simulated", "simulated-access-key")


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """One worker `qgjob up` starts: its name, what it says it drives, its command line."""

    name: str
    target: Target
    simulated: bool
    drives: str
    args: list[str]
    env: dict[str, str]


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option("--port", help="Server port (default: QGJOB_PORT or 8000).")
    ] = None,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="Start one worker per target (SIMULATED unless this host has the real thing).",
        ),
    ] = True,
) -> None:
    """Start the server and one worker per target, SIMULATED where this host has no real one.

    An adb emulator or device, or BROWSERSTACK_USERNAME and BROWSERSTACK_ACCESS_KEY, make
    that target's worker REAL. Ctrl-C stops them all.
    """
    with reporting_errors():
        settings = settings_of(ctx)
        if port is not None and not 0 < port < 65536:
            raise BadInput(f"--port must be between 1 and 65535 (got {port})")
        port = settings.port if port is None else port
        # The server this starts, whatever QGJOB_SERVER_URL says: the workers and the
        # readiness check must reach this one.
        settings = dataclasses.replace(
            settings, port=port, server_url=local_url(settings.host, port)
        )
        if workers and not FAKE_NPX.exists():
            raise BadInput(
                "the simulated workers need the qgjob repository checkout (tests/standins); "
                "run `qgjob up --no-workers`, or start real `qgjob worker`s"
            )
        try:  # a server already on the port would answer the readiness check for ours
            bind_listener(settings.host, port).close()
        except CannotListen as exc:
            raise BadInput(str(exc)) from None
        raise typer.Exit(_supervise(settings, with_workers=workers))


def _supervise(settings: Settings, *, with_workers: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    env = {**os.environ, "QGJOB_DATA_DIR": str(settings.data_dir)}
    children: list[subprocess.Popen[bytes]] = []
    # The server's links (shared run pages, check runs) start with its own url unless
    # QGJOB_PUBLIC_URL says otherwise: make that the url this server really has.
    server = _spawn(
        [sys.executable, "-m", "qgjob", "server", "--port", str(settings.port)],
        env={**env, "QGJOB_SERVER_URL": settings.server_url},
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
        plans: list[WorkerPlan] = []
        if with_workers:
            worker_env = {
                **env,
                "QGJOB_SERVER_URL": settings.server_url,
                "QGJOB_TOKEN": settings.local_token_path.read_text().strip(),
                "QGJOB_LOCK_DIR": str(settings.data_dir / "locks"),
            }
            plans = _plan_workers(settings, os.environ)
            if any(p.simulated and p.target is Target.BROWSERSTACK for p in plans):
                cloud, cloud_url = _start_fake_browserstack(env, log_dir)
                children.append(cloud)
                plans = [_with_cloud(p, cloud_url) for p in plans]
            for plan in plans:
                children.append(
                    _spawn(
                        [sys.executable, "-m", "qgjob", "worker", "--name", plan.name, *plan.args],
                        env={**worker_env, **plan.env},
                        log=log_dir / f"{plan.name}.log",
                        cwd=EXAMPLES,
                    )
                )
        _banner(settings, plans, log_dir)
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


def _plan_workers(settings: Settings, env: Mapping[str, str]) -> list[WorkerPlan]:
    """One worker per target: real where this host has the real thing, else simulated."""
    common = ["--executor", "adb", "--workspace", str(EXAMPLES), "--heartbeat-interval", "2"]
    plans = []
    real = _real_devices(settings.adb)
    state = settings.data_dir / "simulated-adb.json"
    for target in (Target.EMULATOR, Target.DEVICE):
        serial = real.get(target)
        if serial is not None:
            args = ["--target", target.value, "--device", serial, *common]
            plans.append(
                WorkerPlan(
                    f"{target.value}-{serial}", target, False, f"{serial} via adb", [*args], {}
                )
            )
            continue
        _write_simulated_adb(state)
        simulated = SIMULATED_DEVICES[target]
        args = ["--target", target.value, "--device", simulated, *common, "--allow-missing-build"]
        fakes = {
            "QGJOB_ADB": f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_ADB))}",
            "QGJOB_NPX": f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_NPX))}",
            "QGJOB_FAKE_ADB_STATE": str(state),
        }
        drives = f"{simulated} (fake adb + fake AppWright)"
        plans.append(WorkerPlan(f"simulated-{target.value}", target, True, drives, args, fakes))
    args = ["--target", "browserstack", "--executor", "browserstack", "--capacity", "2"]
    args += ["--workspace", str(EXAMPLES), "--heartbeat-interval", "2"]
    if env.get("BROWSERSTACK_USERNAME") and env.get("BROWSERSTACK_ACCESS_KEY"):
        drives = f"BrowserStack as {env['BROWSERSTACK_USERNAME']} ({settings.browserstack_api_url})"
        plans.append(WorkerPlan("browserstack", Target.BROWSERSTACK, False, drives, args, {}))
    else:
        user, key = SIMULATED_BROWSERSTACK
        fakes = {
            "QGJOB_NPX": f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_NPX))}",
            "BROWSERSTACK_USERNAME": user,
            "BROWSERSTACK_ACCESS_KEY": key,
        }
        drives = "the fake BrowserStack (fake AppWright sessions on a local server)"
        plans.append(
            WorkerPlan(
                "simulated-browserstack",
                Target.BROWSERSTACK,
                True,
                drives,
                [*args, "--allow-missing-build"],
                fakes,
            )
        )
    return plans


def _real_devices(adb: str) -> dict[Target, str]:
    """The first usable emulator and device the real adb lists (none when adb is absent)."""
    argv = shlex.split(adb)
    if not argv or shutil.which(argv[0]) is None:
        return {}
    try:
        listed = subprocess.run(
            [*argv, "devices", "-l"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    from dispatch.executors.adb_output import parse_devices

    found: dict[Target, str] = {}
    for device in parse_devices(listed.stdout):
        if device.state != "device":
            continue
        kind = Target.EMULATOR if device.serial.startswith("emulator-") else Target.DEVICE
        found.setdefault(kind, device.serial)
    return found


def _write_simulated_adb(path: Path) -> None:
    """fake_adb's state file: one booted emulator and one USB device (kept across restarts)."""
    if path.exists():
        return
    devices = [
        {"serial": SIMULATED_DEVICES[Target.EMULATOR], "state": "device"},
        {
            "serial": SIMULATED_DEVICES[Target.DEVICE],
            "state": "device",
            "usb": "usb:1-1",
            "model": "Pixel_8",
            "product": "shiba",
            "device": "shiba",
        },
    ]
    state = {"apk_package": "com.qualgent.demo", "devices": devices, "installs": []}
    path.write_text(json.dumps(state, indent=2))


def _start_fake_browserstack(
    env: dict[str, str], log_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    user, key = SIMULATED_BROWSERSTACK
    argv = [sys.executable, "-m", "tests.standins.serve_browserstack", "--port", str(port)]
    argv += ["--username", user, "--access-key", key]
    cloud = _spawn(argv, env=env, log=log_dir / "simulated-browserstack-server.log", cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and cloud.poll() is None:
        try:
            httpx.get(url + "/app-automate/plan.json", timeout=1)
            return cloud, url
        except httpx.HTTPError:
            time.sleep(0.1)
    return cloud, url  # the worker reports it if it never answers


def _with_cloud(plan: WorkerPlan, url: str) -> WorkerPlan:
    if not (plan.simulated and plan.target is Target.BROWSERSTACK):
        return plan
    return dataclasses.replace(plan, env={**plan.env, "QGJOB_BROWSERSTACK_API_URL": url})


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


def _banner(settings: Settings, workers: list[WorkerPlan], log_dir: Path) -> None:
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
        lines.append("  workers")
        for plan in workers:
            kind = "SIMULATED" if plan.simulated else "REAL"
            lines.append(f"    {plan.name:<24} {kind:<9} {plan.target.value:<12} {plan.drives}")
    if any(p.simulated for p in workers):
        lines += [
            "  SIMULATED devices are qgjob's stand-ins (tests/standins/): no emulator, device or",
            "  BrowserStack account is used. Each spec in examples/ is played by a fake AppWright",
            "  that reads its outcome from the spec's `// qgjob-fake:` comments, and a group",
            "  whose build was never uploaded gets a placeholder build.",
        ]
    if any(not p.simulated for p in workers):
        lines += [
            "  REAL workers run `npx appwright` in examples/ (run `npm install` there first) and",
            "  need the build uploaded (`qgjob build upload`).",
        ]
    lines += ["", "Try, in another terminal (source .venv/bin/activate first):"]
    exports = []
    if settings.server_url != Settings.server_url:
        exports.append(f"QGJOB_SERVER_URL={shlex.quote(settings.server_url)}")
    if settings.data_dir != default_data_dir():  # where the CLI finds the local token
        exports.append(f"QGJOB_DATA_DIR={shlex.quote(str(settings.data_dir))}")
    if exports:
        lines.append(f"  export {' '.join(exports)}")
    lines += [
        "  qgjob submit --org-id=qualgent --app-version-id=xyz123 --test=tests/onboarding.spec.js",
        "  qgjob submit --org-id=qualgent --app-version-id=xyz123 --target=browserstack "
        "--test=tests/login.spec.ts --test=tests/search.spec.ts",
        "  qgjob status --run-id=<run id> --watch",
        "  qgjob workers",
        "",
        "Press Ctrl-C to stop.",
    ]
    typer.echo("\n".join(lines))
