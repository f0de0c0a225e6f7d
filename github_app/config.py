"""The repository's `qgjob.toml`: which specs to run, on which targets, for which pushes (pure).

Keys sit under a `[qgjob]` table or at the top level of the file:

    specs = ["tests/**/*.spec.ts", "tests/**/*.spec.js"]   # globs, relative to the repo root
    targets = ["emulator"]                                  # emulator | device | browserstack
    app_version_id = "{sha}"        # placeholders: {sha} {short_sha} {branch} {pr}
    priority = "normal"             # low | normal | high
    tags = false                    # also run on tag pushes
    cancel_superseded = true        # a new push to a branch cancels the older run
    run_forks = false               # run pull requests from forks without approval
    timeout_minutes = 60            # a run still unfinished this long after it was queued ends
    [branches]                      # (or [qgjob.branches])
    include = ["*"]                 # branch globs; default: every branch
    exclude = []

Every problem raises `InvalidConfig` naming the key and what is accepted; the service turns
it into a failed check run that shows the message.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from github_app.errors import InvalidConfig
from github_app.globs import GlobSet, expand_braces
from qgjob.types import Priority, Target

CONFIG_PATHS = ("qgjob.toml", ".github/qgjob.toml")
DEFAULT_SPECS = ("tests/**/*.spec.ts", "tests/**/*.spec.js")
PLACEHOLDERS = ("sha", "short_sha", "branch", "pr")
_KEYS = (
    "specs",
    "targets",
    "app_version_id",
    "priority",
    "branches",
    "tags",
    "cancel_superseded",
    "run_forks",
    "timeout_minutes",
)
MAX_TIMEOUT_MINUTES = 24 * 60


@dataclass(frozen=True)
class BranchFilter:
    """Branches to run on: matching an `include` glob (all when empty) and no `exclude` glob."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def allows(self, branch: str) -> bool:
        if self.include and not GlobSet(self.include).matches(branch):
            return False
        return not GlobSet(self.exclude).matches(branch)


@dataclass(frozen=True)
class RepoConfig:
    """A parsed `qgjob.toml`; `RepoConfig()` is the configuration of a repo without one."""

    specs: tuple[str, ...] = DEFAULT_SPECS
    targets: tuple[Target, ...] = (Target.EMULATOR,)
    app_version_id: str = "{sha}"
    priority: Priority = Priority.NORMAL
    branches: BranchFilter = field(default_factory=BranchFilter)
    tags: bool = False
    cancel_superseded: bool = True
    run_forks: bool = False
    timeout_minutes: int = 60  # the run's deadline: its unfinished jobs are cancelled then

    def runs_on_ref(self, ref: str) -> bool:
        """Whether a push to `ref` runs: branches through `branches`, tags only with `tags`."""
        if ref.startswith("refs/heads/"):
            return self.branches.allows(ref.removeprefix("refs/heads/"))
        if ref.startswith("refs/tags/"):
            return self.tags
        return False

    @property
    def needs_pull_request(self) -> bool:
        """Whether `app_version_id` uses `{pr}`: only pull requests can run."""
        return "pr" in _placeholders(self.app_version_id)

    def render_app_version_id(self, *, sha: str, branch: str | None, pr: int | None) -> str:
        """Fill the `app_version_id` template for one commit; `InvalidConfig` if a value lacks."""
        values = {"sha": sha, "short_sha": sha[:7], "branch": branch, "pr": pr}
        for name in _placeholders(self.app_version_id):
            if values[name] is None:
                what = "a pull request" if name == "pr" else "a branch"
                raise InvalidConfig(
                    f"app_version_id uses {{{name}}}, but this commit was not pushed for {what}",
                    key="app_version_id",
                )
        return self.app_version_id.format(**{k: "" if v is None else v for k, v in values.items()})


def parse_config(source: str | bytes, *, path: str = "qgjob.toml") -> RepoConfig:
    """Parse and validate the text of a `qgjob.toml`."""
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidConfig(f"is not UTF-8 text ({exc})", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"is not valid TOML: {exc}", path=path) from exc
    table = _qgjob_table(document, path)
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise InvalidConfig(
            f"unknown key {unknown[0]!r}; accepted keys are {', '.join(_KEYS)}",
            key=unknown[0],
            path=path,
        )
    defaults = RepoConfig()
    return RepoConfig(
        specs=_specs(table.get("specs", defaults.specs), path),
        targets=_targets(table.get("targets", list(defaults.targets)), path),
        app_version_id=_template(table.get("app_version_id", defaults.app_version_id), path),
        priority=_priority(table.get("priority", defaults.priority.value), path),
        branches=_branches(table.get("branches", {}), path),
        tags=_flag(table, "tags", defaults.tags, path),
        cancel_superseded=_flag(table, "cancel_superseded", defaults.cancel_superseded, path),
        run_forks=_flag(table, "run_forks", defaults.run_forks, path),
        timeout_minutes=_minutes(table.get("timeout_minutes", defaults.timeout_minutes), path),
    )


