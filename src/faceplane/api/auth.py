"""Who is calling: API keys, access tokens and signed requests; roles; the rate limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource
from faceplane.services.limits import hit_rate_limit, refund_credits, spend_credits
from faceplane.services.operations import run_operation

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
    store, settings = app.state.store, app.state.settings
    if settings.auth_disabled:
        return app.state.open_principal
    # Oz's pages spell its header both ways.
    token = request.headers.get("x-forensic-access-token") or request.headers.get(
        "x-forensics-access-token"
    )
    bearer = _bearer(request)
    if token or (bearer and bearer.startswith(accounts.TOKEN_PREFIX)):
        credential = token or bearer or ""
        return await run_in_threadpool(accounts.authenticate_token, store, credential)
    key = bearer or request.headers.get("x-api-key")
    if key:
        return await run_in_threadpool(accounts.authenticate_key, store, key)
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
        return await run_in_threadpool(
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
    app = request.app
    settings = app.state.settings
    limit = principal.rate_limit or settings.default_rate_limit
    request.scope["state"]["quota"] = principal.quota
    try:
        state = await run_in_threadpool(
            hit_rate_limit, app.state.counters, principal.limit_key, limit, settings.rate_window_s
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


async def charge(
    request: Request, principal: Principal, costs: dict[str, int], refund: bool = False
) -> None:
    """Spend (or give back) the credits of operations {name: count} from the caller's quota;
    QUOTA_EXCEEDED when it is short, and then nothing is spent."""
    quota = request.scope["state"].get("quota")
    if quota is None:
        return
    settings = request.app.state.settings
    fn = refund_credits if refund else spend_credits
    done: list[tuple[str, int]] = []
    try:
        for operation, count in costs.items():
            await run_in_threadpool(
                fn,
                request.app.state.counters,
                principal.limit_key,
                quota,
                settings.quota_period_s,
                operation,
                count,
            )
            done.append((operation, count))
    except FaceplaneError:
        for operation, count in done:
            await run_in_threadpool(
                refund_credits,
                request.app.state.counters,
                principal.limit_key,
                quota,
                settings.quota_period_s,
                operation,
                count,
            )
        raise


async def run_billed(
    request: Request,
    caller: Principal,
    name: str,
    images: dict[str, ImageSource],
    options: dict[str, Any],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Charge one `name`, run it on the inference pool, and refund it if it fails (or if
    `check` refuses its result): the one billed path of every synchronous route."""
    app = request.app
    await charge(request, caller, {name: 1})
    try:
        result = await app.state.blocking.run(
            run_operation, app.state.services, name, images, options, caller.company_id
        )
        if check is not None:
            check(result.body)
    except FaceplaneError:
        await charge(request, caller, {name: 1}, refund=True)
        raise
    return dict(result.body)
