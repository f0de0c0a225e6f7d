"""Parsing real webhook deliveries (octokit/webhooks examples) into typed events."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from github_app.errors import InvalidSignature, MalformedDelivery
from github_app.events import (
    CheckRunEvent,
    CheckSuiteEvent,
    Event,
    InstallationEvent,
    PullRequestEvent,
    PushEvent,
    parse_delivery,
    read_delivery,
)
from github_app.signatures import sign

Payload = Callable[[str], dict[str, Any]]
SECRET = "webhook-secret"


def deliver(event: str, payload: dict[str, Any], *, delivery: str = "d-1") -> Event:
    """Sign and parse a delivery the way the route will."""
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, secret=SECRET),
        "Content-Type": "application/json",
    }
    return read_delivery(headers, body, secret=SECRET)


def test_push_with_new_branch(load_payload: Payload) -> None:
    event = deliver("push", load_payload("push/with-new-branch.payload.json"), delivery="abc")
    assert isinstance(event, PushEvent)
    assert (event.name, event.action, event.delivery_id) == ("push", None, "abc")
    assert event.installation_id == 1
    assert event.repository.full_name == "Codertocat/Hello-World"
    assert event.repository.owner_login == "Codertocat"
    assert event.ref == "refs/heads/master"
    assert (event.branch, event.tag) == ("master", None)
    assert event.before == "0" * 40
    assert event.after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert (event.created, event.deleted, event.forced) == (True, False, False)


def test_push_deleting_a_tag(load_payload: Payload) -> None:
    event = deliver("push", load_payload("push/with-installation.payload.json"))
    assert isinstance(event, PushEvent)
    assert (event.branch, event.tag) == (None, "simple-tag")
    assert event.deleted is True
    assert event.after == "0" * 40


@pytest.mark.parametrize("action", ["opened", "synchronize"])
def test_pull_request(load_payload: Payload, action: str) -> None:
    event = deliver("pull_request", load_payload(f"pull_request/{action}.payload.json"))
    assert isinstance(event, PullRequestEvent)
    assert event.action == action
    assert event.installation_id == 1
    assert event.number == 2
    assert event.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert event.head_ref == "changes"
    assert event.head_repo_full_name == "Codertocat/Hello-World"
    assert event.base_repo_full_name == "Codertocat/Hello-World"
    assert event.base_ref == "master"
    assert event.repository.full_name == "Codertocat/Hello-World"
    assert event.is_fork is False
    assert event.merged is False


@pytest.mark.parametrize("merged", [True, False, None])
def test_a_closed_pull_request_says_whether_it_was_merged(
    load_payload: Payload, merged: bool | None
) -> None:
    payload = load_payload("pull_request/closed.payload.json")
    payload["pull_request"]["merged"] = merged
    event = deliver("pull_request", payload)
    assert isinstance(event, PullRequestEvent)
    assert (event.action, event.number, event.merged) == ("closed", 2, bool(merged))


def fork_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The opened pull request, as if its head lived in a contributor's fork."""
    forked = copy.deepcopy(payload)
    head_repo = forked["pull_request"]["head"]["repo"]
    head_repo.update(
        id=999, name="Hello-World", full_name="contributor/Hello-World", fork=True, private=False
    )
    head_repo["owner"]["login"] = "contributor"
    forked["pull_request"]["head"]["label"] = "contributor:changes"
    forked["pull_request"]["head"]["user"]["login"] = "contributor"
    return forked


def test_fork_pull_request_is_recognised(load_payload: Payload) -> None:
    event = deliver("pull_request", fork_of(load_payload("pull_request/opened.payload.json")))
    assert isinstance(event, PullRequestEvent)
    assert event.is_fork is True
    assert event.head_repo_full_name == "contributor/Hello-World"
    # Check runs go on the base repository, at the head commit.
    assert event.repository.full_name == "Codertocat/Hello-World"
    assert event.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def test_pull_request_from_a_deleted_fork_counts_as_fork(load_payload: Payload) -> None:
    payload = load_payload("pull_request/opened.payload.json")
    payload["pull_request"]["head"]["repo"] = None
    event = deliver("pull_request", payload)
    assert isinstance(event, PullRequestEvent)
    assert event.head_repo_full_name is None
    assert event.is_fork is True


def test_check_suite_rerequested(load_payload: Payload) -> None:
    event = deliver("check_suite", load_payload("check_suite/rerequested.payload.json"))
    assert isinstance(event, CheckSuiteEvent)
    assert event.action == "rerequested"
    assert event.installation_id == 957387
    assert event.check_suite_id == 118578147
    assert event.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert event.head_branch == "changes"
    assert event.app_id == 29310
    assert event.pull_request_numbers == (2,)


