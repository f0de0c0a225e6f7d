"""The fake GitHub itself: its answers match GitHub's response schemas, and it enforces GitHub's
rules on JWTs and tokens (otherwise tests against it would prove nothing)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jsonschema
import jwt
import pytest

from tests.standins.github import JWT_EXP_TOO_FAR, JWT_IAT_INVALID
from tests.unit.github_app.conftest import APP_ID, INSTALLATION_ID, REPO, GitHubEnv


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes an explicit null alternative."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k not in ("nullable", "x-ref")}
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def check(openapi: dict[str, Any], operation: str, status: int, body: Any) -> None:
    schema = openapi[operation]["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft7Validator(json_schema(schema)).validate(body)


def app_jwt(private_key: bytes, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now - 60, "exp": now + 540, "iss": str(APP_ID), **claims}
    return jwt.encode(payload, private_key, algorithm="RS256")


async def test_answers_match_the_response_schemas(
    github: GitHubEnv, openapi: dict[str, Any]
) -> None:
    app_auth = {"Authorization": f"Bearer {app_jwt(github.private_key)}"}
    async with httpx.AsyncClient(base_url=github.url) as http:
        installation = await http.get(f"/app/installations/{INSTALLATION_ID}", headers=app_auth)
        check(openapi, "GET /app/installations/{installation_id}", 200, installation.json())
        minted = await http.post(
            f"/app/installations/{INSTALLATION_ID}/access_tokens", headers=app_auth
        )
        assert minted.status_code == 201
        check(
            openapi,
            "POST /app/installations/{installation_id}/access_tokens",
            201,
            minted.json(),
        )
        http.headers["Authorization"] = f"token {minted.json()['token']}"
        tree = await http.get(f"/repos/{REPO}/git/trees/{github.head_sha}?recursive=1")
        check(openapi, "GET /repos/{owner}/{repo}/git/trees/{tree_sha}", 200, tree.json())
        created = await http.post(
            f"/repos/{REPO}/check-runs", json={"name": "x", "head_sha": github.head_sha}
        )
        assert created.status_code == 201
        check(openapi, "POST /repos/{owner}/{repo}/check-runs", 201, created.json())
        updated = await http.patch(
            f"/repos/{REPO}/check-runs/{created.json()['id']}",
            json={"conclusion": "success", "output": {"title": "t", "summary": "s"}},
        )
        body = updated.json()
        check(openapi, "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", 200, body)
        assert (body["status"], body["conclusion"]) == ("completed", "success")
        missing = await http.get(f"/repos/{REPO}/git/trees/{'0' * 40}")
        assert missing.status_code == 404
        assert missing.json()["message"] == "Not Found"


# Times are offsets from the moment the test runs (not from collection, which may be minutes
# earlier in a long suite).
@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": 1200}, JWT_EXP_TOO_FAR),
        ({"iat": 120}, JWT_IAT_INVALID),
        ({"exp": -5}, "'Expiration time' claim ('exp') must be a numeric"),
        ({"iss": "1"}, "Integration not found"),
    ],
)
async def test_jwt_rules(github: GitHubEnv, claims: dict[str, Any], message: str) -> None:
    now = int(time.time())
    absolute = {k: now + v if k in ("exp", "iat") else v for k, v in claims.items()}
    token = app_jwt(github.private_key, **absolute)
    async with httpx.AsyncClient(base_url=github.url) as http:
        answer = await http.get(
            f"/app/installations/{INSTALLATION_ID}", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 401
    assert answer.json()["message"].startswith(message)
    assert answer.headers["date"].endswith("GMT")


async def test_tokens_expire_and_repositories_stay_closed(github: GitHubEnv) -> None:
    app_auth = {"Authorization": f"Bearer {app_jwt(github.private_key)}"}
    async with httpx.AsyncClient(base_url=github.url) as http:
        minted = await http.post(
            f"/app/installations/{INSTALLATION_ID}/access_tokens",
            headers=app_auth,
            json={"repositories": ["not-installed"]},
        )
        assert minted.status_code == 422
        minted = await http.post(
            f"/app/installations/{INSTALLATION_ID}/access_tokens", headers=app_auth
        )
        token = {"Authorization": f"Bearer {minted.json()['token']}"}
        assert (await http.get(f"/repos/{REPO}/contents/README.md", headers=token)).is_success
        github.state.add_repo("Someone/else").commit({"README.md": "x"})
        other = await http.get("/repos/Someone/else/contents/README.md", headers=token)
        assert other.status_code == 404
        github.state.clock_offset_s = 3601
        expired = await http.get(f"/repos/{REPO}/contents/README.md", headers=token)
        assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")


def test_git_object_ids_are_real() -> None:
    """Ids as `git hash-object` / `git write-tree` compute them (git sorts "dir" as "dir/")."""
    from tests.standins.github import FakeRepo

    repo = FakeRepo("o", "r", 1)
    files = {"hello.txt": "hello\n", "dir/a.txt": "a\n", "dir.txt": "b\n", "sub.x/c.txt": "c\n"}
    sha = repo.commit(files)
    entries = {e.name: e for e in repo.trees[repo.commits[sha]]}
    assert entries["hello.txt"].sha == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert entries["dir"].sha == "08585692ce06452da6f82ae66b90d98b55536fca"
    assert repo.commits[sha] == "b8cf35f38554b1d506bfd5e90d473063d486257e"
