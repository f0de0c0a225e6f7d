"""How fake_npx reads its command line and the AppWright config, the way the real tools do.

- AppWright's bin (`src/bin/index.ts`) adds `--config appwright.config.ts` unless the exact
  word `--config` is present, joins the arguments with spaces and splits on single spaces.
- Playwright's `test` command (commander) takes positional file filters (regular
  expressions over absolute paths) and options; `--project` is variadic, so words after it
  that do not start with `-` are project names too. Unknown options are an error.
- globalSetup (`src/global-setup.ts`) only sees `--project NAME` as two words.
- The config's testDir (default `./tests`) is the report's rootDir; project names and their
  `device.provider` are read from the TypeScript text with regular expressions, which is
  enough for configs written like examples/appwright.config.ts (`{ name: "…", use: … }`).
Standard library only: fake_npx imports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG = "appwright.config.ts"
_TEST_FILE = re.compile(r"\.(spec|test)\.[cm]?[jt]sx?$")
_VALUED = {
    "--config": "config",
    "-c": "config",
    "--reporter": "reporter",
    "--retries": "retries",
    "--timeout": "timeout",
    "--workers": "workers",
    "-j": "workers",
    "--global-timeout": None,
    "--max-failures": None,
    "-x": None,
    "--output": None,
    "--shard": None,
    "--grep": None,
    "-g": None,
    "--grep-invert": None,
    "--repeat-each": None,
}
_FLAGS = {"--pass-with-no-tests", "--list", "--forbid-only", "--quiet", "--fully-parallel"}


class UsageError(Exception):
    """The command line or the config is wrong; Playwright prints this and writes no report."""


@dataclass(frozen=True)
class Invocation:
    """`appwright test …` after AppWright's rewriting and Playwright's option parsing."""

    cwd: Path
    filters: tuple[str, ...]
    projects: tuple[str, ...]  # every project Playwright selects
    project: str | None  # what globalSetup finds after a bare `--project` word
    project_flag_empty: bool  # `--project` was the last word
    config: str
    reporters: tuple[str, ...]
    retries: int
    timeout_ms: int
    workers: int


@dataclass(frozen=True)
class Config:
    """What fake_npx needs from appwright.config.ts."""

    path: Path
    root_dir: Path
    providers: dict[str, str] = field(default_factory=dict)  # project name -> provider


def parse_invocation(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Invocation:
    """Parse the words after `appwright` (e.g. `test a.spec.ts --project p …`)."""
    words = list(args)
    if "--config" not in words:
        words += ["--config", DEFAULT_CONFIG]
    words = " ".join(words).split(" ")  # AppWright's `pwRunCmd.split(" ")`
    if not words or words[0] != "test":
        raise UsageError(f"unknown command '{words[0] if words else ''}'")
    values: dict[str, str] = {}
    filters: list[str] = []
    projects: list[str] = []
    index = 1
    while index < len(words):
        word = words[index]
        name, has_inline, inline = word.partition("=")
        if name == "--project":
            if has_inline:
                projects.append(inline)
            while index + 1 < len(words) and not words[index + 1].startswith("-"):
                index += 1
                projects.append(words[index])
        elif name in _VALUED:
            if not has_inline:
                index += 1
                if index >= len(words):
                    raise UsageError(f"option '{name}' argument missing")
            key = _VALUED[name]
            if key is not None:
                values[key] = inline if has_inline else words[index]
        elif name in _FLAGS:
            pass
        elif word.startswith("-"):
            raise UsageError(f"unknown option '{word}'")
        else:
            filters.append(word)
        index += 1
    project, empty = _global_setup_project(words)
    return Invocation(
        cwd=cwd,
        filters=tuple(filters),
        projects=tuple(projects),
        project=project,
        project_flag_empty=empty,
        config=values.get("config", DEFAULT_CONFIG),
        reporters=tuple(values.get("reporter", "list,html").split(",")),
        retries=_number(values, "retries", default=2 if env.get("CI") else 0),
        timeout_ms=_number(values, "timeout", default=0),
        workers=max(1, _number(values, "workers", default=2)),
    )


def read_config(invocation: Invocation) -> Config:
    """Find the config, its testDir and its projects; unknown `--project` names are an error."""
    path = Path(os.path.normpath(invocation.cwd / invocation.config))
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    text = path.read_text()
    test_dir = re.search(r"""testDir:\s*["'`]([^"'`]+)["'`]""", text)
    root_dir = Path(os.path.normpath(path.parent / (test_dir[1] if test_dir else "./tests")))
    providers = _providers(text)
    unknown = [name for name in invocation.projects if providers and name not in providers]
    if unknown:
        available = ", ".join(f'"{name}"' for name in providers)
        wanted = ", ".join(f'"{name}"' for name in unknown)
        raise UsageError(f"Project(s) {wanted} not found. Available projects: {available}")
    return Config(path=path, root_dir=root_dir, providers=providers)


def find_spec_files(root_dir: Path, filters: Sequence[str]) -> list[Path]:
    """Test files under root_dir whose absolute path matches any filter (all without filters)."""
    found = []
    for directory, subdirs, files in os.walk(root_dir):
        subdirs[:] = sorted(d for d in subdirs if d != "node_modules" and not d.startswith("."))
        found += [Path(directory) / name for name in sorted(files) if _TEST_FILE.search(name)]
    if not filters:
        return found
    patterns = [_pattern(text) for text in filters]
    return [path for path in found if any(p.search(path.as_posix()) for p in patterns)]


def _pattern(text: str) -> re.Pattern[str]:
    text = re.sub(r":\d+(:\d+)?$", "", text)  # `file.spec.ts:42` selects a line; files only here
    try:
        return re.compile(text)
    except re.error:
        return re.compile(re.escape(text))


def _global_setup_project(words: Sequence[str]) -> tuple[str | None, bool]:
    for index, word in enumerate(words):
        if word == "--project":
            if index + 1 < len(words) and words[index + 1]:
                return words[index + 1], False
            return None, True
    return None, False


def _providers(text: str) -> dict[str, str]:
    starts = list(re.finditer(r"""\{\s*name:\s*["'`]([^"'`]+)["'`]""", text))
    providers = {}
    for position, match in enumerate(starts):
        end = starts[position + 1].start() if position + 1 < len(starts) else len(text)
        provider = re.search(r"""provider:\s*["'`]([\w-]+)["'`]""", text[match.end() : end])
        providers[match[1]] = provider[1] if provider else ""
    return providers


def _number(values: Mapping[str, str], key: str, *, default: int) -> int:
    if key not in values:
        return default
    try:
        return int(values[key])
    except ValueError:
        raise UsageError(f"option '--{key}' expects a number, got '{values[key]}'") from None
