"""What can be checked of deploy/ without Docker or a cluster: the files parse, every
QGJOB_* variable they set is a real setting, every `qgjob` command line they run is one the
CLI accepts (options, values and required options included), and the pieces refer to each
other correctly (probes hit real endpoints, Secret keys exist, the proxy knows the servers)."""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from typing import Any

import pytest
import typer.main
import yaml

from app.api.routes import ENDPOINTS
from qgjob.cli.main import app as cli_app
from qgjob.settings import PREFIX, Settings
from tests.support.servers import REPO

DEPLOY = REPO / "deploy"
SETTINGS = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
UNIT = DEPLOY / "systemd" / "qgjob-worker@.service"


def yaml_documents() -> dict[str, list[Any]]:
    return {
        str(path.relative_to(DEPLOY)): [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(DEPLOY.rglob("*.y*ml"))
    }


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def k8s_objects() -> list[dict[str, Any]]:
    return [
        doc
        for name, docs in yaml_documents().items()
        if name.startswith("k8s/") and not name.endswith("kustomization.yaml")
        for doc in docs
    ]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    found: list[dict[str, Any]] = pod.get("containers", [])
    return found


def of_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = (
        o for o in k8s_objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])
    )
    return found


def unit_exec_start() -> list[str]:
    (line,) = (ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart="))
    return [w.replace("%i", "R58M12ABCDE").replace("%H", "lab-1") for w in words]


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


# Every place a qgjob command line appears, as the argv after `qgjob`.
def qgjob_command_lines() -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    entry = re.search(r'^ENTRYPOINT \["qgjob"\]$', dockerfile(), re.M)
    assert entry, "the image's entrypoint is the qgjob CLI"
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile(), re.M)
    assert cmd
    lines["Dockerfile CMD"] = yaml.safe_load(cmd.group(1))
    for name, service in compose()["services"].items():
        if "qgjob" in str(service.get("image", "")):
            lines[f"compose {name}"] = [str(word) for word in service["command"]]
    for obj in k8s_objects():
        for container in containers(obj):
            if container.get("image") in ("qgjob", "qgjob-worker"):
                lines[f"k8s {obj['metadata']['name']}"] = [str(a) for a in container["args"]]
    exec_start = unit_exec_start()
    assert exec_start[0] == "/opt/qgjob/bin/qgjob"
    lines["systemd ExecStart"] = exec_start[1:]
    return lines


def parse_cli(argv: list[str]) -> Any:
    """Parse `argv` the way `qgjob` would, without running the command: the click context,
    or click's usage error. (Typer may vendor click, so its classes are not imported.)"""
    command: Any = typer.main.get_command(cli_app)
    words = list(argv)
    # Groups parse nothing here (resilient: no "no arguments, show help" exit).
    parent = command.make_context("qgjob", [], resilient_parsing=True)
    while hasattr(command, "get_command"):
        name = words.pop(0)
        sub = command.get_command(parent, name)
        assert sub is not None, f"qgjob has no command {name!r}"
        command = sub
        if hasattr(command, "get_command"):
            parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
    return command.make_context(command.name or "", words, parent=parent, resilient_parsing=False)


def test_every_yaml_file_parses() -> None:
    documents = yaml_documents()
    assert {"docker-compose.yml", "k8s/server.yaml", "k8s/worker.yaml"} <= set(documents)
    assert all(docs for docs in documents.values())


@pytest.mark.parametrize("where", sorted(qgjob_command_lines()))
def test_every_qgjob_command_line_is_one_the_cli_accepts(where: str) -> None:
    argv = qgjob_command_lines()[where]
    try:
        parse_cli(argv)
    except Exception as exc:
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"{where}: `qgjob {shlex.join(argv)}` is refused: {exc.format_message()}")


def test_the_cli_check_does_refuse_a_wrong_command_line() -> None:
    with pytest.raises(Exception, match="No such option: --no-such-option") as refused:
        parse_cli(["worker", "--target", "emulator", "--no-such-option"])
    assert type(refused.value).__name__ == "NoSuchOption"
    with pytest.raises(Exception, match="targets") as missing:
        parse_cli(["worker"])
    assert type(missing.value).__name__ == "MissingParameter"
    with pytest.raises(AssertionError, match="no command"):
        parse_cli(["serve"])


def set_variables() -> dict[str, set[str]]:
    """QGJOB_* names each file sets for the program (not its own ${…} interpolations)."""
    found: dict[str, set[str]] = {}
    found["Dockerfile"] = set(re.findall(r"\b(QGJOB_[A-Z0-9_]+)=", dockerfile()))
    names: set[str] = set()
    for service in compose()["services"].values():
        names |= {k for k in (service.get("environment") or {}) if k.startswith("QGJOB_")}
    found["docker-compose.yml"] = names
    for obj in k8s_objects():
        for container in containers(obj):
            env = {e["name"] for e in container.get("env", []) if e["name"].startswith("QGJOB_")}
            found[f"k8s {obj['metadata']['name']}"] = env
    found["systemd"] = set(re.findall(r"^Environment=(QGJOB_[A-Z0-9_]+)=", UNIT.read_text(), re.M))
    return found


def test_every_qgjob_variable_set_is_a_setting() -> None:
    for where, names in set_variables().items():
        unknown = names - SETTINGS
        assert not unknown, f"{where} sets {sorted(unknown)}, which qgjob.settings does not read"
    everything = set().union(*set_variables().values())
    assert {"QGJOB_DATABASE_URL", "QGJOB_TOKEN", "QGJOB_MIGRATE_ON_START"} <= everything


