"""Webhook deliveries parsed into typed, frozen events (sans-I/O).

`parse_delivery(headers, body)` turns the headers and the raw body of one delivery into an
`Event`: a `PushEvent`, `PullRequestEvent`, `CheckSuiteEvent`, `CheckRunEvent` or
`InstallationEvent` for the events qgjob acts on, the plain `Event` for any other (so the
route can acknowledge and ignore it). `read_delivery` checks the signature first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from github_app.errors import MalformedDelivery
from github_app.fields import objects, optional, present, required
from github_app.signatures import SIGNATURE_HEADER, verify_signature

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
ZERO_SHA = "0" * 40


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every delivery carries. `action` is None for events without one (push, ping)."""

    name: str
    action: str | None
    delivery_id: str
    installation_id: int | None
    sender: str | None = None  # the login of whoever caused it (`sender.login`)


@dataclass(frozen=True, kw_only=True)
class Repository:
    """The repository an event is about (for a pull request: the base repository)."""

    id: int
    full_name: str
    name: str
    owner_login: str
    private: bool


@dataclass(frozen=True, kw_only=True)
class PushEvent(Event):
    repository: Repository
    ref: str
    before: str
    after: str
    created: bool
    deleted: bool
    forced: bool

    @property
    def branch(self) -> str | None:
        """The branch name for `refs/heads/…`, else None."""
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        """The tag name for `refs/tags/…`, else None."""
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


@dataclass(frozen=True, kw_only=True)
class PullRequestEvent(Event):
    repository: Repository
    number: int
    head_sha: str
    head_ref: str
    head_repo_full_name: str | None  # None when the fork was deleted
    base_ref: str
    base_repo_full_name: str
    draft: bool
    merged: bool = False  # for action == "closed": merged, or closed without merging

    @property
    def is_fork(self) -> bool:
        """Whether the head lives in another repository (a deleted fork counts as a fork)."""
        return self.head_repo_full_name != self.base_repo_full_name


@dataclass(frozen=True, kw_only=True)
class CheckSuiteEvent(Event):
    repository: Repository
    check_suite_id: int
    head_sha: str
    head_branch: str | None  # None for pushes to forks
    app_id: int | None
    pull_request_numbers: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CheckRunEvent(Event):
    repository: Repository
    check_run_id: int
    external_id: str | None
    check_name: str
    head_sha: str
    head_branch: str | None
    app_id: int | None  # compare with our app id: check_run events reach every app
    pull_request_numbers: tuple[int, ...]
    requested_action: str | None  # the action identifier, for action == "requested_action"


@dataclass(frozen=True, kw_only=True)
class InstallationEvent(Event):
    """`installation` and `installation_repositories`, normalised to repositories added/removed.

    `installation.created` lists its repositories as added, `installation.deleted` as removed.
    """

    account_login: str  # lower-cased: the org slug
    account_type: str | None
    repository_selection: str | None  # "all" or "selected"
    repositories_added: tuple[str, ...]  # full names
    repositories_removed: tuple[str, ...]
    suspended: bool


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def read_delivery(headers: Mapping[str, str], body: bytes, *, secret: str | bytes) -> Event:
    """Verify the signature (`InvalidSignature`), then parse (`MalformedDelivery`)."""
    verify_signature(body, header(headers, SIGNATURE_HEADER), secret=secret)
    return parse_delivery(headers, body)


def parse_delivery(headers: Mapping[str, str], body: bytes) -> Event:
    """Parse one delivery; the signature must already have been checked."""
    name = header(headers, EVENT_HEADER)
    if not name:
        raise MalformedDelivery(f"missing {EVENT_HEADER} header")
    delivery_id = header(headers, DELIVERY_HEADER)
    if not delivery_id:
        raise MalformedDelivery(f"missing {DELIVERY_HEADER} header")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDelivery(
            f"the body of {name} delivery {delivery_id} is not JSON: {exc}"
        ) from exc
    if not isinstance(payload, dict):
        raise MalformedDelivery(f"the body of {name} delivery {delivery_id} is not a JSON object")
    base: dict[str, Any] = {
        "name": name,
        "action": _opt_str(payload, "action"),
        "delivery_id": delivery_id,
        "installation_id": optional(payload, "installation.id", int, error=MalformedDelivery),
        "sender": _opt_str(payload, "sender.login"),
    }
    parse = _PARSERS.get(name)
    return parse(payload, base) if parse else Event(**base)


def _opt_str(payload: Mapping[str, Any], dotted: str) -> str | None:
    return optional(payload, dotted, str, error=MalformedDelivery)


def _req_str(payload: Mapping[str, Any], dotted: str) -> str:
    return required(payload, dotted, str, error=MalformedDelivery)


