"""User logins that answer with the user: a token pair and the account it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceplane.runtime import Runtime
from faceplane.services import accounts


@dataclass(frozen=True)
class Login:
    """A fresh token pair (`accounts` shape) and the public user it was issued to."""

    tokens: dict[str, Any]
    user: dict[str, Any]


def _with_user(rt: Runtime, tokens: dict[str, Any]) -> Login:
    who = accounts.authenticate_token(rt.store, tokens["access_token"])
    users = accounts.list_users(rt.store, who.company_id)
    return Login(tokens, next(u for u in users if u["id"] == who.user_id))


def log_in(rt: Runtime, email: str, password: str) -> Login:
    """Exchange user credentials for a token pair; AUTH_INVALID when they are wrong."""
    s = rt.settings
    tokens = accounts.login(rt.store, email, password, s.access_token_ttl_s, s.refresh_token_ttl_s)
    return _with_user(rt, tokens)


def renew(rt: Runtime, refresh_token: str) -> Login:
    """A new token pair for a valid refresh token, which is spent."""
    s = rt.settings
    tokens = accounts.refresh_tokens(
        rt.store, refresh_token, s.access_token_ttl_s, s.refresh_token_ttl_s
    )
    return _with_user(rt, tokens)
