"""Running a GitHub Actions job's `run:` steps on this machine, the way a runner would.

What GitHub does for each step, and this does too:
- `${{ … }}` in `env:`, `with:`, `if:`, `working-directory` and `run:` is evaluated before
  the step starts: `inputs.*` (with the workflow_call defaults), `secrets.*`, `github.sha`,
  `runner.temp`, `steps.<id>.outputs.*`, `env.*`, `a || b`, `a && b`, `x != ''`, `!x`, and
  the status functions `always()`, `success()`, `failure()`, `cancelled()`;
- `run:` goes to `bash --noprofile --norc -eo pipefail {file}` in the working directory,
  with `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH`, `GITHUB_STEP_SUMMARY`, `GITHUB_WORKSPACE`,
  `RUNNER_TEMP`, `CI=true` and `GITHUB_ACTIONS=true` set; lines written to `GITHUB_OUTPUT`
  become `steps.<id>.outputs`, `GITHUB_ENV` lines become env of later steps, `GITHUB_PATH`
  lines are prepended to PATH (`name<<EOF` multi-line values included);
- a failing step fails the job; later steps run only if their `if:` says so.

Any other expression raises `UnsupportedExpression`, so a workflow that uses something this
does not model fails the test instead of passing by accident. `uses:` steps are handed to
the caller's `actions` table (the test does their equivalent) and fail when it has none.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
Action = Callable[["Step", dict[str, str]], Awaitable[None]]


class UnsupportedExpression(Exception):
    pass


@dataclass(frozen=True)
class Step:
    index: int
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or self.raw.get("id") or self.raw.get("uses") or "run")


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    exit_code: int | None = None
    output: str = ""


@dataclass
class JobRun:
    results: list[StepResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.outcome == "failure" for r in self.results)

    def result(self, name: str) -> StepResult:
        (found,) = (r for r in self.results if r.name == name)
        return found


def load_workflow(path: Path) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on:` key as True; GitHub reads it as "on".
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def call_inputs(workflow: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The `inputs` context of a workflow_call: the given values over the declared defaults."""
    declared = workflow["on"]["workflow_call"].get("inputs", {})
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"inputs not declared by the workflow: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = given[name]
        elif spec.get("required"):
            raise ValueError(f"required input {name!r} not given")
        else:
            values[name] = spec.get("default", "")
    return values


