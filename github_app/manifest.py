"""The GitHub App manifest for one-step App creation (pure).

GitHub's "Register a GitHub App from a manifest" flow takes this JSON as the `manifest` field
of a form POSTed to `https://github.com/settings/apps/new` (or the organisation's
`/organizations/<org>/settings/apps/new`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "pull_requests": "read",
    "metadata": "read",
}
EVENTS = ("push", "pull_request", "check_suite", "check_run")
WEBHOOK_PATH = "/github/webhooks"
REDIRECT_PATH = "/github/manifest-done"


def app_manifest(*, public_url: str, name: str = "qgjob") -> dict[str, Any]:
    """The manifest of a private App whose webhooks reach `public_url`; ValueError if the URL
    is not an absolute http(s) URL or the name is empty or longer than GitHub's 34 characters."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the public URL must be an http:// or https:// URL, got {public_url!r}")
    name = name.strip()
    if not 0 < len(name) <= 34:
        raise ValueError(f"the App name must be 1-34 characters, got {len(name)}")
    base = public_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "description": "Runs AppWright end-to-end specs on every push and pull request.",
        "hook_attributes": {"url": base + WEBHOOK_PATH, "active": True},
        "redirect_url": base + REDIRECT_PATH,
        "public": False,
        "default_permissions": dict(PERMISSIONS),
        "default_events": list(EVENTS),
    }
