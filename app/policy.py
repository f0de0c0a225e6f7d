"""The scheduling configuration the service builds once from its settings.

`dispatch.scheduling` (the pure policy), `dispatch.estimates` (p80 of history) and
`dispatch.grouping` (the group key) take plain configuration objects; this module makes them
from `QGJOB_*` settings and hands them to the claim and to `waiting_reason` together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatch.estimates import EstimateConfig, UnknownSpecPolicy
from dispatch.grouping import DefaultGrouping, DimensionGrouping, GroupingStrategy
from dispatch.scheduling import SchedulerConfig
from qgjob.settings import Settings

# How much of the queue one claim reads: the keys most likely to be served (by priority,
# and by age so that aged keys are never out of sight) and each key's most urgent jobs.
MAX_KEYS = 64
MAX_JOBS_PER_KEY = 100
# A claim first lists this many jobs of each key (enough to rank the keys: their age,
# priority, backoff and an estimate of their work), then up to MAX_JOBS_PER_KEY of the one it
# chose: what it reads grows with the number of keys 16 rows at a time, not 100.
FIRST_LOOK_JOBS_PER_KEY = 16
# Beyond this many pending jobs a key's size stops mattering to the policy.
MAX_JOBS_COUNTED = 400
# A lease never holds more jobs than this, whatever the estimates say.
MAX_JOBS_PER_GROUP = 100


@dataclass(frozen=True)
class Policy:
    """Everything the claim needs to decide, besides the queue itself."""

    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    estimates: EstimateConfig = field(
        default_factory=lambda: EstimateConfig(unknown_spec=UnknownSpecPolicy.MEAN_OF_KNOWN)
    )
    grouping: Mapping[str, GroupingStrategy] = field(default_factory=dict)
    max_keys: int = MAX_KEYS
    max_jobs_per_key: int = MAX_JOBS_PER_KEY
    first_look_jobs_per_key: int = FIRST_LOOK_JOBS_PER_KEY
    max_jobs_counted: int = MAX_JOBS_COUNTED
    max_jobs_per_group: int = MAX_JOBS_PER_GROUP

    def strategy(self, org_id: str) -> GroupingStrategy:
        """The org's grouping: its own entry, else the `*` entry, else the default key."""
        return self.grouping.get(org_id) or self.grouping.get("*") or DefaultGrouping()


def policy_from_settings(settings: Settings) -> Policy:
    estimates = EstimateConfig(
        default_duration_s=settings.default_duration_s,
        default_setup_s=settings.default_setup_s,
        unknown_spec=UnknownSpecPolicy(settings.unknown_spec_estimate),
    )
    scheduler = SchedulerConfig(
        aging_bound_s=settings.aging_s,
        default_org_cap=settings.org_cap,
        org_caps=dict(settings.org_caps),
        default_setup_s=settings.default_setup_s,
        max_batch_s=settings.max_batch_s or None,
        min_batch_s=settings.min_batch_s,
    )
    grouping: dict[str, GroupingStrategy] = {
        org: DimensionGrouping(extra) for org, extra in settings.grouping
    }
    return Policy(scheduler=scheduler, estimates=estimates, grouping=grouping)
