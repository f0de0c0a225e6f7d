"""Grouping strategies: which jobs share a group key, and so one install and one lease.

The key is always (org_id, app_version_id, target) — invariant 1 of DESIGN §3: a group never
mixes orgs, app builds or targets. A strategy may split further by extra dimensions (the
run's repo, the spec's tags) but never merge across those three; `group_key` checks what a
strategy returns, so a custom strategy that drops a base dimension fails loudly instead of
mixing builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote

from dispatch.errors import DispatchError
from qgjob.types import Target

__all__ = [
    "BASE_DIMENSIONS",
    "EXTRA_DIMENSIONS",
    "BuildRef",
    "DefaultGrouping",
    "DimensionGrouping",
    "GroupKey",
    "GroupingError",
    "GroupingStrategy",
    "JobFacts",
    "group_key",
    "strategy_for",
]

BASE_DIMENSIONS: tuple[str, ...] = ("org_id", "app_version_id", "target")
EXTRA_DIMENSIONS: tuple[str, ...] = ("repo", "tag")


class GroupingError(DispatchError, ValueError):
    """A grouping strategy or its configuration breaks the grouping rules (permanent)."""


@dataclass(frozen=True, order=True)
class BuildRef:
    """A build made ready on a worker: installed on its device or uploaded to its cloud."""

    org_id: str
    app_version_id: str
    target: Target


@dataclass(frozen=True, order=True)
class GroupKey:
    """What the jobs of one group share. `extra` holds (dimension, value) pairs, in order."""

    org_id: str
    app_version_id: str
    target: Target
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def build(self) -> BuildRef:
        return BuildRef(self.org_id, self.app_version_id, self.target)

    @property
    def base(self) -> tuple[str, str, Target]:
        """The three dimensions every key has."""
        return (self.org_id, self.app_version_id, self.target)

    @property
    def text(self) -> str:
        """A stable, unambiguous text form (`org|app|target|repo=x`), for the `group.key` column."""
        parts = [self.org_id, self.app_version_id, str(self.target)]
        parts += [f"{name}={value}" for name, value in self.extra]
        return "|".join(quote(part, safe="=") for part in parts)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> GroupKey | None:
        """The key whose `text` this is, or None when it is not one."""
        parts = [unquote(part) for part in text.split("|")]
        if len(parts) < 3 or parts[2] not in Target.__members__.values():
            return None
        extra = []
        for part in parts[3:]:
            name, sep, value = part.partition("=")
            if not sep:
                return None
            extra.append((name, value))
        return cls(parts[0], parts[1], Target(parts[2]), tuple(extra))


@dataclass(frozen=True)
class JobFacts:
    """What a strategy may look at when keying a job."""

    org_id: str
    app_version_id: str
    target: Target
    repo: str | None = None
    tags: tuple[str, ...] = ()

    def dimension(self, name: str) -> str:
        if name == "repo":
            return self.repo or ""
        if name == "tag":
            return ",".join(sorted(set(self.tags)))
        raise GroupingError(f"unknown grouping dimension {name!r}; known: {EXTRA_DIMENSIONS}")


class GroupingStrategy(Protocol):
    """Maps a job to its group key. Must keep the three base dimensions as they are."""

    @property
    def name(self) -> str: ...

    def key_for(self, job: JobFacts) -> GroupKey: ...


@dataclass(frozen=True)
class DefaultGrouping:
    """One group per (org, app_version_id, target)."""

    @property
    def name(self) -> str:
        return "default"

    def key_for(self, job: JobFacts) -> GroupKey:
        return GroupKey(job.org_id, job.app_version_id, job.target)


@dataclass(frozen=True)
class DimensionGrouping:
    """The default key split further by extra dimensions (`repo`, `tag`)."""

    extra: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_extra(self.extra)

    @property
    def name(self) -> str:
        return "+".join(("default", *self.extra))

    def key_for(self, job: JobFacts) -> GroupKey:
        extra = tuple((name, job.dimension(name)) for name in self.extra)
        return GroupKey(job.org_id, job.app_version_id, job.target, extra)


def _check_extra(extra: Sequence[str]) -> None:
    for name in extra:
        if name in BASE_DIMENSIONS:
            raise GroupingError(f"{name!r} is a base dimension, always present; list only extras")
        if name not in EXTRA_DIMENSIONS:
            raise GroupingError(
                f"unknown grouping dimension {name!r}; accepted extras: {list(EXTRA_DIMENSIONS)}"
            )
    if len(set(extra)) != len(extra):
        raise GroupingError(f"grouping dimensions repeat: {list(extra)}")


def strategy_for(dimensions: Sequence[str]) -> GroupingStrategy:
    """The strategy for a configured list of dimensions (e.g. from an org's `qgjob.toml`).

    The list must contain org_id, app_version_id and target; it may add `repo` and `tag`.
    """
    missing = [name for name in BASE_DIMENSIONS if name not in dimensions]
    if missing:
        raise GroupingError(
            f"grouping must keep {list(BASE_DIMENSIONS)}; missing {missing} in {list(dimensions)}"
        )
    extra = tuple(name for name in dimensions if name not in BASE_DIMENSIONS)
    if len(set(dimensions)) != len(dimensions):
        raise GroupingError(f"grouping dimensions repeat: {list(dimensions)}")
    return DimensionGrouping(extra) if extra else DefaultGrouping()


def group_key(strategy: GroupingStrategy, job: JobFacts) -> GroupKey:
    """The key `strategy` gives `job`, refused if it changed any base dimension."""
    key = strategy.key_for(job)
    expected = (job.org_id, job.app_version_id, job.target)
    got = (key.org_id, key.app_version_id, key.target)
    if got != expected:
        raise GroupingError(
            f"strategy {strategy.name!r} keyed a job of {expected} as {got}: "
            "a strategy may add dimensions but never change org_id, app_version_id or target"
        )
    names = [name for name, _ in key.extra]
    if any(name in BASE_DIMENSIONS for name in names) or len(set(names)) != len(names):
        raise GroupingError(f"strategy {strategy.name!r} produced bad extra dimensions {names}")
    return key
