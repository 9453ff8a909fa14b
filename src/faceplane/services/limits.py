"""Rate limits and quotas: atomic counters in the database, or in Redis when distributed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, delete

from faceplane.errors import Err, FaceplaneError
from faceplane.store.db import counters, write_tx

# Credits each billable operation costs.
OPERATION_COSTS = {
    "detect": 1,
    "compare": 2,
    "crop": 1,
    "enroll": 1,
    "search": 1,
    "blacklist_check": 1,
}


class Counters(Protocol):
    """Atomic counters that expire."""

    def add(self, key: str, amount: int, ttl_s: float, cap: int | None = None) -> int | None:
        """Add `amount`; return the new value, or None (nothing added) if it would pass `cap`."""

    def purge(self) -> None:
        """Drop expired counters (where they do not expire by themselves)."""


class DbCounters:
    """Counters in the metadata database: enough for one machine, several processes."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        # INSERT ... ON CONFLICT DO NOTHING is spelled per dialect (both have it).
        if db.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._insert: Any = pg_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._insert = sqlite_insert

    def add(self, key: str, amount: int, ttl_s: float, cap: int | None = None) -> int | None:
        """One upsert statement (conditional when capped), so concurrent processes never
        overshoot; keys name their window, so expired rows are only garbage (`purge`)."""
        stmt = self._insert(counters).values(key=key, value=amount, expires_at=time.time() + ttl_s)
        where = None if cap is None else counters.c.value + amount <= cap
        stmt = stmt.on_conflict_do_update(
            index_elements=[counters.c.key],
            set_={"value": counters.c.value + amount},
            where=where,
        ).returning(counters.c.value)
        with write_tx(self.db) as conn:
            if cap is not None and amount > cap:
                return None
            value = conn.execute(stmt).scalar()
        return None if value is None else int(value)

    def purge(self) -> None:
        """Drop expired counters."""
        with write_tx(self.db) as conn:
            conn.execute(delete(counters).where(counters.c.expires_at < time.time()))


_CAPPED_ADD = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local cap = tonumber(ARGV[3])
if cap >= 0 and v + amount > cap then return false end
v = redis.call('INCRBY', KEYS[1], amount)
if v == amount then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""


class RedisCounters:
    """Counters in Redis, shared by every server of a distributed deployment."""

    def __init__(self, url: str) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url)
        self._script = self.client.register_script(_CAPPED_ADD)

    def add(self, key: str, amount: int, ttl_s: float, cap: int | None = None) -> int | None:
        """A Lua script makes the check and the increment one atomic step."""
        # A refusal is Lua's false (None here), not a number: counters may go below zero.
        value = self._script(
            keys=["faceplane:" + key],
            args=[amount, int(ttl_s * 1000), -1 if cap is None else cap],
        )
        return None if value is None else int(value)

    def purge(self) -> None:
        """Nothing to do: Redis expires the keys itself."""


@dataclass(frozen=True)
class RateState:
    """What the X-RateLimit-* headers say."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """The seed's header names and values."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


def hit_rate_limit(counters_: Counters, who: str, limit: int, window_s: int) -> RateState:
    """Count one request in the current fixed window; RATE_LIMIT_EXCEEDED past the limit."""
    now = time.time()
    window = int(now // window_s)
    reset = max(1, math.ceil((window + 1) * window_s - now))
    value = counters_.add(f"rate:{who}:{window}", 1, window_s * 2)
    used = value if value is not None else limit + 1
    state = RateState(limit, max(0, limit - used), reset)
    if used > limit:
        raise FaceplaneError(
            Err.RATE_LIMIT_EXCEEDED,
            f"The limit of {limit} requests per {window_s} s was reached.",
            retry_after_s=reset,
            limit=limit,
        )
    return state


def spend_credits(
    counters_: Counters, who: str, quota: int | None, period_s: int, operation: str, count: int = 1
) -> None:
    """Spend the credits of `count` operations atomically, or refuse with QUOTA_EXCEEDED."""
    cost = OPERATION_COSTS.get(operation, 1) * count
    if quota is None or cost == 0:
        return
    period = int(time.time() // period_s)
    if counters_.add(f"quota:{who}:{period}", cost, period_s * 2, cap=quota) is None:
        raise FaceplaneError(
            Err.QUOTA_EXCEEDED,
            f"Not enough credits: {operation} costs {cost}; the quota is {quota} per period.",
            cost=cost,
            quota=quota,
            period_s=period_s,
        )


def refund_credits(
    counters_: Counters, who: str, quota: int | None, period_s: int, operation: str, count: int = 1
) -> None:
    """Give back what `spend_credits` took for work that was refused after all."""
    cost = OPERATION_COSTS.get(operation, 1) * count
    if quota is None or cost == 0:
        return
    period = int(time.time() // period_s)
    counters_.add(f"quota:{who}:{period}", -cost, period_s * 2)
