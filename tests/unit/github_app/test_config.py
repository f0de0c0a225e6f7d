"""qgjob.toml parsing: defaults, both layouts, every error naming its key."""

from __future__ import annotations

import pytest

from github_app.config import BranchFilter, RepoConfig, load_config, parse_config
from github_app.errors import InvalidConfig
from qgjob.types import Priority, Target

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def test_empty_file_gives_defaults() -> None:
    config = parse_config("")
    assert config == RepoConfig()
    assert config.specs == ("tests/**/*.spec.ts", "tests/**/*.spec.js")
    assert config.targets == (Target.EMULATOR,)
    assert config.app_version_id == "{sha}"
    assert config.priority is Priority.NORMAL
    assert config.branches == BranchFilter()
    assert (config.tags, config.cancel_superseded, config.run_forks) == (False, True, False)
    assert config.timeout_minutes == 60


FULL = """
specs = ["e2e/**/*.spec.ts"]
targets = ["device", "browserstack"]
app_version_id = "build-{branch}-{short_sha}"
priority = "high"
tags = true
cancel_superseded = false
run_forks = true
timeout_minutes = 90

[branches]
include = ["main", "release/*"]
exclude = ["release/old-*"]
"""


def test_top_level_keys() -> None:
    config = parse_config(FULL)
    assert config.specs == ("e2e/**/*.spec.ts",)
    assert config.targets == (Target.DEVICE, Target.BROWSERSTACK)
    assert config.priority is Priority.HIGH
    assert (config.tags, config.cancel_superseded, config.run_forks) == (True, False, True)
    assert config.timeout_minutes == 90
    assert config.branches == BranchFilter(("main", "release/*"), ("release/old-*",))


def test_qgjob_table_is_the_same() -> None:
    nested = FULL.replace("[branches]", "[qgjob.branches]")
    nested = "[qgjob]\n" + nested
    assert parse_config(nested) == parse_config(FULL)


def test_branch_filter_and_refs() -> None:
    config = parse_config(FULL)
    assert config.runs_on_ref("refs/heads/main")
    assert config.runs_on_ref("refs/heads/release/2.0")
    assert not config.runs_on_ref("refs/heads/release/old-1")
    assert not config.runs_on_ref("refs/heads/feature/x")
    assert config.runs_on_ref("refs/tags/v1.0")  # tags = true
    assert not RepoConfig().runs_on_ref("refs/tags/v1.0")
    assert RepoConfig().runs_on_ref("refs/heads/anything/at/all")
    assert not RepoConfig().runs_on_ref("refs/notes/x")


def test_app_version_id_template() -> None:
    config = parse_config('app_version_id = "{branch}@{short_sha}/pr{pr}/{sha}{{literal}}"')
    rendered = config.render_app_version_id(sha=SHA, branch="main", pr=12)
    assert rendered == f"main@6113728/pr12/{SHA}{{literal}}"
    assert RepoConfig().render_app_version_id(sha=SHA, branch=None, pr=None) == SHA


def test_template_value_missing_for_this_commit() -> None:
    config = parse_config('app_version_id = "pr-{pr}"')
    with pytest.raises(InvalidConfig, match=r"uses \{pr\}.*not .* for a pull request") as info:
        config.render_app_version_id(sha=SHA, branch="main", pr=None)
    assert info.value.key == "app_version_id"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("specs = [", None, "not valid TOML"),
        ("spec = ['x']", "spec", "unknown key 'spec'; accepted keys are specs, targets"),
        ("specs = 3", "specs", "specs must be a list of glob strings"),
        ("specs = []", "specs", "at least one glob"),
        ("specs = ['']", "specs", "list of glob strings"),
        ("specs = ['/tests/*.ts']", "specs", "relative to the repository root"),
        ("specs = ['../x/*.ts']", "specs", "without '..'"),
        ("targets = ['ios']", "targets", "unknown target 'ios'; accepted targets are emulator"),
        ("targets = []", "targets", "at least one of emulator, device, browserstack"),
        ("targets = [1]", "targets", "list of target names"),
        ("app_version_id = '{commit}'", "app_version_id", r"unknown placeholder \{commit\}"),
        ("app_version_id = '{}'", "app_version_id", r"unknown placeholder \{\}"),
        ("app_version_id = '{sha:>8}'", "app_version_id", "unknown placeholder"),
        ("app_version_id = '{sha!r}'", "app_version_id", "unknown placeholder"),
        ("app_version_id = '{sha'", "app_version_id", "not a valid template"),
        ("app_version_id = ''", "app_version_id", "non-empty string"),
        ("app_version_id = 7", "app_version_id", "non-empty string"),
        ("priority = 'urgent'", "priority", "priority must be one of low, normal, high"),
        ("tags = 'yes'", "tags", "tags must be true or false"),
        ("cancel_superseded = 1", "cancel_superseded", "must be true or false"),
        ("run_forks = 'no'", "run_forks", "run_forks must be true or false"),
        ("branches = ['main']", "branches", "branches must be a table"),
        ("[branches]\nonly = ['main']", "branches.only", "accepted keys are include, exclude"),
        ("[branches]\ninclude = 'main'\nexclude = [3]", "branches.exclude", "branch globs"),
        ("timeout_minutes = 0", "timeout_minutes", "whole number of minutes from 1 to 1440"),
        ("timeout_minutes = 1441", "timeout_minutes", "from 1 to 1440, got 1441"),
        ("timeout_minutes = 1.5", "timeout_minutes", "whole number of minutes"),
        ("timeout_minutes = '60'", "timeout_minutes", "whole number of minutes"),
        ("timeout_minutes = true", "timeout_minutes", "whole number of minutes"),
        ("qgjob = 3", "qgjob", r"qgjob must be a table"),
        ("tags = true\n[qgjob]\nrun_forks = true", "tags", "outside \\[qgjob\\]"),
    ],
)
def test_errors_name_the_key_and_what_is_accepted(text: str, key: str | None, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message) as info:
        parse_config(text, path=".github/qgjob.toml")
    assert info.value.key == key
    assert str(info.value).startswith(".github/qgjob.toml: ")


def test_invalid_utf8() -> None:
    with pytest.raises(InvalidConfig, match="not UTF-8"):
        parse_config(b"specs = ['\xff']")


def test_single_string_lists_are_accepted_and_deduplicated() -> None:
    config = parse_config("targets = 'device'\nspecs = ['a/*.ts', 'a/*.ts']")
    assert config.targets == (Target.DEVICE,)
    assert config.specs == ("a/*.ts",)


async def test_load_config_prefers_the_root_then_dot_github() -> None:
    files = {".github/qgjob.toml": b"targets = ['device']", "qgjob.toml": b"priority = 'low'"}
    asked: list[str] = []

    async def read(path: str) -> bytes | None:
        asked.append(path)
        return files.get(path)

    assert (await load_config(read)).priority is Priority.LOW
    assert asked == ["qgjob.toml"]
    del files["qgjob.toml"]
    assert (await load_config(read)).targets == (Target.DEVICE,)
    files.clear()
    assert await load_config(read) == RepoConfig()


async def test_load_config_reports_the_path_it_read() -> None:
    async def read(path: str) -> bytes | None:
        return b"targets = ['ios']" if path == ".github/qgjob.toml" else None

    with pytest.raises(InvalidConfig, match=r"^\.github/qgjob\.toml: unknown target"):
        await load_config(read)