@dataclass
class Runner:
    workflow: dict[str, Any]
    job_id: str
    inputs: dict[str, Any]
    secrets: dict[str, str]
    github: dict[str, str]
    workspace: Path
    temp: Path
    base_env: dict[str, str]
    actions: dict[str, Action] = field(default_factory=dict)
    step_timeout_s: float = 180

    def __post_init__(self) -> None:
        self.outputs: dict[str, dict[str, str]] = {}
        self.env: dict[str, str] = {}
        self.path_prefix: list[str] = []
        self.summary = self.temp / "step_summary.md"
        self.status = "success"

    # Expressions.

    def evaluate(self, expression: str, *, env: Mapping[str, str]) -> Any:
        expression = expression.strip()
        if "||" in expression:
            for part in expression.split("||"):
                value = self.evaluate(part, env=env)
                if value not in ("", None, False, 0):
                    return value
            return value
        if "&&" in expression:
            value: Any = True
            for part in expression.split("&&"):
                value = self.evaluate(part, env=env)
                if value in ("", None, False, 0):
                    return value
            return value
        for op in ("!=", "=="):
            if op in expression:
                left, right = (self.evaluate(p, env=env) for p in expression.split(op, 1))
                same = str(left) == str(right)
                return same if op == "==" else not same
        if expression.startswith("!"):
            return not self.evaluate(expression[1:], env=env)
        if expression in ("always()", "success()", "failure()", "cancelled()"):
            return {
                "always()": True,
                "success()": self.status == "success",
                "failure()": self.status == "failure",
                "cancelled()": False,
            }[expression]
        if re.fullmatch(r"'[^']*'", expression):
            return expression[1:-1]
        if re.fullmatch(r"-?\d+(\.\d+)?", expression):
            return expression
        parts = expression.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs[parts[1]]
        if parts[0] == "secrets" and len(parts) == 2:
            return self.secrets.get(parts[1], "")
        if parts[0] == "github" and len(parts) == 2 and parts[1] in self.github:
            return self.github[parts[1]]
        if parts[0] == "runner" and parts[1:] == ["temp"]:
            return str(self.temp)
        if parts[0] == "env" and len(parts) == 2:
            return env.get(parts[1], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.outputs.get(parts[1], {}).get(parts[3], "")
        raise UnsupportedExpression(expression)

    def substitute(self, text: Any, *, env: Mapping[str, str]) -> str:
        if not isinstance(text, str):
            return "" if text is None else _scalar(text)
        return _EXPR.sub(lambda m: _scalar(self.evaluate(m.group(1), env=env)), text)

    def condition(self, raw: Any, *, env: Mapping[str, str]) -> bool:
        if raw is None:
            return self.status == "success"
        text = str(raw).strip()
        match = _EXPR.fullmatch(text)
        expression = match.group(1) if match else text
        value = self.evaluate(expression, env=env)
        uses_status = any(f in expression for f in ("always()", "failure()", "cancelled()"))
        if not uses_status and self.status != "success":  # GitHub adds `success() &&`
            return False
        return value not in ("", None, False, 0)

    # Steps.

    async def run(self) -> JobRun:
        job = self.workflow["jobs"][self.job_id]
        defaults = (job.get("defaults") or {}).get("run") or {}
        job_run = JobRun()
        for index, raw in enumerate(job["steps"]):
            step = Step(index, raw)
            env = self._step_env(job, raw)
            if not self.condition(raw.get("if"), env=env):
                job_run.results.append(StepResult(step.name, "skipped"))
                continue
            if "uses" in raw:
                result = await self._use(step, env)
            else:
                result = await self._run_script(step, env, defaults)
            job_run.results.append(result)
            if result.outcome == "failure" and not raw.get("continue-on-error"):
                self.status = "failure"
        return job_run

    def _step_env(self, job: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, str]:
        env = dict(self.env)
        for scope in (self.workflow.get("env") or {}, job.get("env") or {}, raw.get("env") or {}):
            for key, value in scope.items():
                env[key] = self.substitute(value, env=env)
        return env

    async def _use(self, step: Step, env: dict[str, str]) -> StepResult:
        action_ref = str(step.raw["uses"])
        handler = self.actions.get(action_ref.split("@", 1)[0])
        if handler is None:
            raise AssertionError(f"no stand-in for the action {action_ref!r}")
        with_values = {
            key: self.substitute(value, env=env)
            for key, value in (step.raw.get("with") or {}).items()
        }
        try:
            await handler(step, with_values)
        except AssertionError as exc:
            return StepResult(step.name, "failure", output=str(exc))
        return StepResult(step.name, "success")

    async def _run_script(
        self, step: Step, env: dict[str, str], defaults: Mapping[str, Any]
    ) -> StepResult:
        script = self.substitute(step.raw["run"], env=env)
        where = self.substitute(
            step.raw.get("working-directory", defaults.get("working-directory", ".")), env=env
        )
        shell = step.raw.get("shell", defaults.get("shell", "bash"))
        assert shell == "bash", f"only bash steps are modelled (got {shell!r})"
        files = {
            name: self.temp / f"{name.lower()}_{step.index}"
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")
        }
        for path in files.values():
            path.write_text("")
        script_path = self.temp / f"step_{step.index}.sh"
        script_path.write_text(script)
        full_env = {
            **self.base_env,
            **env,
            **{name: str(path) for name, path in files.items()},
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": self.github["sha"],
            "GITHUB_REPOSITORY": self.github["repository"],
            "GITHUB_REF": self.github["ref"],
        }
        if self.path_prefix:
            full_env["PATH"] = os.pathsep.join([*self.path_prefix, full_env.get("PATH", "")])
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            str(script_path),
            cwd=self.workspace / where,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), self.step_timeout_s)
        assert proc.returncode is not None
        if "id" in step.raw:
            self.outputs[str(step.raw["id"])] = _read_kv(files["GITHUB_OUTPUT"])
        self.env.update(_read_kv(files["GITHUB_ENV"]))
        self.path_prefix = [
            *reversed(files["GITHUB_PATH"].read_text().split()),
            *self.path_prefix,
        ]
        return StepResult(
            step.name,
            "success" if proc.returncode == 0 else "failure",
            exit_code=proc.returncode,
            output=out.decode(errors="replace"),
        )


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_kv(path: Path) -> dict[str, str]:
    """`name=value` lines and `name<<DELIM` … `DELIM` blocks, as the runner reads them."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            values[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        index += 1
    return values
