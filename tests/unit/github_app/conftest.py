"""Fixtures for the GitHub App tests: the shared reference material, an App key, a fake GitHub.

`../shared` sits next to the repository root (in a developer's tree and in CI's clone alike);
tests that need it skip, saying so, only when it is absent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from github_app.client import GitHubClient
from tests.standins.github import FakeGitHub, FakeRepo, generate_app_key, running_fake_github

REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SHARED = (REPO_ROOT / ".." / "shared").resolve()
PAYLOADS = SHARED / "github" / "payloads" / "payload-examples" / "api.github.com"
OPENAPI = SHARED / "github" / "openapi-subset.json"
APP_ID = 4242
INSTALLATION_ID = 77
REPO = "Octo-Org/mobile-app"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared GitHub reference material sits in ../shared")
    return path


@pytest.fixture
def load_payload() -> Callable[[str], dict[str, Any]]:
    """Read a real webhook payload, e.g. `load_payload("push/with-new-branch.payload.json")`."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(require_shared(PAYLOADS / name).read_text())
        return data

    return load


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(require_shared(OPENAPI).read_text())
    return data


@pytest.fixture(scope="session")
def app_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of the test App."""
    return generate_app_key()


@dataclass
class GitHubEnv:
    """A running fake GitHub with one installation and one repository."""

    state: FakeGitHub
    url: str
    repo: FakeRepo
    head_sha: str
    private_key: bytes

    def client(self, **overrides: Any) -> GitHubClient:
        options: dict[str, Any] = {
            "app_id": APP_ID,
            "private_key": self.private_key,
            "base_url": self.url,
            "timeout_s": 5.0,
        }
        options.update(overrides)
        return GitHubClient(**options)


SPEC_FILES = {
    "qgjob.toml": 'targets = ["emulator", "browserstack"]\n',
    "README.md": "# app\n",
    "tests/login.spec.ts": "test('login', async () => {})\n",
    "tests/flows/checkout.spec.ts": "test('checkout', async () => {})\n",
    "tests/flows/deep/search.spec.js": "test('search', async () => {})\n",
    "tests/helpers/page.ts": "export {}\n",
    "src/main.ts": "console.log('hi')\n",
}


@pytest.fixture
def github(app_key: tuple[bytes, bytes]) -> Iterator[GitHubEnv]:
    state = FakeGitHub(app_id=APP_ID, public_key=app_key[1], openapi_path=require_shared(OPENAPI))
    repo = state.add_repo(REPO)
    head_sha = repo.commit(SPEC_FILES)
    state.add_repo("Octo-Org/other")
    state.add_installation(
        INSTALLATION_ID, account="Octo-Org", repositories=[REPO, "Octo-Org/other"]
    )
    with running_fake_github(state) as url:
        yield GitHubEnv(state, url, repo, head_sha, app_key[0])


@pytest.fixture
async def client(github: GitHubEnv) -> AsyncIterator[GitHubClient]:
    async with github.client() as gh:
        yield gh
