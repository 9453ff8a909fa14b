"""User logins: throttled password checks on their own pool, audited failures, refreshes that
catch a stolen refresh token.

Every login route (native `/v1/auth/login`, Oz `authorize/auth`) goes through `log_in`:

1. the throttle of the server process (`rt.login_guard`) admits the attempt for its account
   and its client address, or answers RATE_LIMIT_EXCEEDED (429, Retry-After);
2. the password is checked on the small password pool once a hashing slot is free (at most
   `login_hash_threads` at once; after `login_hash_wait_s` without one: SERVER_BUSY, 503);
3. a wrong password is a failure of the account and the address (a lockout after too many,
   doubling at each further one) and an audit entry `login.failed` with the address and the
   account's email, never the password; a right one forgets the account's failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts, audit
from faceplane.services.login_guard import subjects


@dataclass(frozen=True)
class Login:
    """A fresh token pair (`accounts` shape) and the public user it was issued to."""

    tokens: dict[str, Any]
    user: dict[str, Any]


def _with_user(rt: Runtime, tokens: dict[str, Any]) -> Login:
    who = accounts.authenticate_token(rt, tokens["access_token"])
    users = accounts.list_users(rt, who.company_id)
    return Login(tokens, next(u for u in users if u["id"] == who.user_id))


def _audit_failure(
    rt: Runtime,
    account: accounts.LoginAccount,
    email: str,
    action: str,
    status: int,
    ip: str | None,
) -> None:
    actor = f"user:{account.user_id}" if account.user_id else "anonymous"
    audit.record(rt, account.company_id, actor, action, "account:" + email.lower(), status, ip)


async def check_password(rt: Runtime, email: str, password: str, address: str | None) -> dict:
    """Exchange user credentials for a token pair, throttled; AUTH_INVALID when they are
    wrong, RATE_LIMIT_EXCEEDED or SERVER_BUSY when refused unchecked."""
    guard = rt.login_guard
    who = subjects(email, address)
    guard.throttle.admit(who)
    verdict: bool | None = None
    try:
        # The database read first: a hashing slot is held only while a password is checked.
        account = await rt.run_io(accounts.login_account, rt, email)
        await guard.slots.acquire()
        try:
            verdict = await rt.run_password(accounts.password_matches, account, password)
        finally:
            guard.slots.release()
    finally:
        if verdict is None:
            guard.throttle.abandoned(who)
    if not verdict:
        locked = guard.throttle.failed(who)
        await rt.run_io(_audit_failure, rt, account, email, "login.failed", 401, address)
        if locked:
            await rt.run_io(_audit_failure, rt, account, email, "login.locked", 429, address)
        raise FaceplaneError(Err.AUTH_INVALID, "Wrong email or password.")
    guard.throttle.succeeded(who, forget=who[:1])
    s = rt.settings
    return await rt.run_io(
        accounts.issue_login, rt, account, s.access_token_ttl_s, s.refresh_token_ttl_s
    )


async def log_in(rt: Runtime, email: str, password: str, address: str | None) -> Login:
    """`check_password`, answered with the user the tokens belong to."""
    tokens = await check_password(rt, email, password, address)
    return await rt.run_io(_with_user, rt, tokens)


def _renew(rt: Runtime, refresh_token: str, address: str | None) -> dict[str, Any]:
    s = rt.settings
    try:
        return accounts.refresh_tokens(
            rt, refresh_token, s.access_token_ttl_s, s.refresh_token_ttl_s
        )
    except accounts.RefreshReuse as exc:
        theft = exc.theft
        company = accounts.user_company(rt, theft.user_id)
        audit.record(
            rt,
            company,
            f"user:{theft.user_id}",
            "refresh.reused",
            f"token-family:{theft.family or 'none'} revoked:{theft.revoked}",
            401,
            address,
        )
        raise


async def refresh(rt: Runtime, refresh_token: str, address: str | None) -> dict[str, Any]:
    """A new token pair for a valid refresh token, which is spent; a spent one's reuse
    revokes its family and is audited (`refresh.reused`)."""
    return await rt.run_io(_renew, rt, refresh_token, address)


async def renew(rt: Runtime, refresh_token: str, address: str | None) -> Login:
    """`refresh`, answered with the user the tokens belong to."""
    tokens = await refresh(rt, refresh_token, address)
    return await rt.run_io(_with_user, rt, tokens)
