"""One settings object, built from `QGJOB_*` environment variables at the entry point.

The service, the worker and the CLI all read their configuration here and receive it as an
argument; nothing else reads the environment. Secrets are wrapped in `Secret` so that they
never show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import platformdirs

PREFIX = "QGJOB_"
GITHUB_REDELIVERY_DAYS = 3  # how far back GitHub lets an admin redeliver a webhook delivery
T = TypeVar("T")


class SettingsError(ValueError):
    """A `QGJOB_*` variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Secret:
    """A string that masks itself in `repr` and `str`; call `reveal()` to use it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("qgjob", appauthor=False))


def default_cache_dir() -> Path:
    """Where a worker keeps builds and repository checkouts."""
    return Path(platformdirs.user_cache_dir("qgjob", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with its default. Field `x` is read from `QGJOB_X`."""

    database_url: Secret | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    server_url: str = "http://127.0.0.1:8000"
    token: Secret | None = None
    # Queue behaviour.
    lease_ttl_s: float = 30.0
    heartbeat_interval_s: float = 10.0
    claim_timeout_s: float = 30.0
    max_attempts: int = 3
    retry_backoff_s: float = 2.0
    reaper_interval_s: float = 2.0
    # HTTP edge.
    max_body_bytes: int = 1024 * 1024
    max_run_tests: int = 5000
    db_pool_size: int = 10
    db_connect_timeout_s: float = 30.0
    log_level: str = "INFO"
    # Scheduling (issue 5; docs/scheduling.md).
    aging_s: float = 1800.0
    org_cap: int | None = None
    org_caps: tuple[tuple[str, int], ...] = ()
    grouping: tuple[tuple[str, tuple[str, ...]], ...] = ()
    default_duration_s: float = 120.0
    default_setup_s: float = 60.0
    unknown_spec_estimate: str = "mean_of_known"
    max_batch_s: float = 180.0
    min_batch_s: float = 5.0
    # Operations (metrics, logs, shutdown): docs/operations.md.
    log_format: str = "text"
    metrics_token: Secret | None = None
    shutdown_grace_s: float = 30.0
    migrate_on_start: bool = True
    # Builds (app/api/builds.py, app/build_waits.py): upload size limit, how long jobs may
    # wait for a build that was never uploaded, and how often that wait is checked.
    max_build_bytes: int = 2 * 1024**3
    build_wait_s: float = 3600.0
    build_sweep_interval_s: float = 10.0
    npm: str = "npm"  # the program a worker runs `npm ci` with, for a run's repository
    source_keep_s: float = 24 * 3600.0  # a worker deletes checkouts unused for this long
    # Security (faults): failed authentications allowed per client address and window; past
    # that the client is answered 429 with Retry-After until the window has moved on.
    auth_failures_max: int = 30
    auth_failures_window_s: float = 60.0
    # GitHub App (docs/github-app.md): off unless the app id, key and webhook secret are set.
    github_app_id: str | None = None
    github_private_key_path: Path | None = None
    github_private_key: Secret | None = None
    github_webhook_secret: Secret | None = None
    github_api_url: str = "https://api.github.com"
    public_url: str | None = None  # base of check runs' details links; default server_url
    github_write_spacing_s: float = 1.0  # between two writes of one installation
    github_progress_interval_s: float = 5.0  # between two progress updates of a check run
    github_poll_interval_s: float = 1.0  # inbox, tracker and outbox loops when not woken
    github_timeout_s: float = 10.0
    # How long the inbox retries a delivery while GitHub fails (5xx, timeouts, rate limits).
    github_retry_for_s: float = 86400.0
    # Processed deliveries are kept this long (their ids are what makes a redelivery a
    # duplicate; GitHub redelivers up to 3 days back), then deleted by a sweep this often.
    github_delivery_retention_days: float = 14.0
    github_retention_interval_s: float = 3600.0
    # Executors (issue 4): the programs the adb executor drives, BrowserStack's API, and
    # where host-wide locks (devices, the one AppWright run, BrowserStack slots) live.
    npx: str = "npx"
    adb: str = "adb"
    browserstack_api_url: str = "https://api-cloud.browserstack.com"
    lock_dir: Path | None = None  # None: <tmp>/qgjob-locks-<uid>
    # Web pages (app/web): signing key for sessions and read-only links (unset: one is
    # generated and kept in the data dir), how long a sign-in and a read-only link last.
    # Links start with `public_url` (above).
    secret_key: Secret | None = None
    web_session_ttl_s: float = 12 * 3600.0
    web_link_ttl_s: float = 30 * 24 * 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default `os.environ`); `overrides` win over both."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[f.name] = _PARSERS[f.name](name, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"QGJOB_PORT must be between 1 and 65535, got {self.port}")
        if self.heartbeat_interval_s >= self.lease_ttl_s:
            raise SettingsError(
                "QGJOB_HEARTBEAT_INTERVAL_S must be shorter than QGJOB_LEASE_TTL_S "
                f"(got {self.heartbeat_interval_s} and {self.lease_ttl_s})"
            )
        if self.max_attempts < 1:
            raise SettingsError(f"QGJOB_MAX_ATTEMPTS must be at least 1, got {self.max_attempts}")
        self._validate_github()

    def _validate_github(self) -> None:
        if self.github_delivery_retention_days < GITHUB_REDELIVERY_DAYS:
            raise SettingsError(
                "QGJOB_GITHUB_DELIVERY_RETENTION_DAYS must be at least "
                f"{GITHUB_REDELIVERY_DAYS}, got {self.github_delivery_retention_days:g}: GitHub "
                f"redelivers deliveries up to {GITHUB_REDELIVERY_DAYS} days old, and one whose "
                "id was forgotten sooner would be acted on twice"
            )
        given = {
            "QGJOB_GITHUB_APP_ID": bool(self.github_app_id),
            "QGJOB_GITHUB_PRIVATE_KEY_PATH or QGJOB_GITHUB_PRIVATE_KEY": bool(
                self.github_private_key_path or self.github_private_key
            ),
            "QGJOB_GITHUB_WEBHOOK_SECRET": bool(self.github_webhook_secret),
        }
        missing = [name for name, ok in given.items() if not ok]
        if missing and len(missing) < len(given):
            raise SettingsError(
                f"the GitHub App needs {', '.join(missing)} too "
                "(set all of its settings, or none to run without GitHub)"
            )

    @property
    def github_enabled(self) -> bool:
        """Whether the GitHub App is configured (app id, private key and webhook secret)."""
        return bool(
            self.github_app_id
            and (self.github_private_key_path or self.github_private_key)
            and self.github_webhook_secret
        )

    @property
    def details_base_url(self) -> str:
        """Where the web pages are, as seen from GitHub: QGJOB_PUBLIC_URL or the server url."""
        return (self.public_url or self.server_url).rstrip("/")

    @property
    def is_loopback(self) -> bool:
        """Whether the server binds only to this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def local_token_path(self) -> Path:
        """Where the server keeps the local admin token for CLI use on the same host."""
        return self.data_dir / "admin.token"


def _parse_str(name: str, raw: str) -> str:
    return raw


def _parse_secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def _parse_path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _number(kind: Callable[[str], T], what: str, minimum: float) -> Callable[[str, str], T]:
    def parse(name: str, raw: str) -> T:
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
        if value < minimum:  # type: ignore[operator]
            raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    return parse


def _parse_database_url(name: str, raw: str) -> Secret:
    scheme = urlsplit(raw).scheme
    if scheme not in ("postgres", "postgresql"):
        raise SettingsError(
            f"{name} must be a postgresql:// URL (e.g. postgresql://user:pass@host:5432/db), "
            f"got a {scheme or 'schemeless'} value"
        )
    return Secret(raw)


def _parse_server_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _parse_log_level(name: str, raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{name} must be one of DEBUG, INFO, WARNING, ERROR, got {raw!r}")
    return level


def _parse_org_caps(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    caps: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        org, sep, value = item.partition("=")
        if not sep or not org.strip() or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(
                f"{name} must be org=cap pairs separated by commas, each cap a whole number "
                f">= 1 (e.g. acme=2,globex=1), got {item!r}"
            )
        caps[org.strip()] = int(value)
    return tuple(sorted(caps.items()))


def _parse_grouping(name: str, raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        org, sep, dims = item.partition("=")
        extra = tuple(d.strip() for d in dims.split(",") if d.strip())
        if not sep or not org.strip() or not extra:
            raise SettingsError(
                f"{name} must be org=dimension[,dimension] entries separated by ';' "
                f"('*' for every org; e.g. acme=repo), got {item!r}"
            )
        unknown = [d for d in extra if d not in GROUPING_DIMENSIONS]
        if unknown or len(set(extra)) != len(extra):
            raise SettingsError(
                f"{name}: {org.strip()} lists {list(extra)}; the key is always "
                f"(org_id, app_version_id, target) and may add, once each: "
                f"{list(GROUPING_DIMENSIONS)}"
            )
        found[org.strip()] = extra
    return tuple(sorted(found.items()))


def _parse_optional_cap(name: str, raw: str) -> int | None:
    if raw.strip().lower() == "none":
        return None
    return _number(int, "a whole number of running groups (or none)", 1)(name, raw)


def _parse_unknown_spec(name: str, raw: str) -> str:
    if raw not in ("default", "mean_of_known"):
        raise SettingsError(f"{name} must be default or mean_of_known, got {raw!r}")
    return raw


# Extra grouping dimensions the store can read (the job's run's repository).
GROUPING_DIMENSIONS = ("repo",)


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _parse_log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise SettingsError(f"{name} must be text or json, got {raw!r}")
    return value


def _parse_secret_key(name: str, raw: str) -> Secret:
    if len(raw) < 32:
        raise SettingsError(f"{name} must be at least 32 characters (random), got {len(raw)}")
    return Secret(raw)


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "database_url": _parse_database_url,
    "data_dir": _parse_path,
    "host": _parse_str,
    "port": _number(int, "a whole number", 1),
    "server_url": _parse_server_url,
    "token": _parse_secret,
    "lease_ttl_s": _number(float, "a number of seconds", 0.1),
    "heartbeat_interval_s": _number(float, "a number of seconds", 0.05),
    "claim_timeout_s": _number(float, "a number of seconds", 0),
    "max_attempts": _number(int, "a whole number", 1),
    "retry_backoff_s": _number(float, "a number of seconds", 0),
    "reaper_interval_s": _number(float, "a number of seconds", 0.05),
    "max_body_bytes": _number(int, "a whole number of bytes", 1024),
    "max_run_tests": _number(int, "a whole number", 1),
    "db_pool_size": _number(int, "a whole number", 1),
    "db_connect_timeout_s": _number(float, "a number of seconds", 0),
    "log_level": _parse_log_level,
    "aging_s": _number(float, "a number of seconds", 1),
    "org_cap": _parse_optional_cap,
    "org_caps": _parse_org_caps,
    "grouping": _parse_grouping,
    "default_duration_s": _number(float, "a number of seconds", 0),
    "default_setup_s": _number(float, "a number of seconds", 0),
    "unknown_spec_estimate": _parse_unknown_spec,
    "max_batch_s": _number(float, "a number of seconds (0: no cap)", 0),
    "min_batch_s": _number(float, "a number of seconds", 0),
    # Operations.
    "log_format": _parse_log_format,
    "metrics_token": _parse_secret,
    "shutdown_grace_s": _number(float, "a number of seconds", 0),
    "migrate_on_start": _parse_bool,
    "max_build_bytes": _number(int, "a whole number of bytes", 1),
    "build_wait_s": _number(float, "a number of seconds", 0),
    "build_sweep_interval_s": _number(float, "a number of seconds", 0.05),
    "npm": _parse_str,
    "source_keep_s": _number(float, "a number of seconds", 60),
    # Security (faults).
    "auth_failures_max": _number(int, "a whole number", 1),
    "auth_failures_window_s": _number(float, "a number of seconds", 0.1),
    "github_app_id": _parse_str,
    "github_private_key_path": _parse_path,
    "github_private_key": _parse_secret,
    "github_webhook_secret": _parse_secret,
    "github_api_url": _parse_server_url,
    "public_url": _parse_server_url,
    "github_write_spacing_s": _number(float, "a number of seconds", 0),
    "github_progress_interval_s": _number(float, "a number of seconds", 0),
    "github_poll_interval_s": _number(float, "a number of seconds", 0.01),
    "github_timeout_s": _number(float, "a number of seconds", 0.1),
    "github_retry_for_s": _number(float, "a number of seconds", 0),
    "github_delivery_retention_days": _number(float, "a number of days", 0),
    "github_retention_interval_s": _number(float, "a number of seconds", 0.05),
    "npx": _parse_str,
    "adb": _parse_str,
    "browserstack_api_url": _parse_server_url,
    "lock_dir": _parse_path,
    "secret_key": _parse_secret_key,
    "web_session_ttl_s": _number(float, "a number of seconds", 1),
    "web_link_ttl_s": _number(float, "a number of seconds", 1),
}
