"""The router dispatches parsed events to the handlers registered for them."""

from __future__ import annotations

from github_app.events import Event, PullRequestEvent, PushEvent, Repository
from github_app.routing import Router

REPO = Repository(id=1, full_name="o/r", name="r", owner_login="o", private=False)


def pull_request(action: str) -> PullRequestEvent:
    return PullRequestEvent(
        name="pull_request",
        action=action,
        delivery_id="d",
        installation_id=1,
        repository=REPO,
        number=5,
        head_sha="a" * 40,
        head_ref="feature",
        head_repo_full_name="o/r",
        base_ref="main",
        base_repo_full_name="o/r",
        draft=False,
    )


async def test_dispatch_by_event_and_action() -> None:
    router = Router()
    seen: list[str] = []

    @router.register("pull_request", action="opened")
    async def opened(event: PullRequestEvent) -> None:
        seen.append(f"opened #{event.number}")

    @router.register("pull_request", action="synchronize")
    async def synchronize(event: PullRequestEvent) -> None:
        seen.append("synchronize")

    @router.register("pull_request")
    async def any_action(event: PullRequestEvent) -> None:
        seen.append(f"any {event.action}")

    assert await router.dispatch(pull_request("opened")) == 2
    assert seen == ["opened #5", "any opened"]
    seen.clear()
    assert await router.dispatch(pull_request("closed")) == 1
    assert seen == ["any closed"]


async def test_events_without_handlers_are_ignored() -> None:
    router = Router()

    @router.register("push")
    async def on_push(event: PushEvent) -> None:
        raise AssertionError("must not run for a ping")

    ping = Event(name="ping", action=None, delivery_id="d", installation_id=None)
    assert router.handles(ping) is False
    assert await router.dispatch(ping) == 0


async def test_handlers_run_in_registration_order() -> None:
    router = Router()
    order: list[int] = []

    async def first(event: Event) -> None:
        order.append(1)

    async def second(event: Event) -> None:
        order.append(2)

    router.add(first, "ping")
    router.add(second, "ping")
    await router.dispatch(Event(name="ping", action=None, delivery_id="d", installation_id=None))
    assert order == [1, 2]
