"""Dependencies: the app-scoped services, the blocking pool and the request id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from faceplane.api.blocking import BlockingPool
from faceplane.services.context import Services
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.tasks.hub import TaskHub


def get_services(request: Request) -> Services:
    """The app's services."""
    return request.app.state.services


def get_blocking(request: Request) -> BlockingPool:
    """The app's bounded pool for blocking work."""
    return request.app.state.blocking


def get_request_id(request: Request) -> str:
    """The id given to this request by the middleware."""
    return request.state.request_id


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_store(request: Request) -> Store:
    """The app's database and blobs."""
    return request.app.state.store


def get_hub(request: Request) -> TaskHub:
    """The app's task hub (executor, waiters)."""
    return request.app.state.hub


ServicesDep = Annotated[Services, Depends(get_services)]
BlockingDep = Annotated[BlockingPool, Depends(get_blocking)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TaskHubDep = Annotated[TaskHub, Depends(get_hub)]
