"""Device sessions for fake_npx: BrowserStack's WebDriver hub (the fake one), or local ids.

On BrowserStack each test attempt opens a session on the hub (`POST /wd/hub/session` with
the `bs://` app), marks it passed or failed through the REST API as AppWright does
(`PUT /app-automate/sessions/{id}.json` with the error message as reason), then closes it
(`DELETE /wd/hub/session/{id}`), so the fake server sees real concurrency and plan limits.
The hub is $QGJOB_FAKE_BROWSERSTACK_HUB_URL, else $QGJOB_BROWSERSTACK_API_URL; with neither,
sessions are made up offline. Local providers get an Appium-style UUID.
Standard library only: fake_npx imports it.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from tests.standins.fake_appwright import Config, Invocation


class HubError(Exception):
    """The hub or the REST API answered with an error (message as BrowserStack wrote it)."""


class SessionError(Exception):
    """A session could not start; the attempt fails with this message, as in AppWright."""


class Hub:
    """Device sessions: BrowserStack's WebDriver hub (fake), or local Appium session ids."""

    def __init__(self, invocation: Invocation, config: Config, env: Mapping[str, str]) -> None:
        self.provider = config.providers.get(invocation.project or "", "") or "emulator"
        self.url = (
            env.get("QGJOB_FAKE_BROWSERSTACK_HUB_URL")
            or env.get("QGJOB_BROWSERSTACK_API_URL")
            or ""
        ).rstrip("/")
        self.api = (env.get("QGJOB_BROWSERSTACK_API_URL") or self.url).rstrip("/")
        self.app_url = env.get("QGJOB_BROWSERSTACK_APP_URL", "")
        user, key = env.get("BROWSERSTACK_USERNAME", ""), env.get("BROWSERSTACK_ACCESS_KEY", "")
        self.auth = "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()
        self.remote = self.provider == "browserstack" and bool(self.url)

    def open(self, title: str) -> str:
        if not self.remote:
            return str(uuid.uuid4()) if self.provider != "browserstack" else uuid.uuid4().hex
        caps = {
            "platformName": "android",
            "appium:app": self.app_url,
            "bstack:options": {
                "deviceName": "Google Pixel 8",
                "osVersion": "14.0",
                "sessionName": title,
            },
        }
        body = {"capabilities": {"alwaysMatch": caps, "firstMatch": [{}]}}
        try:
            reply = self._call("POST", f"{self.url}/wd/hub/session", body)
        except HubError as exc:
            raise SessionError(
                f'WebDriverError: {exc} when running "{self.url}/wd/hub/session" with method "POST"'
            ) from None
        return str(reply["value"]["sessionId"])

    def close(self, session_id: str, *, status: str, reason: str | None) -> None:
        if not self.remote:
            return
        update = {"status": "passed" if status == "passed" else "failed", "reason": reason or ""}
        self._call("PUT", f"{self.api}/app-automate/sessions/{session_id}.json", update)
        self._call("DELETE", f"{self.url}/wd/hub/session/{session_id}", None)

    def _call(self, method: str, url: str, body: object) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                value = json.loads(text).get("value", {})
                text = value.get("message", text) if isinstance(value, dict) else text
            except (ValueError, AttributeError):
                pass
            raise HubError(text.strip()) from None
        except OSError as exc:
            raise HubError(f"cannot reach {url}: {exc}") from None
