"""services/limits.py: counters in real SQLite and real Redis, rate limits, credits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.limits import (
    OPERATION_COSTS,
    Counters,
    DbCounters,
    RateState,
    RedisCounters,
    hit_rate_limit,
    refund_credits,
    spend_credits,
)
from faceplane.settings import Settings
from faceplane.store.db import counters as counters_table

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a fresh SQLite database."""
    runtime = Runtime.open(Settings(data_dir=tmp_path))
    yield runtime
    runtime.close()


@pytest.fixture
def db_counters(rt: Runtime) -> DbCounters:
    """The default counters: rows of the metadata database."""
    assert isinstance(rt.counters, DbCounters)
    return rt.counters


@pytest.fixture
def redis_counters() -> Iterator[RedisCounters]:
    """Counters in the local Redis; every key this test made is deleted afterwards."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"REDIS IS DOWN at {REDIS_URL} ({exc}): RedisCounters not tested")
    made = RedisCounters(REDIS_URL)
    yield made
    for key in made.client.scan_iter(match="faceplane:unit-*"):
        made.client.delete(key)


@pytest.fixture(params=["db", "redis"])
def any_counters(request: pytest.FixtureRequest) -> Counters:
    """Each implementation of the Counters protocol in turn."""
    name = "db_counters" if request.param == "db" else "redis_counters"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def fresh_key() -> str:
    """A counter key no other test (or run) uses; Redis cleanup matches its prefix."""
    return f"unit-{uuid.uuid4().hex}"


# ---- the Counters protocol, on both implementations ---------------------------------------


def test_an_uncapped_add_returns_the_running_total(any_counters: Counters) -> None:
    key = fresh_key()
    assert any_counters.add(key, 1, 60) == 1
    assert any_counters.add(key, 4, 60) == 5
    assert any_counters.add(key, -2, 60) == 3
    assert any_counters.add(fresh_key(), 7, 60) == 7  # keys are independent


def test_a_capped_add_stops_at_the_cap_and_adds_nothing_past_it(any_counters: Counters) -> None:
    key = fresh_key()
    assert any_counters.add(key, 3, 60, cap=5) == 3
    assert any_counters.add(key, 2, 60, cap=5) == 5  # exactly at the cap is allowed
    assert any_counters.add(key, 1, 60, cap=5) is None
    assert any_counters.add(key, 0, 60) == 5  # the refused add left the value alone


def test_a_first_add_larger_than_the_cap_is_refused(any_counters: Counters) -> None:
    key = fresh_key()
    assert any_counters.add(key, 6, 60, cap=5) is None
    assert any_counters.add(key, 0, 60) == 0
    assert any_counters.add(fresh_key(), 1, 60, cap=0) is None


def test_a_counter_may_go_below_zero_and_say_so(any_counters: Counters) -> None:
    # A refund can outrun its spend (the spend was counted in the previous period): the
    # protocol still answers the new value; None means only "nothing added".
    key = fresh_key()
    assert any_counters.add(key, -3, 60) == -3
    assert any_counters.add(key, 1, 60, cap=5) == -2


def test_concurrent_capped_adds_never_overshoot_the_cap(any_counters: Counters) -> None:
    key, cap, threads_n, tries = fresh_key(), 25, 6, 10
    start = threading.Barrier(threads_n)
    accepted: list[int] = []
    lock = threading.Lock()

    def spend() -> None:
        start.wait()
        for _ in range(tries):
            value = any_counters.add(key, 1, 60, cap=cap)
            if value is not None:
                with lock:
                    accepted.append(value)

    threads = [threading.Thread(target=spend) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 60 tries at a cap of 25: exactly 25 succeed, and each saw a distinct total.
    assert sorted(accepted) == list(range(1, cap + 1))
    assert any_counters.add(key, 0, 60) == cap


# ---- DbCounters ----------------------------------------------------------------------------


def stored_keys(rt: Runtime) -> set[str]:
    """The counter rows in the database."""
    with rt.store.db.connect() as conn:
        return {r[0] for r in conn.execute(select(counters_table.c.key))}


def test_db_counters_purge_drops_only_expired_rows(rt: Runtime, db_counters: DbCounters) -> None:
    db_counters.add("gone-1", 1, -1)
    db_counters.add("gone-2", 1, -10)
    db_counters.add("kept", 1, 3600)
    assert stored_keys(rt) == {"gone-1", "gone-2", "kept"}
    db_counters.purge()
    assert stored_keys(rt) == {"kept"}
    assert db_counters.add("kept", 1, 3600) == 2


def test_db_counters_keep_the_expiry_of_their_first_add(
    rt: Runtime, db_counters: DbCounters
) -> None:
    # Keys name their window; a later add must not push the row's expiry out for ever.
    db_counters.add("window", 1, -1)
    db_counters.add("window", 1, 3600)
    db_counters.purge()
    assert "window" not in stored_keys(rt)


# ---- RedisCounters -------------------------------------------------------------------------


def test_redis_counters_live_under_the_faceplane_prefix_and_expire(
    redis_counters: RedisCounters,
) -> None:
    key = fresh_key()
    redis_counters.add(key, 2, 30)
    client = redis_counters.client
    assert int(client.get("faceplane:" + key)) == 2
    ttl_ms = client.pttl("faceplane:" + key)
    assert 0 < ttl_ms <= 30_000
    redis_counters.add(key, 1, 30)
    assert client.pttl("faceplane:" + key) <= ttl_ms  # later adds do not extend the window
    redis_counters.purge()  # nothing to do: Redis expires the keys itself
    assert int(client.get("faceplane:" + key)) == 3


def test_a_redis_counter_is_gone_after_its_time_to_live(redis_counters: RedisCounters) -> None:
    key = fresh_key()
    assert redis_counters.add(key, 5, 0.2) == 5
    deadline = time.monotonic() + 5
    while redis_counters.client.exists("faceplane:" + key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_counters.add(key, 1, 60) == 1


# ---- rate limits ---------------------------------------------------------------------------


def test_the_rate_limit_counts_down_then_refuses_with_retry_after(db_counters: DbCounters) -> None:
    who = fresh_key()
    states = [hit_rate_limit(db_counters, who, 3, 3600) for _ in range(3)]
    assert [s.remaining for s in states] == [2, 1, 0]
    assert all(s.limit == 3 and 1 <= s.reset_s <= 3600 for s in states)
    with pytest.raises(FaceplaneError) as info:
        hit_rate_limit(db_counters, who, 3, 3600)
    assert info.value.err is Err.RATE_LIMIT_EXCEEDED
    assert info.value.details["limit"] == 3
    retry = info.value.details["retry_after_s"]
    assert isinstance(retry, int) and 1 <= retry <= 3600
    # Another caller has its own window.
    assert hit_rate_limit(db_counters, fresh_key(), 3, 3600).remaining == 2


def test_the_rate_limit_headers_carry_the_seeds_names() -> None:
    assert RateState(limit=10, remaining=4, reset_s=17).headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "17",
    }


def test_the_reset_is_the_time_left_in_the_current_window(db_counters: DbCounters) -> None:
    window_s = 7
    before = time.time()
    state = hit_rate_limit(db_counters, fresh_key(), 100, window_s)
    left = window_s - (before % window_s)
    assert abs(state.reset_s - left) <= 1.01


def test_a_new_window_starts_a_new_count(db_counters: DbCounters) -> None:
    who = fresh_key()
    hit_rate_limit(db_counters, who, 1, 1)
    with pytest.raises(FaceplaneError):
        hit_rate_limit(db_counters, who, 1, 1)
    time.sleep(1.05)
    assert hit_rate_limit(db_counters, who, 1, 1).remaining == 0


def test_the_rate_limit_works_the_same_on_redis(redis_counters: RedisCounters) -> None:
    who = fresh_key()
    assert hit_rate_limit(redis_counters, who, 2, 3600).remaining == 1
    assert hit_rate_limit(redis_counters, who, 2, 3600).remaining == 0
    with pytest.raises(FaceplaneError) as info:
        hit_rate_limit(redis_counters, who, 2, 3600)
    assert info.value.err is Err.RATE_LIMIT_EXCEEDED


# ---- credits -------------------------------------------------------------------------------


def test_credits_are_spent_by_operation_cost_until_the_quota(any_counters: Counters) -> None:
    who = fresh_key()
    assert OPERATION_COSTS["compare"] == 2 and OPERATION_COSTS["detect"] == 1
    spend_credits(any_counters, who, 5, 3600, "compare")  # 2
    spend_credits(any_counters, who, 5, 3600, "compare")  # 4
    with pytest.raises(FaceplaneError) as info:
        spend_credits(any_counters, who, 5, 3600, "compare")  # 6 > 5
    assert info.value.err is Err.QUOTA_EXCEEDED
    assert info.value.details == {"cost": 2, "quota": 5, "period_s": 3600}
    spend_credits(any_counters, who, 5, 3600, "detect")  # 5: a cheaper one still fits
    with pytest.raises(FaceplaneError):
        spend_credits(any_counters, who, 5, 3600, "detect")


def test_a_batch_is_charged_for_all_its_items_or_not_at_all(any_counters: Counters) -> None:
    who = fresh_key()
    with pytest.raises(FaceplaneError) as info:
        spend_credits(any_counters, who, 5, 3600, "detect", count=6)
    assert info.value.details["cost"] == 6
    spend_credits(any_counters, who, 5, 3600, "detect", count=5)  # nothing was taken before


def test_a_refund_gives_the_credits_back(any_counters: Counters) -> None:
    who = fresh_key()
    spend_credits(any_counters, who, 4, 3600, "compare", count=2)
    with pytest.raises(FaceplaneError):
        spend_credits(any_counters, who, 4, 3600, "detect")
    refund_credits(any_counters, who, 4, 3600, "compare")
    spend_credits(any_counters, who, 4, 3600, "detect")
    spend_credits(any_counters, who, 4, 3600, "detect")
    with pytest.raises(FaceplaneError):
        spend_credits(any_counters, who, 4, 3600, "detect")


def test_an_unlimited_quota_counts_nothing(rt: Runtime, db_counters: DbCounters) -> None:
    who = fresh_key()
    for _ in range(3):
        spend_credits(db_counters, who, None, 3600, "compare", count=1000)
    refund_credits(db_counters, who, None, 3600, "compare")
    assert stored_keys(rt) == set()


def test_an_operation_without_a_listed_price_costs_one_credit(any_counters: Counters) -> None:
    who = fresh_key()
    spend_credits(any_counters, who, 1, 3600, "beautify")
    with pytest.raises(FaceplaneError) as info:
        spend_credits(any_counters, who, 1, 3600, "beautify")
    assert info.value.details["cost"] == 1
