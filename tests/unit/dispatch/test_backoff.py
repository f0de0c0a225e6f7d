"""Backoff delays: exponential, capped, jittered, never zero, reset by a success."""

from __future__ import annotations

import random

from dispatch.backoff import Backoff


def test_delays_double_up_to_the_cap_and_stay_in_the_upper_half() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_workers_that_failed_together() -> None:
    fleet = [Backoff(rng=random.Random(seed)) for seed in range(20)]
    third = {round(b.next_delay() + b.next_delay() + b.next_delay(), 6) for b in fleet}
    assert len(third) == 20


def test_reset_starts_again_from_the_base() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(1))
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_many_failures_do_not_overflow() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, failures=10_000)
    assert 15.0 <= backoff.next_delay() <= 30.0