def _bool(payload: Mapping[str, Any], dotted: str) -> bool:
    return optional(payload, dotted, bool, error=MalformedDelivery) or False


def _repository(payload: Mapping[str, Any], prefix: str = "repository") -> Repository:
    return Repository(
        id=required(payload, f"{prefix}.id", int, error=MalformedDelivery),
        full_name=_req_str(payload, f"{prefix}.full_name"),
        name=_req_str(payload, f"{prefix}.name"),
        owner_login=_req_str(payload, f"{prefix}.owner.login"),
        private=_bool(payload, f"{prefix}.private"),
    )


def _pr_numbers(payload: Mapping[str, Any], dotted: str) -> tuple[int, ...]:
    items = objects(payload, dotted, error=MalformedDelivery)
    return tuple(required(pr, "number", int, error=MalformedDelivery) for pr in items)


def _push(payload: Mapping[str, Any], base: dict[str, Any]) -> Event:
    return PushEvent(
        **base,
        repository=_repository(payload),
        ref=_req_str(payload, "ref"),
        before=_req_str(payload, "before"),
        after=_req_str(payload, "after"),
        created=_bool(payload, "created"),
        deleted=_bool(payload, "deleted"),
        forced=_bool(payload, "forced"),
    )


def _pull_request(payload: Mapping[str, Any], base: dict[str, Any]) -> Event:
    return PullRequestEvent(
        **base,
        repository=_repository(payload),
        number=required(payload, "pull_request.number", int, error=MalformedDelivery),
        head_sha=_req_str(payload, "pull_request.head.sha"),
        head_ref=_req_str(payload, "pull_request.head.ref"),
        head_repo_full_name=_opt_str(payload, "pull_request.head.repo.full_name"),
        base_ref=_req_str(payload, "pull_request.base.ref"),
        base_repo_full_name=_req_str(payload, "pull_request.base.repo.full_name"),
        draft=_bool(payload, "pull_request.draft"),
        merged=_bool(payload, "pull_request.merged"),
    )


def _check_suite(payload: Mapping[str, Any], base: dict[str, Any]) -> Event:
    return CheckSuiteEvent(
        **base,
        repository=_repository(payload),
        check_suite_id=required(payload, "check_suite.id", int, error=MalformedDelivery),
        head_sha=_req_str(payload, "check_suite.head_sha"),
        head_branch=_opt_str(payload, "check_suite.head_branch"),
        app_id=optional(payload, "check_suite.app.id", int, error=MalformedDelivery),
        pull_request_numbers=_pr_numbers(payload, "check_suite.pull_requests"),
    )


def _check_run(payload: Mapping[str, Any], base: dict[str, Any]) -> Event:
    return CheckRunEvent(
        **base,
        repository=_repository(payload),
        check_run_id=required(payload, "check_run.id", int, error=MalformedDelivery),
        external_id=_opt_str(payload, "check_run.external_id") or None,
        check_name=_req_str(payload, "check_run.name"),
        head_sha=_req_str(payload, "check_run.head_sha"),
        head_branch=_opt_str(payload, "check_run.check_suite.head_branch"),
        app_id=optional(payload, "check_run.app.id", int, error=MalformedDelivery),
        pull_request_numbers=_pr_numbers(payload, "check_run.pull_requests"),
        requested_action=_opt_str(payload, "requested_action.identifier"),
    )


def _full_names(payload: Mapping[str, Any], dotted: str) -> tuple[str, ...]:
    items = objects(payload, dotted, error=MalformedDelivery)
    return tuple(required(repo, "full_name", str, error=MalformedDelivery) for repo in items)


def _installation(payload: Mapping[str, Any], base: dict[str, Any]) -> Event:
    if base["installation_id"] is None:
        raise MalformedDelivery("installation.id is missing")
    listed = _full_names(payload, "repositories")
    added = _full_names(payload, "repositories_added")
    removed = _full_names(payload, "repositories_removed")
    if base["name"] == "installation":
        added, removed = (listed, ()) if base["action"] != "deleted" else ((), listed)
    selection = _opt_str(payload, "repository_selection")
    return InstallationEvent(
        **base,
        account_login=_req_str(payload, "installation.account.login").lower(),
        account_type=_opt_str(payload, "installation.account.type"),
        repository_selection=selection or _opt_str(payload, "installation.repository_selection"),
        repositories_added=added,
        repositories_removed=removed,
        suspended=present(payload, "installation.suspended_at"),
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Event]] = {
    "push": _push,
    "pull_request": _pull_request,
    "check_suite": _check_suite,
    "check_run": _check_run,
    "installation": _installation,
    "installation_repositories": _installation,
}
