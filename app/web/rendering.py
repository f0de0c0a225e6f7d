"""Turning page data into HTML: the Jinja2 environment, its filters, and the headers every
page carries (a strict Content-Security-Policy: only this service's own CSS and JS)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from qgjob import __version__

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Read-only links carry their token in the URL: never send it on to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def duration(ms: int | None) -> str:
    """1234 → '1.2 s', 754000 → '12 min 34 s'."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def when(iso: str | None) -> str:
    """An ISO timestamp as a readable UTC time."""
    if not iso:
        return "–"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(iso: str | None, now: datetime) -> str:
    """How long before `now` a timestamp was: '4 s ago', '3 min ago'."""
    if not iso:
        return "never"
    seconds = max(0, round((now - datetime.fromisoformat(iso)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def web_url(value: object) -> str | None:
    """`value` if it is an http(s) URL that is safe to put in a link, else None."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


# What a link to a known artifact is called; BrowserStack's keys carry the number of the
# session (the test's try) when a spec took several (`dispatch/executors/browserstack.py`).
_ARTIFACT_LABELS = {"video_url": "video", "public_url": "BrowserStack session"}
_NUMBERED = re.compile(r"^(?P<name>[a-z_]+?)_(?P<number>\d+)$")


def artifact_label(key: str) -> str:
    """`video_url` → "video", `public_url_1` → "BrowserStack session (try 1)"."""
    number = None
    if (numbered := _NUMBERED.match(key)) and numbered["name"] in _ARTIFACT_LABELS:
        key, number = numbered["name"], numbered["number"]
    label = _ARTIFACT_LABELS.get(key, key.replace("_", " "))
    return label if number is None else f"{label} (try {number})"


def from_epoch(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def short_id(value: str | None) -> str:
    return value[:8] if value else "–"


def _static_version() -> str:
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=duration,
        when=when,
        from_epoch=from_epoch,
        short_id=short_id,
        web_url=web_url,
        artifact_label=artifact_label,
    )
    env.tests["contains"] = lambda values, item: item in values
    env.globals.update(ago=ago, static_version=_static_version(), version=__version__)
    return env


class Pages:
    """Renders templates into responses with the security headers."""

    def __init__(self) -> None:
        self.env = build_environment()

    def html(self, template: str, context: dict[str, Any], *, status: int = 200) -> Response:
        body = self.env.get_template(template).render(**context)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def text(self, template: str, context: dict[str, Any]) -> str:
        return self.env.get_template(template).render(**context)
