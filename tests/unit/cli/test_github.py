"""`qgjob github manifest`: the App manifest, and one clear line for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from qgjob.cli.main import app
from tests.unit.cli.shell import one_error_line


def test_manifest_names_the_webhook_url_permissions_and_events() -> None:
    result = CliRunner().invoke(
        app, ["github", "manifest", "--public-url", "https://qgjob.acme.example/", "--name", "qa"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["name"] == "qa"
    assert manifest["hook_attributes"] == {
        "url": "https://qgjob.acme.example/github/webhooks",
        "active": True,
    }
    assert manifest["default_permissions"] == {
        "checks": "write", "contents": "read", "pull_requests": "read", "metadata": "read",
    }  # fmt: skip
    assert manifest["default_events"] == ["push", "pull_request", "check_suite", "check_run"]


def test_manifest_reads_the_public_url_from_the_environment() -> None:
    result = CliRunner().invoke(
        app, ["github", "manifest"], env={"QGJOB_PUBLIC_URL": "http://127.0.0.1:8000"}
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["url"] == "http://127.0.0.1:8000"


def test_manifest_without_or_with_a_bad_url_is_a_usage_error() -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["github", "manifest"], env={"QGJOB_PUBLIC_URL": ""})
    assert missing.exit_code == 2
    assert "--public-url is required" in one_error_line(missing)
    bad = runner.invoke(app, ["github", "manifest", "--public-url", "qgjob.example"])
    assert bad.exit_code == 2
    assert "http:// or https://" in one_error_line(bad)
    long_name = runner.invoke(
        app, ["github", "manifest", "--public-url", "https://q.example", "--name", "x" * 40]
    )
    assert long_name.exit_code == 2 and "1-34 characters" in one_error_line(long_name)
