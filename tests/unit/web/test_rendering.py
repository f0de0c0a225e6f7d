"""The page filters: durations, times, and which artifact values may become links."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.web.rendering import ago, artifact_label, duration, web_url, when


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "–"),
        (0, "0 ms"),
        (950, "950 ms"),
        (1234, "1.2 s"),
        (754_000, "12 min 34 s"),
        (7_380_000, "2 h 3 min"),
    ],
)
def test_duration(ms: int | None, text: str) -> None:
    assert duration(ms) == text


def test_when_and_ago() -> None:
    assert when("2026-11-21T12:14:03.5+01:00") == "2026-11-21 11:14:03 UTC"
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert ago("2026-11-21T11:59:56+00:00", now) == "4 s ago"
    assert ago("2026-11-21T11:57:00+00:00", now) == "3 min ago"
    assert ago(None, now) == "never"


@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("https://cdn.example.com/v.mp4", "https://cdn.example.com/v.mp4"),
        ("http://host/x", "http://host/x"),
        ("javascript:alert(1)", None),
        ("/var/lib/qgjob/video.mp4", None),
        ("https:///no-host", None),
        (42, None),
    ],
)
def test_only_http_urls_become_links(value: object, link: str | None) -> None:
    assert web_url(value) == link


def test_artifact_links_are_named_for_people() -> None:
    assert artifact_label("video_url") == "video"
    assert artifact_label("public_url") == "BrowserStack session"
    assert artifact_label("video_url_2") == "video (try 2)"
    assert artifact_label("public_url_1") == "BrowserStack session (try 1)"
    assert artifact_label("trace_file") == "trace file"  # unknown keys: just readable
    assert artifact_label("screenshot_3") == "screenshot 3"
