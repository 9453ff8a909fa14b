"""Logins, the caller's own identity and apps, and company administration (admins)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from faceplane.api.auth import AdminDep, CallerDep, Capability, require
from faceplane.api.deps import RequestIdDep, RuntimeDep, SettingsDep, client_address
from faceplane.api.render import render_result
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts, audit, logins
from faceplane.services.accounts import Principal
from faceplane.services.tasks import check_webhook_url
from faceplane.timestamps import parse_time

router = APIRouter(prefix="/v1", tags=["access"])


class LoginIn(BaseModel):
    """User credentials."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class RefreshIn(BaseModel):
    """A refresh token."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=200)


class UserIn(BaseModel):
    """A new user of the admin's company."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=10, max_length=1000)
    role: str = Field(pattern="^(admin|operator|client)$")


class UserLimits(BaseModel):
    """Caps an admin sets on a user: its token's requests and its apps' count against them."""

    model_config = ConfigDict(extra="forbid")
    rate_limit: int | None = Field(
        None, ge=1, description="Requests per rate window; null: the default."
    )
    quota: int | None = Field(None, ge=0, description="Credits per quota period; null: unlimited.")


class AppIn(BaseModel):
    """A new app."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    rate_limit: int | None = Field(None, ge=1, description="Requests per rate window (admins).")
    quota: int | None = Field(None, ge=0, description="Credits per quota period (admins).")
    expires_at: str | float | None = Field(
        None, description="ISO 8601 time (naive = UTC) after which it is refused."
    )


class AppPatch(BaseModel):
    """Changes to an app."""

    model_config = ConfigDict(extra="forbid")
    webhook_url: str | None = Field(None, description="Default webhook of the app's tasks.")
    webhook_secret: str | None = Field(None, min_length=16, max_length=128)
    name: str | None = Field(None, min_length=1, max_length=200)
    status: str | None = Field(None, pattern="^(active|deactivated)$")
    rate_limit: int | None = Field(None, ge=1)
    quota: int | None = Field(None, ge=0)
    expires_at: str | float | None = Field(None, description="ISO 8601 time (naive = UTC).")

    @field_validator("name", "status", "rate_limit")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """An app always has a name, a status and a rate limit: null is refused, not stored."""
        if value is None:
            raise ValueError("may be left out, not null")
        return value


def _need_user(caller: Principal) -> str:
    if caller.via not in ("token", "disabled") or caller.user_id is None:
        raise FaceplaneError(Err.AUTH_FORBIDDEN, "Log in as a user to manage apps.")
    return caller.user_id


@router.post("/auth/login", summary="Exchange email and password for tokens")
async def login(
    body: LoginIn, request: Request, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """An access token (short-lived) and a refresh token. Throttled per account and per
    client address: RATE_LIMIT_EXCEEDED (429, Retry-After) after repeated failures."""
    out = await logins.check_password(rt, body.email, body.password, client_address(request))
    return render_result(request_id, out)


@router.post("/auth/refresh", summary="Trade a refresh token for a new pair")
async def refresh(
    body: RefreshIn, request: Request, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """The refresh token is spent; presenting it again revokes every token of its login."""
    out = await logins.refresh(rt, body.refresh_token, client_address(request))
    return render_result(request_id, out)


@router.get("/me", summary="Who the credentials belong to")
async def me(caller: CallerDep, request_id: RequestIdDep) -> dict[str, Any]:
    """Company, role, user and app of the caller."""
    return render_result(
        request_id,
        {
            "company_id": caller.company_id,
            "role": caller.role,
            "user_id": caller.user_id,
            "app_id": caller.app_id,
            "via": caller.via,
        },
    )


@router.get("/apps", summary="Apps: an admin's or operator's whole company, a client's own")
async def list_my_apps(
    caller: CallerDep, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Without keys."""
    user = None if caller.role in ("admin", "operator") else _need_user(caller)
    apps = await rt.run_io(accounts.list_apps, rt, caller.company_id, user)
    return render_result(request_id, {"apps": apps})


