"""The reusable workflow `.github/workflows/qgjob.yml`, run step by step as a GitHub runner
would (tests/workflows/runner.py), against the real service and a real worker process.

The `run:` steps run for real, in order, in bash, with inputs and secrets substituted and
`GITHUB_STEP_SUMMARY`, `GITHUB_OUTPUT`, `GITHUB_ENV`, `RUNNER_TEMP` given to them. The three
`uses:` steps are done by this test instead, the way they would leave the runner:
- actions/checkout: the examples/ AppWright project copied into the workspace;
- actions/setup-python: a fresh virtualenv put first on PATH (it sees this venv's
  dependencies through a .pth file, so that installing qgjob needs no network);
- actions/upload-artifact: the file at `path` must exist; it is copied aside and checked.
`qgjob-package` is a wheel built from this checkout, so the install step is a real
`pip install` of qgjob. The worker runs the stand-in AppWright (tests/standins/fake_npx.py),
which decides each spec's outcome from the `// qgjob-fake:` comments in the example specs:
profile.spec.ts fails, search.spec.ts is flaky (passes on its retry), the rest pass.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Api
from tests.standins import FAKE_NPX
from tests.support.servers import REPO, child_env
from tests.support.workers import WorkerProcess
from tests.workflows.runner import JobRun, Runner, Step, call_inputs, load_workflow

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(240)]

WORKFLOW = REPO / ".github" / "workflows" / "qgjob.yml"
ORG = "acme"
SHA = "5d1c0ffee5d1c0ffee5d1c0ffee5d1c0ffee5d1c"


@pytest.fixture(scope="module")
def qgjob_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qgjob built as a wheel from this checkout (the sources the Dockerfile copies)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("app", "github_app", "dispatch", "qgjob"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root), str(source)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = root.glob("qgjob-*.whl")
    return wheel


@dataclass
class Lab:
    """The runner's world for one test: workspace, temp dir, artifacts, a worker."""

    api: Api
    root: Path
    wheel: Path
    submitter: str = ""
    runner: Any = None  # the Runner of the current run, once made

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    async def checkout(self, step: Step, with_values: dict[str, str]) -> None:
        shutil.copytree(
            REPO / "examples", self.workspace, ignore=shutil.ignore_patterns("node_modules")
        )

    async def setup_python(self, step: Step, with_values: dict[str, str]) -> None:
        assert with_values["python-version"] == "3.11"
        python = self.root / "python"
        made = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "venv", "--without-pip", str(python)
        )
        assert await asyncio.wait_for(made.wait(), 60) == 0
        site = Path(
            sysconfig.get_path("purelib", vars={"base": str(python), "platbase": str(python)})
        )
        (site / "runner-tool-cache.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        self.runner.path_prefix.insert(0, str(python / "bin"))

    async def upload_artifact(self, step: Step, with_values: dict[str, str]) -> None:
        path = Path(with_values["path"])
        assert path.is_file(), f"upload-artifact: no file at {path}"
        self.artifacts.mkdir(exist_ok=True)
        shutil.copy(path, self.artifacts / f"{with_values['name']}.xml")

    def make_runner(self, **inputs: Any) -> Runner:
        workflow = load_workflow(WORKFLOW)
        temp = self.root / "runner-temp"
        temp.mkdir()
        self.runner = Runner(
            workflow=workflow,
            job_id="qgjob",
            inputs=call_inputs(workflow, {"qgjob-package": str(self.wheel), **inputs}),
            secrets={"QGJOB_SERVER_URL": self.api.url, "QGJOB_TOKEN": self.submitter},
            github={"sha": SHA, "repository": "acme/shop", "ref": "refs/pull/7/merge"},
            workspace=self.workspace,
            temp=temp,
            base_env=child_env({"HOME": str(self.root)}),
            actions={
                "actions/checkout": self.checkout,
                "actions/setup-python": self.setup_python,
                "actions/upload-artifact": self.upload_artifact,
            },
        )
        return self.runner


@pytest.fixture
async def lab(api: Api, tmp_path: Path, qgjob_wheel: Path) -> AsyncIterator[Lab]:
    found = Lab(api=api, root=tmp_path, wheel=qgjob_wheel)
    found.submitter = await api.token(ORG)
    build = tmp_path / "build.apk"
    build.write_bytes(b"simulated build")
    run = (
        f"cd {shlex.quote(str(found.workspace))} && "
        f"QGJOB_BUILD_PATH={shlex.quote(str(build))} {shlex.quote(sys.executable)} "
        f'{shlex.quote(str(FAKE_NPX))} appwright test "$PWD"/{{test_path}} '
        "--project android-emulator --reporter=list,json --retries 1"
    )
    worker = WorkerProcess(
        args=[
            *("--target", "emulator", "--name", "lab-emulator", "--heartbeat-interval", "0.5"),
            *("--command", run),
        ],
        env=child_env(
            {
                "QGJOB_SERVER_URL": api.url,
                "QGJOB_TOKEN": await api.token(ORG, "worker"),
                "QGJOB_DATA_DIR": str(tmp_path / "worker-data"),
            }
        ),
        log_path=tmp_path / "worker.log",
    )
    await worker.start()
    yield found
    if worker.running:
        await worker.kill9()


def summary_of(runner: Runner) -> str:
    return runner.summary.read_text() if runner.summary.exists() else ""


def junit_cases(lab: Lab) -> dict[str, ET.Element]:
    root = ET.parse(lab.artifacts / "qgjob-junit.xml").getroot()  # noqa: S314 - our server's
    return {case.get("name", ""): case for case in root.iter("testcase")}


def explain(job: JobRun, runner: Runner) -> str:
    steps = "\n".join(f"--- {r.name}: {r.outcome} ({r.exit_code})\n{r.output}" for r in job.results)
    return f"{steps}\n--- summary:\n{summary_of(runner)}"


async def test_a_passing_run_passes_the_job_with_a_full_summary(
    lab: Lab, pool: asyncpg.Pool
) -> None:
    runner = lab.make_runner(
        **{"org-id": ORG, "tests": "tests/{login,search,settings}.spec.ts", "timeout-minutes": 3}
    )
    job = await runner.run()
    assert not job.failed, explain(job, runner)
    assert [r.outcome for r in job.results] == ["success"] * 6
    summary = summary_of(runner)
    sections = [line for line in summary.splitlines() if line.startswith("## ")]
    assert sections == [
        "## 🔍 Test Discovery",
        "## 📤 Job Submission",
        "## 🧪 Test Execution",
        "## ✅ Build Passed",
    ]
    assert "Found **3** spec files matching `tests/{login,search,settings}.spec.ts`." in summary
    assert f"| App version | `{SHA}` |" in summary  # app-version-id defaults to the sha
    assert f"### emulator · `{SHA}` on `lab-emulator`" in summary
    assert "| `tests/search.spec.ts` | COMPLETED |" in summary
    assert "All 3 tests passed." in summary
    cases = junit_cases(lab)
    assert set(cases) == {"tests/login.spec.ts", "tests/search.spec.ts", "tests/settings.spec.ts"}
    assert all(case.find("failure") is None for case in cases.values())
    assert "All 3 tests passed" in job.result("Run the specs on qgjob").output
    # The run names the commit under test (the runner's GITHUB_REPOSITORY, _REF, _SHA).
    run = await pool.fetchrow("SELECT source::text, repo, ref, head_sha FROM runs")
    assert tuple(run) == ("actions", "acme/shop", "refs/pull/7/merge", SHA)


async def test_a_failing_run_fails_the_job_and_names_the_failed_spec(lab: Lab) -> None:
    runner = lab.make_runner(**{"org-id": ORG, "app-version-id": "build-42"})
    job = await runner.run()
    assert job.failed
    outcomes = {r.name: (r.outcome, r.exit_code) for r in job.results}
    assert outcomes["Discover spec files"] == ("success", 0)
    assert outcomes["Run the specs on qgjob"] == ("failure", 1), explain(job, runner)
    assert outcomes["Upload the JUnit report"][0] == "success"  # runs although a step failed
    summary = summary_of(runner)
    specs = len([*(REPO / "examples" / "tests").glob("*.spec.[jt]s")])  # .ts and .js
    assert f"Found **{specs}** spec files matching `tests/**/*.spec.{{ts,js}}`." in summary
    assert "| App version | `build-42` |" in summary
    failed_section = summary.split("## ❌ Build Failed", 1)[1]
    assert f"1 of {specs} tests failed." in failed_section
    assert "- **`tests/profile.spec.ts`** (emulator): `the command exited with code 1" in summary
    assert "## ✅ Build Passed" not in summary
    cases = junit_cases(lab)
    assert len(cases) == specs
    failure = cases["tests/profile.spec.ts"].find("failure")
    assert failure is not None and "exited with code 1" in (failure.get("message") or "")


async def test_no_matching_spec_stops_the_job_before_submitting(lab: Lab) -> None:
    runner = lab.make_runner(**{"org-id": ORG, "tests": "e2e/**/*.spec.ts"})
    job = await runner.run()
    outcomes = {r.name: (r.outcome, r.exit_code) for r in job.results}
    assert outcomes["Discover spec files"] == ("failure", 2)
    assert outcomes["Run the specs on qgjob"] == ("skipped", None)
    assert (
        "no spec files match --glob 'e2e/**/*.spec.ts'" in job.result("Discover spec files").output
    )
    assert "Found **0** spec files matching `e2e/**/*.spec.ts`." in summary_of(runner)
