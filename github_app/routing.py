"""A gidgethub-style router: `@router.register("pull_request", action="opened")`.

Handlers are async callables taking the parsed event. A handler registered without an action
receives every action of its event. `dispatch` awaits the matching handlers in registration
order (like gidgethub) and returns how many ran, so a caller can tell "ignored" from "handled".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, overload

from github_app.events import (
    CheckRunEvent,
    CheckSuiteEvent,
    Event,
    InstallationEvent,
    PullRequestEvent,
    PushEvent,
)

E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]


class Router:
    """Maps (event name, action) to async handlers."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str | None], list[Handler[Any]]] = {}

    @overload
    def register(
        self, event: Literal["push"], *, action: str | None = None
    ) -> Callable[[Handler[PushEvent]], Handler[PushEvent]]: ...
    @overload
    def register(
        self, event: Literal["pull_request"], *, action: str | None = None
    ) -> Callable[[Handler[PullRequestEvent]], Handler[PullRequestEvent]]: ...
    @overload
    def register(
        self, event: Literal["check_suite"], *, action: str | None = None
    ) -> Callable[[Handler[CheckSuiteEvent]], Handler[CheckSuiteEvent]]: ...
    @overload
    def register(
        self, event: Literal["check_run"], *, action: str | None = None
    ) -> Callable[[Handler[CheckRunEvent]], Handler[CheckRunEvent]]: ...
    @overload
    def register(
        self,
        event: Literal["installation", "installation_repositories"],
        *,
        action: str | None = None,
    ) -> Callable[[Handler[InstallationEvent]], Handler[InstallationEvent]]: ...
    @overload
    def register(
        self, event: str, *, action: str | None = None
    ) -> Callable[[Handler[Any]], Handler[Any]]: ...

    def register(
        self, event: str, *, action: str | None = None
    ) -> Callable[[Handler[Any]], Handler[Any]]:
        """Decorator: call the handler for `event` (and only `action`, when given)."""

        def decorator(handler: Handler[Any]) -> Handler[Any]:
            self.add(handler, event, action=action)
            return handler

        return decorator

    def add(self, handler: Handler[Any], event: str, *, action: str | None = None) -> None:
        """Register `handler` without decorator syntax."""
        self._handlers.setdefault((event, action), []).append(handler)

    def handlers_for(self, event: Event) -> tuple[Handler[Any], ...]:
        """The handlers `dispatch` would run for `event`: action-specific ones first."""
        specific = self._handlers.get((event.name, event.action), []) if event.action else []
        generic = self._handlers.get((event.name, None), [])
        return (*specific, *generic)

    def handles(self, event: Event) -> bool:
        """Whether any handler would run (the route acknowledges and ignores the rest)."""
        return bool(self.handlers_for(event))

    async def dispatch(self, event: Event) -> int:
        """Await every matching handler in turn; return how many ran."""
        handlers = self.handlers_for(event)
        for handler in handlers:
            await handler(event)
        return len(handlers)
