"""Duration estimates from history: p80 of recent runs per spec, setup time per (org, target).

The store keeps the raw samples (one row per finished attempt); this module turns them into
the numbers the scheduler works with. Everything here is pure: samples in, seconds out.

- A spec's estimate is the `percentile` (default 80) of its last `window` durations, per
  (org, test_path, target) — a rolling percentile, not "last run" (see Flank#2354, #579).
- A spec never seen gets `default_duration_s`, or with `UnknownSpecPolicy.MEAN_OF_KNOWN` the
  mean of what specs of the same (org, target) took lately (Flank's
  `use-average-test-time-for-new-tests`): the mean of the recent durations of any spec in the
  scope (`scope_samples`, the last `scope_window`, which the store keeps per (org, target)),
  else the mean of the estimates of the specs passed, else the default.
- Setup (install or upload) time per (org, target) is learned the same way.
- Samples that are not finite or not positive are ignored: a 0.0 s duration is a recording
  glitch, not a fast test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple, TypeVar

from qgjob.types import Outcome, Target

__all__ = [
    "DurationHistory",
    "EstimateConfig",
    "SetupKey",
    "SpecKey",
    "UnknownSpecPolicy",
    "counts_as_sample",
    "estimate_durations",
    "estimate_setup_s",
    "percentile",
    "recent_estimate_s",
]


_K = TypeVar("_K")


class UnknownSpecPolicy(StrEnum):
    """What a spec without history is assumed to take."""

    DEFAULT = "default"
    MEAN_OF_KNOWN = "mean_of_known"


class SpecKey(NamedTuple):
    """Whose history a duration sample belongs to."""

    org_id: str
    test_path: str
    target: Target


class SetupKey(NamedTuple):
    """Whose history a setup (install/upload) sample belongs to."""

    org_id: str
    target: Target


@dataclass(frozen=True)
class EstimateConfig:
    """How estimates are made from samples."""

    window: int = 20
    percentile: float = 80.0
    default_duration_s: float = 120.0
    unknown_spec: UnknownSpecPolicy = UnknownSpecPolicy.DEFAULT
    default_setup_s: float = 60.0
    scope_window: int = 50

    def __post_init__(self) -> None:
        if self.window < 1 or self.scope_window < 1:
            raise ValueError(f"window must be at least 1 sample, got {self.window}")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {self.percentile}")
        for name in ("default_duration_s", "default_setup_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")


def counts_as_sample(outcome: Outcome) -> bool:
    """Whether an attempt with this outcome says how long the spec takes.

    Passed, flaky, failed and timed-out attempts ran the test (a timeout is a long test);
    skipped attempts ran nothing and infrastructure errors measure the infrastructure.
    """
    return outcome in (Outcome.PASSED, Outcome.FLAKY, Outcome.FAILED, Outcome.TIMED_OUT)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def _valid(samples: Iterable[float]) -> list[float]:
    return [s for s in samples if math.isfinite(s) and s > 0.0]


def recent_estimate_s(samples: Sequence[float], *, config: EstimateConfig) -> float | None:
    """The percentile of the last `window` valid samples (oldest first), or None if none."""
    valid = _valid(samples)[-config.window :]
    if not valid:
        return None
    return percentile(valid, config.percentile)


def estimate_durations(
    samples_by_spec: Mapping[str, Sequence[float]],
    test_paths: Iterable[str],
    *,
    config: EstimateConfig,
    scope_samples: Sequence[float] = (),
) -> dict[str, float]:
    """Estimated seconds for each of `test_paths`, given the samples of one (org, target).

    Without `scope_samples`, `samples_by_spec` is the scope for "mean of known": pass every
    spec of the org and target you have history for, not only the ones asked about.
    """
    known = {
        path: estimate
        for path, samples in samples_by_spec.items()
        if (estimate := recent_estimate_s(samples, config=config)) is not None
    }
    fallback = config.default_duration_s
    recent = _valid(scope_samples)[-config.scope_window :]
    if config.unknown_spec is UnknownSpecPolicy.MEAN_OF_KNOWN and recent:
        fallback = sum(recent) / len(recent)
    elif config.unknown_spec is UnknownSpecPolicy.MEAN_OF_KNOWN and known:
        fallback = sum(known.values()) / len(known)
    return {path: known.get(path, fallback) for path in test_paths}


def estimate_setup_s(samples: Sequence[float], *, config: EstimateConfig) -> float:
    """Estimated setup seconds for one (org, target), the default when never measured."""
    estimate = recent_estimate_s(samples, config=config)
    return config.default_setup_s if estimate is None else estimate


def _appended(
    table: Mapping[_K, tuple[float, ...]], key: _K, value: float, window: int
) -> dict[_K, tuple[float, ...]]:
    updated = dict(table)
    updated[key] = (*table.get(key, ()), value)[-window:]
    return updated


@dataclass(frozen=True)
class DurationHistory:
    """Recent samples per spec and per setup, as the store would hold them; immutable.

    `recorded`/`setup_recorded` return a new history; the estimates are the module's pure
    functions applied to the samples kept (the last `config.window` of each key).
    """

    config: EstimateConfig = field(default_factory=EstimateConfig)
    durations: Mapping[SpecKey, tuple[float, ...]] = field(default_factory=dict)
    setups: Mapping[SetupKey, tuple[float, ...]] = field(default_factory=dict)
    scopes: Mapping[SetupKey, tuple[float, ...]] = field(default_factory=dict)

    def recorded(self, key: SpecKey, duration_s: float) -> DurationHistory:
        """This history with one more duration sample for `key` (invalid samples dropped)."""
        if not _valid([duration_s]):
            return self
        scope = SetupKey(key.org_id, key.target)
        return replace(
            self,
            durations=_appended(self.durations, key, duration_s, self.config.window),
            scopes=_appended(self.scopes, scope, duration_s, self.config.scope_window),
        )

    def setup_recorded(self, key: SetupKey, setup_s: float) -> DurationHistory:
        """This history with one more setup sample for `key` (invalid samples dropped)."""
        if not _valid([setup_s]):
            return self
        return replace(self, setups=_appended(self.setups, key, setup_s, self.config.window))

    def estimate_s(self, key: SpecKey) -> float:
        """Expected seconds for one spec on one target for one org."""
        estimates = self.estimates_s(
            org_id=key.org_id, target=key.target, test_paths=[key.test_path]
        )
        return estimates[key.test_path]

    def estimates_s(
        self, *, org_id: str, target: Target, test_paths: Iterable[str]
    ) -> dict[str, float]:
        """Expected seconds for several specs of one org on one target."""
        scope = {
            key.test_path: samples
            for key, samples in self.durations.items()
            if key.org_id == org_id and key.target == target
        }
        return estimate_durations(
            scope,
            test_paths,
            config=self.config,
            scope_samples=self.scopes.get(SetupKey(org_id, target), ()),
        )

    def setup_estimate_s(self, key: SetupKey) -> float:
        """Expected setup seconds for one org on one target."""
        return estimate_setup_s(self.setups.get(key, ()), config=self.config)