async def load_config(read_file: Callable[[str], Awaitable[bytes | None]]) -> RepoConfig:
    """The first of `CONFIG_PATHS` that `read_file` finds, parsed; defaults when none exists."""
    for path in CONFIG_PATHS:
        data = await read_file(path)
        if data is not None:
            return parse_config(data, path=path)
    return RepoConfig()


def _qgjob_table(document: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    if "qgjob" not in document:
        return document
    table = document["qgjob"]
    if not isinstance(table, dict):
        raise InvalidConfig("qgjob must be a table ([qgjob])", key="qgjob", path=path)
    stray = sorted(set(document) - {"qgjob"})
    if stray:
        raise InvalidConfig(
            f"key {stray[0]!r} sits outside [qgjob]; put every key under [qgjob] "
            "or every key at the top level, not both",
            key=stray[0],
            path=path,
        )
    return table


def _string_list(value: Any, key: str, what: str, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise InvalidConfig(
            f"{key} must be a list of {what}, got {value!r:.80}", key=key, path=path
        )
    return tuple(dict.fromkeys(value))


def _specs(value: Any, path: str) -> tuple[str, ...]:
    globs = _string_list(value, "specs", "glob strings (e.g. 'tests/**/*.spec.ts')", path)
    if not globs:
        raise InvalidConfig("specs must name at least one glob", key="specs", path=path)
    for glob in globs:
        if glob.startswith("/") or any(".." in p.split("/") for p in expand_braces(glob)):
            raise InvalidConfig(
                f"specs glob {glob!r} must be relative to the repository root, without '..'",
                key="specs",
                path=path,
            )
    return globs


def _targets(value: Any, path: str) -> tuple[Target, ...]:
    accepted = ", ".join(t.value for t in Target)
    names = _string_list(value, "targets", f"target names ({accepted})", path)
    if not names:
        raise InvalidConfig(
            f"targets must name at least one of {accepted}", key="targets", path=path
        )
    for name in names:
        if name not in Target._value2member_map_:
            raise InvalidConfig(
                f"unknown target {name!r}; accepted targets are {accepted}",
                key="targets",
                path=path,
            )
    return tuple(Target(name) for name in names)


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _template(value: Any, path: str) -> str:
    key = "app_version_id"
    accepted = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    if not isinstance(value, str) or not value.strip():
        raise InvalidConfig(
            f"{key} must be a non-empty string such as '{{sha}}'", key=key, path=path
        )
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise InvalidConfig(
            f"{key} {value!r} is not a valid template ({exc}); write '{{{{' for a literal brace",
            key=key,
            path=path,
        ) from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{}" if name == "" else f"{{{name}}}"
            raise InvalidConfig(
                f"{key} uses unknown placeholder {shown}; accepted placeholders are {accepted}",
                key=key,
                path=path,
            )
    return value


def _priority(value: Any, path: str) -> Priority:
    if not isinstance(value, str) or value not in Priority._value2member_map_:
        accepted = ", ".join(p.value for p in Priority)
        raise InvalidConfig(
            f"priority must be one of {accepted}, got {value!r:.80}", key="priority", path=path
        )
    return Priority(value)


def _branches(value: Any, path: str) -> BranchFilter:
    if not isinstance(value, dict):
        raise InvalidConfig(
            "branches must be a table with include and/or exclude lists", key="branches", path=path
        )
    unknown = sorted(set(value) - {"include", "exclude"})
    if unknown:
        raise InvalidConfig(
            f"unknown key branches.{unknown[0]}; accepted keys are include, exclude",
            key=f"branches.{unknown[0]}",
            path=path,
        )
    return BranchFilter(
        include=_string_list(value.get("include", []), "branches.include", "branch globs", path),
        exclude=_string_list(value.get("exclude", []), "branches.exclude", "branch globs", path),
    )


def _flag(table: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise InvalidConfig(f"{key} must be true or false, got {value!r:.80}", key=key, path=path)
    return value


def _minutes(value: Any, path: str) -> int:
    key = "timeout_minutes"
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_TIMEOUT_MINUTES
    ):
        raise InvalidConfig(
            f"{key} must be a whole number of minutes from 1 to {MAX_TIMEOUT_MINUTES}, "
            f"got {value!r:.80}",
            key=key,
            path=path,
        )
    return value
