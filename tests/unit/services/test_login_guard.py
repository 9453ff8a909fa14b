"""The login throttle: limits per subject, doubling lockouts, reset on success, bounded memory."""

from __future__ import annotations

import pytest

from faceplane.errors import Err, FaceplaneError
from faceplane.services.login_guard import Limit, LoginThrottle, subjects


def throttle(max_entries: int = 1000) -> LoginThrottle:
    return LoginThrottle(
        {"account": Limit(3, 1.0, 8.0, 900.0), "address": Limit(5, 1.0, 8.0, 900.0)},
        max_entries,
    )


def refused(t: LoginThrottle, who: list[str], now: float) -> int:
    with pytest.raises(FaceplaneError) as caught:
        t.admit(who, now)
    assert caught.value.err is Err.RATE_LIMIT_EXCEEDED
    return int(caught.value.details["retry_after_s"])


def test_lockouts_double_after_the_limit_and_stop_at_the_longest() -> None:
    t, who = throttle(), subjects("Ann@Acme.test", None)
    assert who == ["account:ann@acme.test"]
    now = 1000.0
    for _ in range(3):
        t.admit(who, now)
        t.failed(who, now)
    waits = [refused(t, who, now)]
    for _ in range(4):
        now += waits[-1]  # the lockout is over: one more attempt is let through
        t.admit(who, now)
        t.failed(who, now)
        waits.append(refused(t, who, now))
    assert waits == [1, 2, 4, 8, 8]


def test_attempts_in_flight_count_so_a_burst_gets_only_the_limit_through() -> None:
    t, who = throttle(), subjects("ann@acme.test", "10.0.0.1")
    for _ in range(3):
        t.admit(who, 0.0)
    refused(t, who, 0.0)
    t.abandoned(who)
    t.admit(who, 0.0)


def test_success_forgets_the_account_but_not_the_address() -> None:
    t = throttle()
    for i in range(4):
        who = subjects(f"u{i}@acme.test", "10.0.0.1")
        t.admit(who, 0.0)
        t.failed(who, 0.0) if i < 3 else t.succeeded(who, forget=who[:1])
    assert t.failures("address:10.0.0.1") == 3
    who = subjects("u0@acme.test", "10.0.0.1")
    assert t.failures("account:u0@acme.test") == 1
    t.admit(who, 0.0)
    t.succeeded(who, forget=who[:1])
    assert t.failures("account:u0@acme.test") == 0
    # The address limit holds whichever accounts it tries.
    t.admit(subjects("u9@acme.test", "10.0.0.1"), 0.0)
    t.failed(subjects("u9@acme.test", "10.0.0.1"), 0.0)
    t.admit(subjects("u8@acme.test", "10.0.0.1"), 0.0)
    t.failed(subjects("u8@acme.test", "10.0.0.1"), 0.0)
    refused(t, subjects("u7@acme.test", "10.0.0.1"), 0.0)


def test_failures_are_forgotten_after_the_window_and_memory_is_bounded() -> None:
    t, who = throttle(max_entries=10), subjects("ann@acme.test", None)
    for _ in range(3):
        t.admit(who, 0.0)
        t.failed(who, 0.0)
    refused(t, who, 0.5)
    t.admit(who, 901.0)
    assert t.failures("account:ann@acme.test") == 0
    for i in range(50):
        t.admit(subjects(f"spray{i}@acme.test", None), 1000.0)
    assert len(t._entries) == 10
