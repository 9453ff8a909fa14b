"""Who is calling: API keys, access tokens and signed requests; roles; the rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.limits import hit_rate_limit

# Headers of a natively signed request (SIGN_DATA over method, path, timestamp, nonce, body).
SIGN_HEADERS = (
    "x-faceplane-app-id",
    "x-faceplane-timestamp",
    "x-faceplane-nonce",
    "x-faceplane-signature",
)


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def authenticate(request: Request) -> Principal:
    """Resolve the caller from the first credential present, or AUTH_MISSING."""
    app = request.app
    rt = app.state.rt
    store, settings = rt.store, rt.settings
    if settings.auth_disabled:
        return app.state.open_principal
    # Oz's pages spell its header both ways.
    token = request.headers.get("x-forensic-access-token") or request.headers.get(
        "x-forensics-access-token"
    )
    bearer = _bearer(request)
    if token or (bearer and bearer.startswith(accounts.TOKEN_PREFIX)):
        credential = token or bearer or ""
        return await rt.run_io(accounts.authenticate_token, store, credential)
    key = bearer or request.headers.get("x-api-key")
    if key:
        return await rt.run_io(accounts.authenticate_key, store, key)
    signed = [request.headers.get(h) for h in SIGN_HEADERS]
    if any(signed):
        if not all(signed):
            raise FaceplaneError(
                Err.PARAMETERS_EMPTY,
                "A signed request needs all of " + ", ".join(h.title() for h in SIGN_HEADERS) + ".",
            )
        app_id, ts, nonce, sig = (v or "" for v in signed)
        body = await request.body()
        message = accounts.signed_message(request.method, request.url.path, ts, nonce, body)
        return await rt.run_io(
            accounts.authenticate_signature,
            store,
            app_id,
            sig,
            message,
            nonce,
            ts,
            settings.signature_max_skew_s,
        )
    raise FaceplaneError(
        Err.AUTH_MISSING,
        "No credentials: send `Authorization: Bearer <key or token>`, `X-API-Key`, "
        "`X-Forensic-Access-Token` or a signed request.",
    )


async def apply_rate_limit(request: Request, principal: Principal) -> None:
    """Count the request against the caller's limit; the headers go on every answer."""
    rt = request.app.state.rt
    settings = rt.settings
    limit = principal.rate_limit or settings.default_rate_limit
    try:
        state = await rt.run_io(
            hit_rate_limit, rt.counters, principal.limit_key, limit, settings.rate_window_s
        )
    except FaceplaneError as exc:
        request.scope["state"]["ratelimit"] = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(exc.details.get("retry_after_s", 1)),
        }
        raise
    request.scope["state"]["ratelimit"] = state.headers()


async def require_caller(request: Request) -> Principal:
    """Any authenticated caller, counted against its rate limit."""
    principal = await authenticate(request)
    request.scope["state"]["principal"] = principal
    if principal.via != "disabled":
        await apply_rate_limit(request, principal)
    return principal


async def require_writer(principal: Annotated[Principal, Depends(require_caller)]) -> Principal:
    """A caller allowed to change data: admins and clients (operators only read)."""
    if principal.role not in ("admin", "client"):
        raise FaceplaneError(
            Err.AUTH_FORBIDDEN, "This role may read but not change data.", role=principal.role
        )
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_caller)]) -> Principal:
    """A company admin (logged in as a user)."""
    if principal.role != "admin":
        raise FaceplaneError(Err.AUTH_FORBIDDEN, "Only an admin may do this.", role=principal.role)
    return principal


CallerDep = Annotated[Principal, Depends(require_caller)]
WriterDep = Annotated[Principal, Depends(require_writer)]
AdminDep = Annotated[Principal, Depends(require_admin)]
