"""Duration estimates: rolling p80 per spec, defaults for unknown specs, learned setup times."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.estimates import (
    DurationHistory,
    EstimateConfig,
    SetupKey,
    SpecKey,
    UnknownSpecPolicy,
    counts_as_sample,
    estimate_durations,
    estimate_setup_s,
    percentile,
    recent_estimate_s,
)
from qgjob.types import Outcome, Target

SPEC = SpecKey("acme", "tests/login.spec.ts", Target.EMULATOR)


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 80) == pytest.approx(4.2)
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert percentile([7.0], 80) == 7.0
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 80)


def test_estimate_uses_only_the_recent_window() -> None:
    config = EstimateConfig(window=3)
    # The first two (slow) samples fell out of the window.
    samples = [500.0, 400.0, 10.0, 20.0, 30.0]
    assert recent_estimate_s(samples, config=config) == pytest.approx(26.0)


def test_invalid_samples_are_ignored() -> None:
    config = EstimateConfig()
    assert recent_estimate_s([0.0, -3.0, math.nan, math.inf], config=config) is None
    assert recent_estimate_s([0.0, 12.0], config=config) == 12.0


def test_unknown_specs_get_the_default() -> None:
    config = EstimateConfig(default_duration_s=90.0)
    estimates = estimate_durations({"a": [10.0]}, ["a", "new"], config=config)
    assert estimates == {"a": 10.0, "new": 90.0}


def test_unknown_specs_can_get_the_mean_of_known_ones() -> None:
    config = EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN)
    estimates = estimate_durations({"a": [10.0], "b": [30.0]}, ["a", "new"], config=config)
    assert estimates == {"a": 10.0, "new": 20.0}


def test_mean_of_known_prefers_the_recent_durations_of_the_scope() -> None:
    config = EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN, scope_window=2)
    estimates = estimate_durations(
        {"a": [10.0]}, ["a", "new"], config=config, scope_samples=[100.0, 4.0, 8.0, 0.0]
    )
    assert estimates == {"a": 10.0, "new": 6.0}  # the last 2 valid samples: 4 and 8


def test_scope_samples_do_not_change_the_default_policy() -> None:
    config = EstimateConfig(default_duration_s=90.0)
    assert estimate_durations({}, ["new"], config=config, scope_samples=[5.0]) == {"new": 90.0}


def test_history_estimates_unknown_specs_from_its_scope() -> None:
    config = EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN)
    history = DurationHistory(config).recorded(SPEC, 10.0).recorded(SPEC, 20.0)
    other = SpecKey("globex", "tests/x.spec.ts", Target.EMULATOR)
    history = history.recorded(other, 500.0)
    estimates = history.estimates_s(org_id="acme", target=Target.EMULATOR, test_paths=["new"])
    assert estimates == {"new": 15.0}


def test_mean_of_known_falls_back_to_the_default_without_history() -> None:
    config = EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN, default_duration_s=77.0)
    assert estimate_durations({}, ["new"], config=config) == {"new": 77.0}


def test_setup_defaults_then_learns() -> None:
    config = EstimateConfig(default_setup_s=60.0)
    assert estimate_setup_s([], config=config) == 60.0
    assert estimate_setup_s([20.0, 20.0, 20.0], config=config) == 20.0


@pytest.mark.parametrize(
    ("outcome", "counts"),
    [
        (Outcome.PASSED, True),
        (Outcome.FLAKY, True),
        (Outcome.FAILED, True),
        (Outcome.TIMED_OUT, True),
        (Outcome.SKIPPED, False),
        (Outcome.ERROR, False),
    ],
)
def test_which_outcomes_measure_the_spec(outcome: Outcome, counts: bool) -> None:
    assert counts_as_sample(outcome) is counts


def test_history_is_immutable_and_keeps_a_window() -> None:
    empty = DurationHistory(EstimateConfig(window=2, default_duration_s=100.0))
    one = empty.recorded(SPEC, 10.0)
    three = one.recorded(SPEC, 20.0).recorded(SPEC, 30.0)
    assert empty.estimate_s(SPEC) == 100.0
    assert one.estimate_s(SPEC) == 10.0
    assert three.durations[SPEC] == (20.0, 30.0)
    assert three.estimate_s(SPEC) == pytest.approx(28.0)


def test_history_is_scoped_per_org_and_target() -> None:
    history = DurationHistory(EstimateConfig(default_duration_s=100.0)).recorded(SPEC, 10.0)
    assert history.estimate_s(SpecKey("other", SPEC.test_path, SPEC.target)) == 100.0
    assert history.estimate_s(SpecKey("acme", SPEC.test_path, Target.DEVICE)) == 100.0


def test_history_learns_setup_per_org_and_target() -> None:
    key = SetupKey("acme", Target.BROWSERSTACK)
    history = DurationHistory(EstimateConfig(default_setup_s=60.0)).setup_recorded(key, 25.0)
    assert history.setup_estimate_s(key) == 25.0
    assert history.setup_estimate_s(SetupKey("acme", Target.EMULATOR)) == 60.0
    assert history.setup_recorded(key, 0.0) is history


@pytest.mark.parametrize(
    "bad",
    [
        {"window": 0},
        {"percentile": 101.0},
        {"default_duration_s": -1.0},
        {"default_setup_s": math.nan},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        EstimateConfig(**bad)  # type: ignore[arg-type]


samples = st.lists(st.floats(min_value=0.001, max_value=1e5), min_size=1, max_size=50)


@given(samples)
def test_estimate_lies_within_the_window(values: list[float]) -> None:
    config = EstimateConfig(window=10)
    estimate = recent_estimate_s(values, config=config)
    window = values[-10:]
    assert estimate is not None
    assert min(window) <= estimate <= max(window)


@given(samples)
def test_p80_is_never_below_the_median(values: list[float]) -> None:
    assert percentile(values, 80) >= percentile(values, 50)