def test_the_image_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.M)
    named = {name for _, name in stages if name}
    external = [image for image, _ in stages if image not in named]
    assert len(stages) >= 2 and external and all("slim" in image for image in external)
    assert {"build", "worker", "server"} <= named and stages[-1][1] == "server"  # default
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert (DEPLOY / "Dockerfile.dockerignore").exists()


def test_the_image_copies_every_package_and_what_pip_needs() -> None:
    copied = {
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile(), re.M)
        for source in line.split()[:-1]
    }
    assert all((REPO / source).exists() for source in copied), copied
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages | {"pyproject.toml", "README.md"} <= copied
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert not packages & {entry.strip("/") for entry in ignored}


def test_compose_runs_postgres_a_migration_two_servers_behind_one_port_and_workers() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["migrate"]
    servers = [n for n, s in services.items() if s.get("command") == ["server"]]
    assert len(servers) == 2
    for name in servers:
        needs = services[name]["depends_on"]["migrate"]["condition"]
        assert needs == "service_completed_successfully"
        assert services[name]["environment"]["QGJOB_MIGRATE_ON_START"] == "false"
    published = [s for s in services.values() if s.get("ports")]
    assert len(published) == 1 and "nginx" in published[0]["image"]
    upstream = set(re.findall(r"server (\S+):8000", (DEPLOY / "nginx.conf").read_text()))
    assert upstream == set(servers)
    assert services["worker"]["command"][0] == "worker"
    assert services["worker"]["build"]["target"] == "worker"


def test_kubernetes_server_probes_hit_real_endpoints_and_secrets_exist() -> None:
    public = {e.path for e in ENDPOINTS if e.public and e.method == "GET"}
    server = of_kind("Deployment", "qgjob-server")
    (container,) = containers(server)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= public
    grace = float(next(e["value"] for e in container["env"] if e["name"].endswith("GRACE_S")))
    assert server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
    secret_keys = set(of_kind("Secret")["stringData"])
    for obj in k8s_objects():
        for c in containers(obj):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "qgjob" and ref["key"] in secret_keys, env
    pdb = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    service = of_kind("Service")
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    job = of_kind("Job")
    assert containers(job)[0]["args"] == ["migrate"]
    assert of_kind("Deployment", "qgjob-worker")
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).exists()


def test_the_systemd_unit_runs_one_worker_per_device_serial() -> None:
    text = UNIT.read_text()
    assert "Environment=ANDROID_SERIAL=%i" in text
    argv = unit_exec_start()
    assert "--label" in argv and "serial=R58M12ABCDE" in argv
    assert argv[argv.index("--target") + 1] == "device"
    assert argv[argv.index("--device") + 1] == "R58M12ABCDE"
    assert re.search(r"^KillSignal=SIGTERM$", text, re.M)
    assert re.search(r"^\[Install\]\nWantedBy=multi-user.target", text, re.M)


def test_server_replicas_share_their_data_dir_and_signing_key() -> None:
    """Builds uploaded to one replica are downloaded from any (and sign-ins checked by
    any): the data dir is one volume, and the key the same everywhere."""
    servers = [s for name, s in compose()["services"].items() if name.startswith("server-")]
    assert len(servers) == 2
    assert all("server-data:/var/lib/qgjob" in s["volumes"] for s in servers)
    deployment = of_kind("Deployment", "qgjob-server")
    assert deployment["spec"]["replicas"] > 1
    (container,) = containers(deployment)
    env = {e["name"]: e for e in container["env"]}
    data_dir = env["QGJOB_DATA_DIR"]["value"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == data_dir)
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    claim = of_kind("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert env["QGJOB_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "secret-key"


def test_the_proxy_keeps_the_port_and_names_the_client() -> None:
    """Web forms compare their Origin with the Host header (app/web/access.py), and failed
    logins are counted per client address: the proxy must pass both truthfully."""
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "proxy_set_header Host $http_host;" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    for name, service in compose()["services"].items():
        if name.startswith("server-"):
            assert service["environment"]["FORWARDED_ALLOW_IPS"] == "*"
            assert "ports" not in service  # only the proxy reaches them


def test_workers_are_given_time_to_finish_their_spec() -> None:
    """SIGTERM drains: the running spec may take up to --job-timeout, within the grace."""
    worker = compose()["services"]["worker"]
    argv = worker["command"]
    grace_s = int(worker["stop_grace_period"].removesuffix("m")) * 60
    assert float(argv[argv.index("--job-timeout") + 1]) < grace_s
    deployment = of_kind("Deployment", "qgjob-worker")
    args = containers(deployment)[0]["args"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(args[args.index("--job-timeout") + 1]) < grace
    unit = UNIT.read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)min$", unit, re.M)
    assert stop is not None
    argv = unit_exec_start()
    assert float(argv[argv.index("--job-timeout") + 1]) < int(stop[1]) * 60
    # PrivateTmp gives each unit its own /tmp: the host-wide lock dir must be elsewhere.
    assert re.search(r"^PrivateTmp=yes$", unit, re.M)
    assert "Environment=QGJOB_LOCK_DIR=/var/lib/qgjob/locks" in unit
    assert re.search(r"^StateDirectory=qgjob qgjob/%i$", unit, re.M)
