"""Logins, the caller's own identity and apps, and company administration (admins)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from faceplane.api.auth import AdminDep, CallerDep
from faceplane.api.deps import RequestIdDep, RuntimeDep, SettingsDep, StoreDep
from faceplane.api.render import render_result
from faceplane.engine.fetch import check_url
from faceplane.errors import Err, FaceplaneError
from faceplane.services import accounts, audit
from faceplane.services.accounts import Principal

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


class AppIn(BaseModel):
    """A new app."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    rate_limit: int | None = Field(None, ge=1, description="Requests per rate window.")
    quota: int | None = Field(None, ge=0, description="Credits per quota period.")
    expires_at: float | None = Field(None, description="Unix time after which it is refused.")


class AppPatch(BaseModel):
    """Changes to an app."""

    model_config = ConfigDict(extra="forbid")
    webhook_url: str | None = Field(None, description="Default webhook of the app's tasks.")
    webhook_secret: str | None = Field(None, min_length=16, max_length=128)
    name: str | None = Field(None, min_length=1, max_length=200)
    status: str | None = Field(None, pattern="^(active|deactivated)$")
    rate_limit: int | None = Field(None, ge=1)
    quota: int | None = Field(None, ge=0)
    expires_at: float | None = None

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
def login(
    body: LoginIn, store: StoreDep, s: SettingsDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """An access token (short-lived) and a refresh token."""
    out = accounts.login(
        store, body.email, body.password, s.access_token_ttl_s, s.refresh_token_ttl_s
    )
    return render_result(request_id, out)


@router.post("/auth/refresh", summary="Trade a refresh token for a new pair")
def refresh(
    body: RefreshIn, store: StoreDep, s: SettingsDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """The refresh token is spent."""
    out = accounts.refresh_tokens(
        store, body.refresh_token, s.access_token_ttl_s, s.refresh_token_ttl_s
    )
    return render_result(request_id, out)


@router.get("/me", summary="Who the credentials belong to")
def me(caller: CallerDep, request_id: RequestIdDep) -> dict[str, Any]:
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


@router.get("/apps", summary="Apps: an admin's whole company, a client's own")
def list_my_apps(caller: CallerDep, store: StoreDep, request_id: RequestIdDep) -> dict[str, Any]:
    """Without keys."""
    user = None if caller.role in ("admin", "operator") else _need_user(caller)
    return render_result(request_id, {"apps": accounts.list_apps(store, caller.company_id, user)})


@router.post("/apps", status_code=201, summary="Create an app; its KEY is shown once")
def create_app(
    body: AppIn, caller: CallerDep, store: StoreDep, s: SettingsDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """Admins and clients (logged in) create apps; operators do not."""
    user = _need_user(caller)
    if caller.role == "operator":
        raise FaceplaneError(Err.AUTH_FORBIDDEN, "Operators do not create apps.")
    app, key = accounts.create_app(
        store,
        caller.company_id,
        body.name,
        body.rate_limit or s.default_rate_limit,
        body.quota,
        user,
        body.expires_at,
    )
    return render_result(request_id, {**app, "key": key})


def _own_app(store: StoreDep, caller: Principal, app_id: str) -> None:
    row = accounts.load_app(store, app_id, caller.company_id)
    if caller.role != "admin" and row["user_id"] != _need_user(caller):
        # Another user's app looks like no app at all: ids leak nothing.
        raise FaceplaneError(Err.RESOURCE_NOT_FOUND, "There is no app with this APP_ID.")


@router.post("/apps/{app_id}/rotate", summary="Give an app a new KEY (shown once)")
def rotate(
    app_id: str, caller: CallerDep, store: StoreDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """The old key stops working at once."""
    _own_app(store, caller, app_id)
    app, key = accounts.rotate_key(store, app_id, caller.company_id)
    return render_result(request_id, {**app, "key": key})


@router.patch("/apps/{app_id}", summary="Deactivate, reactivate, or set limits")
def patch_app(
    app_id: str,
    body: AppPatch,
    caller: AdminDep,
    store: StoreDep,
    rt: RuntimeDep,
    request_id: RequestIdDep,
) -> dict[str, Any]:
    """Admins only: status, expiry, rate limit, quota, default webhook."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("webhook_url"):
        check_url(changes["webhook_url"], rt.fetch)  # the SSRF rules of every URL
        changes.setdefault("webhook_secret", secrets.token_hex(16))
    out = accounts.update_app(store, app_id, changes, caller.company_id)
    if "webhook_secret" in changes:
        out["webhook_secret"] = changes["webhook_secret"]  # shown when set
    return render_result(request_id, out)


@router.get("/admin/users", summary="The company's users")
def list_users(caller: AdminDep, store: StoreDep, request_id: RequestIdDep) -> dict[str, Any]:
    """Without password hashes."""
    return render_result(request_id, {"users": accounts.list_users(store, caller.company_id)})


@router.post("/admin/users", status_code=201, summary="Add a user to the company")
def create_user(
    body: UserIn, caller: AdminDep, store: StoreDep, request_id: RequestIdDep
) -> dict[str, Any]:
    """With a role: admin, operator or client."""
    out = accounts.create_user(store, caller.company_id, body.email, body.password, body.role)
    return render_result(request_id, out)


@router.get("/admin/audit", summary="The company's audit log")
def audit_log(
    caller: AdminDep,
    store: StoreDep,
    request_id: RequestIdDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(description="`next_cursor` of the last page.")] = None,
    actor: Annotated[str | None, Query(description="user:<id> or app:<id>")] = None,
) -> dict[str, Any]:
    """Newest first: when, who, what, which resource, answer status, from where."""
    return render_result(
        request_id, audit.list_entries(store, caller.company_id, limit, cursor, actor)
    )
