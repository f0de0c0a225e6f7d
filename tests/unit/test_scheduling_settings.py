"""Scheduling settings (aging, caps, grouping, estimates) and the policy built from them."""

from __future__ import annotations

import pytest

from app.policy import policy_from_settings
from dispatch.estimates import UnknownSpecPolicy
from dispatch.grouping import DefaultGrouping, DimensionGrouping, JobFacts, group_key
from qgjob.settings import Settings, SettingsError
from qgjob.types import Target


def test_defaults_make_the_documented_policy() -> None:
    policy = policy_from_settings(Settings.from_env({}))
    assert policy.scheduler.aging_bound_s == 1800.0
    assert policy.scheduler.org_cap("acme") is None
    assert policy.scheduler.max_batch_s == 180.0
    assert policy.estimates.unknown_spec is UnknownSpecPolicy.MEAN_OF_KNOWN
    assert isinstance(policy.strategy("acme"), DefaultGrouping)


def test_caps_grouping_and_times_from_the_environment() -> None:
    env = {
        "QGJOB_AGING_S": "600",
        "QGJOB_ORG_CAP": "3",
        "QGJOB_ORG_CAPS": "acme=1, globex=2",
        "QGJOB_GROUPING": "acme=repo",
        "QGJOB_MAX_BATCH_S": "0",
        "QGJOB_DEFAULT_SETUP_S": "30",
        "QGJOB_UNKNOWN_SPEC_ESTIMATE": "default",
    }
    policy = policy_from_settings(Settings.from_env(env))
    caps = {org: policy.scheduler.org_cap(org) for org in ("acme", "globex", "initech")}
    assert caps == {"acme": 1, "globex": 2, "initech": 3}
    assert policy.scheduler.aging_bound_s == 600.0 and policy.scheduler.max_batch_s is None
    assert policy.estimates.default_setup_s == 30.0 == policy.scheduler.default_setup_s
    assert policy.estimates.unknown_spec is UnknownSpecPolicy.DEFAULT
    strategy = policy.strategy("acme")
    assert isinstance(strategy, DimensionGrouping)
    key = group_key(strategy, JobFacts("acme", "v1", Target.EMULATOR, repo="acme/app"))
    assert key.extra == (("repo", "acme/app"),)
    assert isinstance(policy.strategy("globex"), DefaultGrouping)


def test_a_star_entry_groups_every_org() -> None:
    policy = policy_from_settings(Settings.from_env({"QGJOB_GROUPING": "*=repo"}))
    assert isinstance(policy.strategy("anyone"), DimensionGrouping)


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("QGJOB_ORG_CAPS", "acme", "org=cap pairs"),
        ("QGJOB_ORG_CAPS", "acme=0", "org=cap pairs"),
        ("QGJOB_ORG_CAP", "0", "at least 1"),
        ("QGJOB_GROUPING", "acme=tag", "may add"),
        ("QGJOB_GROUPING", "acme=target", "may add"),
        ("QGJOB_GROUPING", "acme=repo,repo", "once each"),
        ("QGJOB_GROUPING", "acme", "org=dimension"),
        ("QGJOB_UNKNOWN_SPEC_ESTIMATE", "median", "default or mean_of_known"),
        ("QGJOB_AGING_S", "soon", "a number of seconds"),
    ],
)
def test_bad_values_name_the_variable_and_what_is_accepted(name: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: raw})
    assert name in str(caught.value) and says in str(caught.value)


def test_no_cap_can_be_spelled_out() -> None:
    assert Settings.from_env({"QGJOB_ORG_CAP": "none"}).org_cap is None