def test_check_run_rerequested(load_payload: Payload) -> None:
    event = deliver("check_run", load_payload("check_run/rerequested.payload.json"))
    assert isinstance(event, CheckRunEvent)
    assert event.action == "rerequested"
    assert event.check_run_id == 4
    assert event.check_name == "randscape"
    assert event.external_id is None  # "" in the payload
    assert event.head_sha == "d6fde92930d4715a2b49857d24b940956b26d2d3"
    assert event.head_branch == "master"
    assert event.requested_action is None
    assert event.repository.full_name == "github/hello-world"


def test_check_run_requested_action(load_payload: Payload) -> None:
    event = deliver("check_run", load_payload("check_run/requested_action.payload.json"))
    assert isinstance(event, CheckRunEvent)
    assert event.action == "requested_action"
    assert event.requested_action == "lgtm|26764"
    assert event.installation_id == 690857
    assert event.check_run_id == 1494503112
    assert event.app_id == 25811
    assert event.pull_request_numbers == (26764,)


def test_installation_created(load_payload: Payload) -> None:
    event = deliver("installation", load_payload("installation/created.payload.json"))
    assert isinstance(event, InstallationEvent)
    assert event.action == "created"
    assert event.installation_id == 957387
    assert event.account_login == "codertocat"  # lower-cased: the org slug
    assert event.account_type == "User"
    assert event.repositories_added == ("Codertocat/Hello-World",)
    assert event.repositories_removed == ()
    assert event.suspended is False


def test_installation_deleted_and_suspended(load_payload: Payload) -> None:
    deleted = deliver("installation", load_payload("installation/deleted.payload.json"))
    assert isinstance(deleted, InstallationEvent)
    assert deleted.repositories_removed == ("octocat/Hello-World",)
    assert deleted.repositories_added == ()
    suspended = deliver("installation", load_payload("installation/suspend.payload.json"))
    assert isinstance(suspended, InstallationEvent)
    assert suspended.suspended is True


def test_installation_repositories(load_payload: Payload) -> None:
    added = deliver(
        "installation_repositories", load_payload("installation_repositories/added.payload.json")
    )
    assert isinstance(added, InstallationEvent)
    assert added.repositories_added == ("Codertocat/Space",)
    assert added.repository_selection == "selected"
    removed = deliver(
        "installation_repositories",
        load_payload("installation_repositories/removed.payload.json"),
    )
    assert isinstance(removed, InstallationEvent)
    assert removed.repositories_removed == ("octocat/Hello-World",)


def test_unhandled_event_is_a_plain_event(load_payload: Payload) -> None:
    event = deliver("ping", load_payload("ping/payload.json"))
    assert type(event) is Event
    assert (event.name, event.action, event.installation_id) == ("ping", None, None)


def test_headers_are_case_insensitive() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    event = parse_delivery({"x-github-event": "ping", "X-GITHUB-DELIVERY": "d"}, body)
    assert event.delivery_id == "d"


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"X-GitHub-Delivery": "d"}, b"{}", "missing X-GitHub-Event"),
        ({"X-GitHub-Event": "push"}, b"{}", "missing X-GitHub-Delivery"),
        ({"X-GitHub-Event": "push", "X-GitHub-Delivery": "d"}, b"{not json", "not JSON"),
        ({"X-GitHub-Event": "push", "X-GitHub-Delivery": "d"}, b"\xff\xfe", "not JSON"),
        ({"X-GitHub-Event": "push", "X-GitHub-Delivery": "d"}, b"[1, 2]", "not a JSON object"),
    ],
)
def test_malformed_deliveries(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(MalformedDelivery, match=reason):
        parse_delivery(headers, body)


def test_missing_and_mistyped_fields_are_named(load_payload: Payload) -> None:
    payload = load_payload("pull_request/opened.payload.json")
    del payload["pull_request"]["head"]["sha"]
    with pytest.raises(MalformedDelivery, match=r"pull_request\.head\.sha is missing"):
        deliver("pull_request", payload)
    payload = load_payload("push/with-new-branch.payload.json")
    payload["installation"]["id"] = "1"
    with pytest.raises(MalformedDelivery, match=r"installation\.id must be an integer"):
        deliver("push", payload)


def test_signature_is_checked_before_anything_else() -> None:
    with pytest.raises(InvalidSignature):
        read_delivery({"X-GitHub-Event": "push"}, b"{not json", secret=SECRET)
