"""The webhook route's intake (app/github/intake.py) on real PostgreSQL: deliveries that
arrive together are committed by shared statements, each caller still gets its own answer
(fresh or seen before), the inbox's order is the order of arrival, and one delivery the
database refuses fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from app.github.intake import Intake
from app.store.deliveries import NewDelivery


class CountingPool:
    """The pool, counting the statements the intake sends through it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements = 0

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.statements += 1
        rows: list[asyncpg.Record] = await self.pool.fetch(query, *args)
        return rows


def push(delivery_id: str, *, action: str | None = None) -> NewDelivery:
    return NewDelivery(
        delivery_id=delivery_id, event="push", action=action, installation_id=1, body=b"{}"
    )


async def test_a_burst_shares_statements_and_every_caller_gets_its_own_answer(
    pool: asyncpg.Pool,
) -> None:
    counting = CountingPool(pool)
    intake = Intake(counting, writers=1)  # type: ignore[arg-type]
    assert await intake.record(push("seen-before")) is True
    ignored = NewDelivery(
        delivery_id="ignored", event="star", action="created", installation_id=1, body=None,
        outcome="ignored: star.created is not handled",
    )  # fmt: skip
    burst = [push(f"d-{n:02d}") for n in range(30)]
    burst[10:10] = [push("seen-before"), push("d-05"), ignored]  # two repeats, one ignored
    answers = await asyncio.gather(*(intake.record(d) for d in burst))

    by_call = {
        f"{d.delivery_id}@{i}": a for i, (d, a) in enumerate(zip(burst, answers, strict=True))
    }
    assert by_call["seen-before@10"] is False
    assert by_call["d-05@5"] is True and by_call["d-05@11"] is False  # the first one wins
    assert sum(answers) == 31  # 30 new pushes and the ignored event
    # One statement for the first delivery, then the rest gathered behind it.
    assert counting.statements < len(burst) / 2
    rows = await pool.fetch(
        "SELECT delivery_id, processed_at IS NOT NULL AS processed FROM webhook_deliveries "
        "ORDER BY received_at"
    )
    order = [r["delivery_id"] for r in rows]
    arrival = list(dict.fromkeys(["seen-before", *(d.delivery_id for d in burst)]))
    assert order == arrival  # the inbox takes the oldest first
    assert {r["delivery_id"] for r in rows if r["processed"]} == {"ignored"}


async def test_a_delivery_the_database_refuses_fails_alone(pool: asyncpg.Pool) -> None:
    intake = Intake(pool, writers=1)
    first = asyncio.create_task(intake.record(push("first")))
    await asyncio.sleep(0)  # the first statement is in flight; the rest gather behind it
    rest = [push("a"), push("nul", action="opened\x00"), push("b")]
    answers = await asyncio.gather(*(intake.record(d) for d in rest), return_exceptions=True)
    assert await first is True
    assert answers[0] is True and answers[2] is True
    assert isinstance(answers[1], asyncpg.PostgresError)  # PostgreSQL text cannot hold NUL
    stored = await pool.fetch("SELECT delivery_id FROM webhook_deliveries ORDER BY received_at")
    assert [r["delivery_id"] for r in stored] == ["first", "a", "b"]


async def test_a_lost_database_fails_every_waiting_caller(pool: asyncpg.Pool) -> None:
    closed = await asyncpg.create_pool(
        dsn=None, host="127.0.0.1", port=1, min_size=0, max_size=1
    )  # nothing listens on port 1: every connection is refused
    intake = Intake(closed, writers=1)
    answers = await asyncio.gather(
        *(intake.record(push(f"x-{n}")) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(a, OSError) for a in answers)
    await closed.close()


@pytest.mark.parametrize(
    ("in_flight", "since_last_s", "slots"),
    [(1, 10.0, 1), (0, 0.01, 1), (0, 10.0, 4)],
)
async def test_the_inbox_keeps_one_slot_while_deliveries_arrive(
    pool: asyncpg.Pool, in_flight: int, since_last_s: float, slots: int
) -> None:
    now = [100.0]
    intake = Intake(pool, quiet_s=0.05, clock=lambda: now[0])
    assert intake.slots(4) == 4  # nothing has arrived yet
    with intake.receiving():
        assert intake.slots(4) == 1
    now[0] += since_last_s
    for _ in range(in_flight):
        intake.receiving().__enter__()
    assert intake.slots(4) == slots
