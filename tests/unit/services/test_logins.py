"""User logins, called directly: throttled password checks, audited failures and lockouts,
bounded hashing, and refreshes that revoke a login whose spent refresh token comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts, audit, logins
from faceplane.settings import Settings

T = TypeVar("T")
EMAIL, PASSWORD, ADDRESS = "Ann@Acme.test", "correct horse battery", "203.0.113.7"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(
        Settings(
            data_dir=tmp_path,
            workers=0,
            login_max_failures=3,
            login_max_failures_per_address=100,
            login_lockout_s=60,
            login_hash_threads=1,
            login_hash_wait_s=0.2,
        )
    )
    yield runtime
    runtime.close()


@pytest.fixture
def user(rt: Runtime) -> dict[str, Any]:
    company = accounts.create_company(rt, "acme")
    return accounts.create_user(rt, company["id"], EMAIL, PASSWORD, "admin")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def refused(coro: Awaitable[Any]) -> FaceplaneError:
    with pytest.raises(FaceplaneError) as caught:
        run(coro)
    return caught.value


def actions(rt: Runtime, user: dict[str, Any]) -> list[dict[str, Any]]:
    entries = audit.list_entries(rt, user["company_id"], 100)["entries"]
    return list(reversed(entries))  # oldest first


def test_the_right_password_gives_a_token_pair_of_that_user(
    rt: Runtime, user: dict[str, Any]
) -> None:
    login = run(logins.log_in(rt, EMAIL.upper(), PASSWORD, ADDRESS))
    assert login.user["id"] == user["id"] and login.user["email"] == EMAIL.lower()
    assert "password_hash" not in login.user
    who = accounts.authenticate_token(rt, login.tokens["access_token"])
    assert (who.user_id, who.company_id) == (user["id"], user["company_id"])
    assert actions(rt, user) == []  # a good login is not a failure to audit


def test_a_wrong_password_is_auth_invalid_and_audited_without_the_password(
    rt: Runtime, user: dict[str, Any]
) -> None:
    err = refused(logins.check_password(rt, EMAIL, "not the password", ADDRESS))
    assert err.err is Err.AUTH_INVALID
    (entry,) = actions(rt, user)
    assert entry["action"] == "login.failed" and entry["status"] == 401
    assert entry["resource"] == "account:" + EMAIL.lower()
    assert "not the password" not in str(entry)
    assert rt.login_guard.throttle.failures("account:" + EMAIL.lower()) == 1


def test_an_unknown_email_is_refused_like_a_wrong_password(
    rt: Runtime, user: dict[str, Any]
) -> None:
    unknown = refused(logins.check_password(rt, "nobody@acme.test", PASSWORD, ADDRESS))
    wrong = refused(logins.check_password(rt, EMAIL, "not the password", ADDRESS))
    assert (
        (unknown.err, unknown.message)
        == (wrong.err, wrong.message)
        == (
            Err.AUTH_INVALID,
            "Wrong email or password.",
        )
    )


def test_repeated_failures_lock_the_account_even_for_the_right_password(
    rt: Runtime, user: dict[str, Any]
) -> None:
    for _ in range(3):
        assert refused(logins.check_password(rt, EMAIL, "wrong", ADDRESS)).err is Err.AUTH_INVALID
    assert [e["action"] for e in actions(rt, user)] == [
        "login.failed",
        "login.failed",
        "login.failed",
        "login.locked",
    ]
    err = refused(logins.check_password(rt, EMAIL, PASSWORD, ADDRESS))
    assert err.err is Err.RATE_LIMIT_EXCEEDED and err.details["retry_after_s"] >= 1


def test_a_good_login_forgets_the_accounts_failures(rt: Runtime, user: dict[str, Any]) -> None:
    for _ in range(2):
        refused(logins.check_password(rt, EMAIL, "wrong", ADDRESS))
    run(logins.check_password(rt, EMAIL, PASSWORD, ADDRESS))
    assert rt.login_guard.throttle.failures("account:" + EMAIL.lower()) == 0
    for _ in range(2):
        refused(logins.check_password(rt, EMAIL, "wrong", ADDRESS))
    assert run(logins.check_password(rt, EMAIL, PASSWORD, ADDRESS))["access_token"]


def test_no_free_hashing_slot_is_server_busy_and_counts_no_failure(
    rt: Runtime, user: dict[str, Any]
) -> None:
    async def with_the_only_slot_taken() -> None:
        await rt.login_guard.slots.acquire()
        try:
            await logins.check_password(rt, EMAIL, "wrong", ADDRESS)
        finally:
            rt.login_guard.slots.release()

    err = refused(with_the_only_slot_taken())
    assert err.err is Err.SERVER_BUSY and err.details["retry_after_s"] == 1
    assert rt.login_guard.throttle.failures("account:" + EMAIL.lower()) == 0
    assert actions(rt, user) == []


def test_a_refresh_spends_its_token_and_its_reuse_revokes_the_login(
    rt: Runtime, user: dict[str, Any]
) -> None:
    first = run(logins.check_password(rt, EMAIL, PASSWORD, ADDRESS))
    renewed = run(logins.renew(rt, first["refresh_token"], ADDRESS))
    assert renewed.user["id"] == user["id"]
    assert renewed.tokens["refresh_token"] != first["refresh_token"]
    assert accounts.authenticate_token(rt, renewed.tokens["access_token"]).user_id

    err = refused(logins.refresh(rt, first["refresh_token"], ADDRESS))
    assert err.err is Err.AUTH_INVALID
    (entry,) = actions(rt, user)
    assert entry["action"] == "refresh.reused" and entry["status"] == 401
    with pytest.raises(FaceplaneError) as caught:  # the whole family went with it
        accounts.authenticate_token(rt, renewed.tokens["access_token"])
    assert caught.value.err in (Err.AUTH_INVALID, Err.AUTH_EXPIRED)
    assert refused(logins.refresh(rt, renewed.tokens["refresh_token"], ADDRESS)).err in (
        Err.AUTH_INVALID,
        Err.AUTH_EXPIRED,
    )
