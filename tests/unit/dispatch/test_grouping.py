"""Grouping strategies may add dimensions to the key but never drop org, build or target."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dispatch.errors import DispatchError
from dispatch.grouping import (
    DefaultGrouping,
    DimensionGrouping,
    GroupingError,
    GroupKey,
    JobFacts,
    group_key,
    strategy_for,
)
from qgjob.types import Target

JOB = JobFacts("acme", "v1.2", Target.EMULATOR, repo="acme/app", tags=("@smoke", "@login"))


def test_default_key_is_org_build_target() -> None:
    assert group_key(DefaultGrouping(), JOB) == GroupKey("acme", "v1.2", Target.EMULATOR)


def test_extra_dimensions_split_further() -> None:
    key = group_key(strategy_for(["org_id", "app_version_id", "target", "repo", "tag"]), JOB)
    assert key.extra == (("repo", "acme/app"), ("tag", "@login,@smoke"))
    assert key.build == GroupKey("acme", "v1.2", Target.EMULATOR).build


@pytest.mark.parametrize(
    "dimensions",
    [["org_id", "app_version_id"], ["repo"], ["org_id", "target", "tag"], []],
)
def test_configuration_cannot_drop_a_base_dimension(dimensions: list[str]) -> None:
    with pytest.raises(GroupingError, match="must keep"):
        strategy_for(dimensions)


def test_unknown_or_repeated_dimensions_are_refused() -> None:
    with pytest.raises(GroupingError, match="unknown grouping dimension 'branch'"):
        strategy_for(["org_id", "app_version_id", "target", "branch"])
    with pytest.raises(GroupingError, match="repeat"):
        strategy_for(["org_id", "app_version_id", "target", "repo", "repo"])
    with pytest.raises(GroupingError, match="base dimension"):
        DimensionGrouping(("target",))


@dataclass(frozen=True)
class _MergesBuilds:
    """A strategy that tries to put every build of an org in one group."""

    @property
    def name(self) -> str:
        return "merge-builds"

    def key_for(self, job: JobFacts) -> GroupKey:
        return GroupKey(job.org_id, "*", job.target)


@dataclass(frozen=True)
class _SmugglesBase:
    @property
    def name(self) -> str:
        return "smuggle"

    def key_for(self, job: JobFacts) -> GroupKey:
        return GroupKey(job.org_id, job.app_version_id, job.target, (("org_id", "other"),))


def test_a_strategy_that_drops_a_base_dimension_is_refused() -> None:
    with pytest.raises(GroupingError, match="never change org_id, app_version_id or target"):
        group_key(_MergesBuilds(), JOB)
    with pytest.raises(GroupingError, match="bad extra dimensions"):
        group_key(_SmugglesBase(), JOB)


def test_grouping_errors_are_permanent_dispatch_errors() -> None:
    error = GroupingError("nope")
    assert isinstance(error, DispatchError)
    assert isinstance(error, ValueError)
    assert not error.transient


def test_key_text_is_unambiguous() -> None:
    plain = GroupKey("acme", "v1|x", Target.DEVICE)
    split = GroupKey("acme", "v1", Target.DEVICE, (("repo", "x"),))
    assert plain.text == "acme|v1%7Cx|device"
    assert split.text == "acme|v1|device|repo=x"
    assert plain.text != split.text


@pytest.mark.parametrize(
    "key",
    [
        GroupKey("acme", "v1", Target.EMULATOR),
        GroupKey("a|b", "v=1/2", Target.BROWSERSTACK, (("repo", "org/app=x|y"),)),
    ],
)
def test_a_key_parses_back_from_its_text(key: GroupKey) -> None:
    assert GroupKey.parse(key.text) == key


@pytest.mark.parametrize("text", ["acme/v1/emulator", "acme|v1|phone", "acme|v1|device|repo"])
def test_text_that_is_not_a_key_parses_to_none(text: str) -> None:
    assert GroupKey.parse(text) is None
