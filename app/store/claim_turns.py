"""Claims that arrive while another is being decided share its next turn of the claim lock.

Claims take turns under one lock (`app.store.leases`), and most of a turn is spent loading
the queue. When many workers ask at once (a submit wakes every idle long-poll; a busy queue
keeps them coming back), each used to wait for the lock and then load the queue again.
Here the claims of this process queue up while a turn runs, and the next turn serves them
all (`claim_groups`): one lock, one load of the queue, then each claim decided in arrival
order on the snapshot the previous one left. Each claim is decided exactly as it would be in
a turn of its own; only the waiting and the reloading are saved.

Several server processes or replicas each run their own turns; they still take the lock one
after the other.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import asyncpg

from app.database import DATABASE_ERRORS
from app.group_commit import GroupCommit, Waiting
from app.store.jobs import Wire
from app.store.leases import ClaimRequest, UnknownWorker, claim_groups, release_group

logger = logging.getLogger(__name__)

# The most claims one turn serves; the others wait for the next turn.
MOST_PER_TURN = 16

_Waiting = Waiting[ClaimRequest, Wire | None]


class ClaimTurns:
    """Serve claims in turns over `pool`: `await turns.claim(request)` is a lease or None,
    or raises `UnknownWorker`, as `claim_group` in a transaction of its own would."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        most_per_turn: int = MOST_PER_TURN,
        on_turn: Callable[[int, float], object] = lambda claims, seconds: None,
    ) -> None:
        """`on_turn` hears how many claims each turn served and how many seconds its
        transaction took (metrics; the bench's turn figures)."""
        self._pool = pool
        self._on_turn = on_turn
        # One turn at a time: the claim lock would make a second one wait anyway.
        self._turns: GroupCommit[ClaimRequest, Wire | None] = GroupCommit(
            self._serve_turn, servers=1, max_batch=most_per_turn, name="claim-turns"
        )

    async def claim(self, request: ClaimRequest) -> Wire | None:
        return await self._turns.submit(request)

    async def _serve_turn(self, waiting: list[_Waiting]) -> None:
        turn = [(request, future) for request, future in waiting if not future.done()]
        if not turn:
            return
        try:
            async with self._pool.acquire() as conn:
                started = time.perf_counter()
                async with conn.transaction():
                    claimed = await claim_groups(conn, [request for request, _ in turn])
                self._on_turn(len(turn), time.perf_counter() - started)
        except Exception as error:  # every claim of the turn failed with it (rolled back)
            for _, future in turn:
                if not future.done():
                    future.set_exception(error)
            return
        abandoned: list[tuple[ClaimRequest, Wire]] = []
        for (request, future), outcome in zip(turn, claimed, strict=True):
            if future.done():
                if isinstance(outcome, dict):
                    abandoned.append((request, outcome))
            elif isinstance(outcome, UnknownWorker):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        for request, group in abandoned:
            await self._hand_back(request, group)

    async def _hand_back(self, request: ClaimRequest, group: Wire) -> None:
        """The asker stopped waiting while its claim was decided: release what it leased,
        so that its jobs go back to the queue now rather than when the lease runs out (which
        is what happens should this fail too)."""
        group_id = uuid.UUID(group["group_id"])
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await release_group(
                    conn,
                    group_id,
                    group["lease_token"],
                    org_scope=None,
                    error=None,
                    backoff_s=0.0,
                )
        except DATABASE_ERRORS as error:
            logger.warning(
                "abandoned claim not handed back group_id=%s: %s; its lease will expire",
                group_id,
                error,
            )
            return
        logger.info(
            "claim handed back group_id=%s worker_id=%s: the claim was abandoned",
            group_id,
            request.worker_id,
        )
