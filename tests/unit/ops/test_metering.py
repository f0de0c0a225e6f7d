"""Counting GitHub API calls (app.metering): templated routes, error kinds, the transport."""

from __future__ import annotations

import httpx
import pytest

from app.metering import MeteredTransport, github_route
from app.metrics import Metrics


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/app/installations/957387/access_tokens", "/app/installations/{id}/access_tokens"),
        ("/repos/Codertocat/Hello-World/check-runs", "/repos/{owner}/{repo}/check-runs"),
        ("/repos/o/r/check-runs/42", "/repos/{owner}/{repo}/check-runs/{id}"),
        ("/repos/o/r/contents/tests/a.spec.ts", "/repos/{owner}/{repo}/contents/{path}"),
        ("/repos/o/r/tarball/feature/x", "/repos/{owner}/{repo}/tarball/{ref}"),
        ("/repos/o/r/git/trees/" + "a" * 40, "/repos/{owner}/{repo}/git/trees/{id}"),
        ("/app", "/app"),
        # GitHub Enterprise Server: the same routes under /api/v3.
        ("/api/v3/repos/octo/app/check-runs/42", "/api/v3/repos/{owner}/{repo}/check-runs/{id}"),
        (
            "/api/v3/app/installations/7/access_tokens",
            "/api/v3/app/installations/{id}/access_tokens",
        ),
    ],
)
def test_github_route_templates_ids_names_and_paths(path: str, route: str) -> None:
    assert github_route(path) == route


async def test_the_transport_counts_calls_and_errors_by_kind() -> None:
    answers = iter(
        [
            httpx.Response(201),
            httpx.Response(403, headers={"x-ratelimit-remaining": "0"}),
            httpx.Response(502),
            httpx.Response(404),
            # Secondary rate limits: with Retry-After, or said only in the message.
            httpx.Response(403, headers={"retry-after": "60"}, json={"message": "slow down"}),
            httpx.Response(
                403, json={"message": "You have exceeded a secondary rate limit. Please wait."}
            ),
            httpx.Response(403, json={"message": "Resource not accessible by integration"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    metrics = Metrics()
    transport = MeteredTransport(metrics, httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.github.test") as http:
        for _ in range(7):
            answer = await http.post("/repos/o/r/check-runs")
        assert answer.json()["message"] == "Resource not accessible by integration"  # still read
    route = "/repos/{owner}/{repo}/check-runs"
    calls = metrics.github_api_calls
    assert [calls.labels("POST", route, s)._value.get() for s in ("201", "403", "502", "404")] == [
        1,
        4,
        1,
        1,
    ]
    errors = metrics.github_api_errors
    assert errors.labels(kind="rate_limited")._value.get() == 3
    assert errors.labels(kind="server_error")._value.get() == 1
    assert errors.labels(kind="client_error")._value.get() == 2  # the 404 and the refusal

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    broken = MeteredTransport(metrics, httpx.MockTransport(refuse))
    async with httpx.AsyncClient(transport=broken, base_url="https://api.github.test") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/app")
    assert calls.labels("GET", "/app", "error")._value.get() == 1
    assert errors.labels(kind="transport")._value.get() == 1
