"""Who is calling: API keys, access tokens and signed requests; roles; the rate limit."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.limits import hit_rate_limit

# Headers of a natively signed request (SIGN_DATA over method, path, query, timestamp, nonce,
# body).
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
    settings = rt.settings
    if settings.auth_disabled:
        return app.state.open_principal
    # Oz's pages spell its header both ways.
    token = request.headers.get("x-forensic-access-token") or request.headers.get(
        "x-forensics-access-token"
    )
    bearer = _bearer(request)
    if token or (bearer and bearer.startswith(accounts.TOKEN_PREFIX)):
        credential = token or bearer or ""
        return await rt.run_io(accounts.authenticate_token, rt, credential)
    key = bearer or request.headers.get("x-api-key")
    if key:
        return await rt.run_io(accounts.authenticate_key, rt, key)
    signed = [request.headers.get(h) for h in SIGN_HEADERS]
    if any(signed):
        if not all(signed):
            raise FaceplaneError(
                Err.PARAMETERS_EMPTY,
                "A signed request needs all of " + ", ".join(h.title() for h in SIGN_HEADERS) + ".",
            )
        app_id, ts, nonce, sig = (v or "" for v in signed)
        body = await request.body()
        # The raw query string as sent: a changed query is a different request.
        query = request.scope.get("query_string", b"").decode("latin-1")
        message = accounts.signed_message(request.method, request.url.path, ts, nonce, body, query)
        return await rt.run_io(
            accounts.authenticate_signature,
            rt,
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
    """Count the request against the caller's limits (an app's own, and the caps an admin set
    on the user owning it); the headers, of the tightest, go on every answer."""
    rt = request.app.state.rt
    settings = rt.settings
    states = []
    for key, limit in principal.rate_buckets(settings.default_rate_limit):
        try:
            states.append(
                await rt.run_io(hit_rate_limit, rt.counters, key, limit, settings.rate_window_s)
            )
        except FaceplaneError as exc:
            request.scope["state"]["ratelimit"] = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(exc.details.get("retry_after_s", 1)),
            }
            raise
    tightest = min(states, key=lambda st: (st.remaining, st.limit))
    request.scope["state"]["ratelimit"] = tightest.headers()


async def require_caller(request: Request) -> Principal:
    """Any authenticated caller, counted against its rate limit."""
    principal = await authenticate(request)
    request.scope["state"]["principal"] = principal
    if principal.via != "disabled":
        await apply_rate_limit(request, principal)
    return principal


class Capability(StrEnum):
    """What a caller may do; README.md's roles table lists them (a test reads that table)."""

    READ = "read"  # read the company's collections, subjects, faces, tasks, models
    ANALYSE = "analyse"  # detect, compare, crop, search, blacklist check: sync and as tasks
    CHANGE_DATA = "change_data"  # create, change, delete collections, subjects, faces; enroll
    OWN_APPS = "own_apps"  # create apps and rotate their keys (needs a user login)
    ADMINISTER = "administer"  # users, every app's status and limits, the audit log


# Who may do what: users by role, and app keys (which act for their company, as a client
# does, but are no user: apps are managed by users who log in).
CAPABILITIES: dict[str, frozenset[Capability]] = {
    "admin": frozenset(Capability),
    "operator": frozenset({Capability.READ, Capability.ANALYSE}),
    "client": frozenset(
        {Capability.READ, Capability.ANALYSE, Capability.CHANGE_DATA, Capability.OWN_APPS}
    ),
    "app": frozenset({Capability.READ, Capability.ANALYSE, Capability.CHANGE_DATA}),
}

# Operations that only read: anyone who may analyse runs them, synchronously or as tasks.
# Any other operation (enroll, and whatever is added later until it is listed here) changes
# data, and needs CHANGE_DATA.
ANALYSES = frozenset({"detect", "compare", "crop", "search", "blacklist_check"})


def principal_kind(principal: Principal) -> str:
    """The row of CAPABILITIES that applies: `app` for an app's key or signature, else the role."""
    return "app" if principal.app_id else principal.role


def allows(principal: Principal, capability: Capability) -> bool:
    """Whether the caller has `capability`."""
    return capability in CAPABILITIES.get(principal_kind(principal), frozenset())


def require(principal: Principal, capability: Capability) -> Principal:
    """The caller, or AUTH_FORBIDDEN when it lacks `capability`."""
    if not allows(principal, capability):
        raise FaceplaneError(
            Err.AUTH_FORBIDDEN,
            _REFUSALS[capability],
            role=principal.role,
            capability=capability.value,
        )
    return principal


_REFUSALS = {
    Capability.READ: "This caller may not read the company's data.",
    Capability.ANALYSE: "This caller may not run analyses.",
    Capability.CHANGE_DATA: "This role may read and analyse but not change data.",
    Capability.OWN_APPS: "Log in as an admin or client user to manage apps.",
    Capability.ADMINISTER: "Only an admin may do this.",
}


def operation_capability(operation: str) -> Capability:
    """What running `operation` (synchronously or as a task) needs."""
    return Capability.ANALYSE if operation in ANALYSES else Capability.CHANGE_DATA


def authorize_operations(principal: Principal, operations: list[str]) -> None:
    """AUTH_FORBIDDEN unless the caller may run every one of `operations`."""
    for capability in sorted({operation_capability(op) for op in operations}):
        require(principal, capability)


async def require_analyst(principal: Annotated[Principal, Depends(require_caller)]) -> Principal:
    """A caller allowed to run analyses and manage the company's tasks."""
    return require(principal, Capability.ANALYSE)


async def require_writer(principal: Annotated[Principal, Depends(require_caller)]) -> Principal:
    """A caller allowed to change data: admins, clients and app keys (operators only read and
    analyse)."""
    return require(principal, Capability.CHANGE_DATA)


async def require_admin(principal: Annotated[Principal, Depends(require_caller)]) -> Principal:
    """A company admin (logged in as a user)."""
    return require(principal, Capability.ADMINISTER)


CallerDep = Annotated[Principal, Depends(require_caller)]
AnalystDep = Annotated[Principal, Depends(require_analyst)]
WriterDep = Annotated[Principal, Depends(require_writer)]
AdminDep = Annotated[Principal, Depends(require_admin)]
