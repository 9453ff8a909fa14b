"""Dependencies: the app's runtime (and what it holds), the task hub and the request id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.tasks.hub import TaskHub


def get_runtime(request: Request) -> Runtime:
    """The app's runtime."""
    return request.app.state.rt


def get_request_id(request: Request) -> str:
    """The id given to this request by the middleware."""
    return request.state.request_id


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return get_runtime(request).settings


def get_hub(request: Request) -> TaskHub:
    """The app's task hub (executor, waiters)."""
    return request.app.state.hub


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TaskHubDep = Annotated[TaskHub, Depends(get_hub)]


def client_address(request: Request) -> str | None:
    """The client's address as the audit log has it: the peer, or the client a trusted proxy
    named (`faceplane serve` believes X-Forwarded-For only from FACEPLANE_TRUSTED_PROXIES)."""
    return request.client.host if request.client else None
