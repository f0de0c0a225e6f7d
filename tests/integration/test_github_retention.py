"""The retention sweep of webhook deliveries (app/github/retention.py) on real PostgreSQL:
processed deliveries past the window go, in batches and oldest first; deliveries still to
process and recent ones stay, and a recent one redelivered is still a duplicate."""

from __future__ import annotations

import dataclasses

import asyncpg

from app.github.intake import Intake
from app.github.retention import sweep_once
from app.github.service import GitHubApp, default_details_url
from app.store.deliveries import NewDelivery, forget_deliveries
from github_app.client import GitHubClient
from qgjob.settings import Settings
from tests.standins.github import generate_app_key


def push(delivery_id: str) -> NewDelivery:
    return NewDelivery(
        delivery_id=delivery_id, event="push", action=None, installation_id=1, body=b"{}"
    )


async def recorded(pool: asyncpg.Pool, ages_days: dict[str, float | None]) -> None:
    """Deliveries processed that many days ago (None: not processed yet)."""
    intake = Intake(pool)
    for delivery_id, age in ages_days.items():
        assert await intake.record(push(delivery_id))
        await pool.execute(
            "UPDATE webhook_deliveries SET received_at = now() - make_interval(days => $2),"
            " processed_at = CASE WHEN $3 THEN now() - make_interval(days => $2) END "
            "WHERE delivery_id = $1",
            delivery_id, int(age if age is not None else 30), age is not None,
        )  # fmt: skip


async def kept(pool: asyncpg.Pool) -> set[str]:
    return {
        r["delivery_id"] for r in await pool.fetch("SELECT delivery_id FROM webhook_deliveries")
    }


async def test_forgets_processed_deliveries_past_the_window_in_batches_oldest_first(
    pool: asyncpg.Pool,
) -> None:
    await recorded(pool, {"old-20": 20, "old-16": 16, "old-15": 15, "waiting": None, "new": 2})
    window_s = 14 * 86400.0
    assert await forget_deliveries(pool, older_than_s=window_s, limit=2) == 2
    assert await kept(pool) == {"old-15", "waiting", "new"}
    assert await forget_deliveries(pool, older_than_s=window_s, limit=2) == 1
    assert await forget_deliveries(pool, older_than_s=window_s, limit=2) == 0
    assert await kept(pool) == {"waiting", "new"}  # 30 days old, but never processed
    # Within the window the delivery id still makes a redelivery a duplicate.
    assert await Intake(pool).record(push("new")) is False


async def test_a_sweep_deletes_everything_past_the_window_batch_after_batch(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await recorded(pool, {**{f"old-{n}": 15 + n for n in range(7)}, "new": 13})
    private, _ = generate_app_key()
    configured = dataclasses.replace(settings, github_delivery_retention_days=14)
    async with GitHubClient(app_id="1", private_key=private, base_url="http://127.0.0.1:9") as c:
        app = GitHubApp(
            settings=configured, pool=pool, client=c, details_url=default_details_url("https://q")
        )
        assert await sweep_once(app, batch_rows=3) == 7
    assert await kept(pool) == {"new"}