@router.post("/apps", status_code=201, summary="Create an app; its KEY is shown once")
async def create_app(
    body: AppIn, caller: CallerDep, rt: RuntimeDep, s: SettingsDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Admins and clients (logged in) create apps; operators do not. Only admins set limits:
    an app made without them gets its user's caps (which also bound it at every request)."""
    require(caller, Capability.OWN_APPS)
    user = _need_user(caller)
    sent = body.model_fields_set & {"rate_limit", "quota"}
    if sent:
        require(caller, Capability.ADMINISTER)
    expires_at = None if body.expires_at is None else parse_time(body.expires_at, "expires_at")
    rate_limit = body.rate_limit if "rate_limit" in sent else caller.rate_limit
    quota = body.quota if "quota" in sent else caller.quota
    app, key = await rt.run_io(
        accounts.create_app,
        rt,
        caller.company_id,
        body.name,
        rate_limit or s.default_rate_limit,
        quota,
        user,
        expires_at,
    )
    return render_result(request_id, {**app, "key": key})


def _own_app(rt: Runtime, caller: Principal, app_id: str) -> None:
    row = accounts.load_app(rt, caller.company_id, app_id)
    if caller.role != "admin" and row["user_id"] != _need_user(caller):
        # Another user's app looks like no app at all: ids leak nothing.
        raise FaceplaneError(Err.RESOURCE_NOT_FOUND, "There is no app with this APP_ID.")


def _rotate(rt: Runtime, caller: Principal, app_id: str) -> tuple[dict[str, Any], str]:
    _own_app(rt, caller, app_id)
    return accounts.rotate_key(rt, caller.company_id, app_id)


@router.post("/apps/{app_id}/rotate", summary="Give an app a new KEY (shown once)")
async def rotate(
    app_id: str, caller: CallerDep, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """The old key stops working at once."""
    require(caller, Capability.OWN_APPS)
    app, key = await rt.run_io(_rotate, rt, caller, app_id)
    return render_result(request_id, {**app, "key": key})


@router.patch("/apps/{app_id}", summary="Deactivate, reactivate, or set limits")
async def patch_app(
    app_id: str,
    body: AppPatch,
    caller: AdminDep,
    rt: RuntimeDep,
    request_id: RequestIdDep,
) -> dict[str, Any]:
    """Admins only: status, expiry, rate limit, quota, default webhook."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("expires_at") is not None:
        changes["expires_at"] = parse_time(changes["expires_at"], "expires_at")
    if changes.get("webhook_url"):
        await rt.run_io(check_webhook_url, rt, changes["webhook_url"])
        changes.setdefault("webhook_secret", secrets.token_hex(16))
    out = await rt.run_io(accounts.update_app, rt, caller.company_id, app_id, changes)
    if "webhook_secret" in changes:
        out["webhook_secret"] = changes["webhook_secret"]  # shown when set
    return render_result(request_id, out)


@router.get("/admin/users", summary="The company's users")
async def list_users(caller: AdminDep, rt: RuntimeDep, request_id: RequestIdDep) -> dict[str, Any]:
    """Without password hashes."""
    users = await rt.run_io(accounts.list_users, rt, caller.company_id)
    return render_result(request_id, {"users": users})


@router.post("/admin/users", status_code=201, summary="Add a user to the company")
async def create_user(
    body: UserIn, caller: AdminDep, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """With a role: admin, operator or client."""
    out = await rt.run_io(
        accounts.create_user, rt, caller.company_id, body.email, body.password, body.role
    )
    return render_result(request_id, out)


@router.patch("/admin/users/{user_id}", summary="Cap a user's rate limit and quota")
async def patch_user(
    user_id: str, body: UserLimits, caller: AdminDep, rt: RuntimeDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Admins only. The caps bound the user's token and, besides each app's own limits, all
    the apps the user owns together; null lifts a cap."""
    changes = body.model_dump(exclude_unset=True)
    out = await rt.run_io(accounts.set_user_limits, rt, caller.company_id, user_id, changes)
    return render_result(request_id, out)


@router.get("/admin/audit", summary="The company's audit log")
async def audit_log(
    caller: AdminDep,
    rt: RuntimeDep,
    request_id: RequestIdDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
    actor: Annotated[str | None, Query(description="user:<id> or app:<id>")] = None,
    since: Annotated[
        str | None, Query(description="ISO 8601 time: entries at or after it (naive = UTC).")
    ] = None,
) -> dict[str, Any]:
    """Newest first: when, who, what, which resource, answer status, from where."""
    page = await rt.run_io(audit.list_entries, rt, caller.company_id, limit, cursor, actor, since)
    return render_result(request_id, page)
