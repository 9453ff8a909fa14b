"""create_app(settings): the one place where the server is wired together."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from faceplane import __version__
from faceplane.api.audit import AuditLog
from faceplane.api.handlers import RequestContext, install_handlers
from faceplane.api.routes import admin, collections, faces, meta, tasks
from faceplane.compat.ailab import routes as compat_ailab
from faceplane.compat.linkface import routes as compat_linkface
from faceplane.compat.oz import routes as compat_oz
from faceplane.compat.photo import routes as compat_photo
from faceplane.runtime import Runtime
from faceplane.services.accounts import Principal, bootstrap, first_company_id
from faceplane.settings import Settings
from faceplane.tasks.hub import TaskHub

log = logging.getLogger("faceplane")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app with its runtime, routes, handlers and middleware."""
    settings = settings or Settings()
    rt = Runtime.open(settings)
    hub = TaskHub(rt)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = [m["name"] for m in rt.pool.status() if not m["present"]]
        if missing:
            log.warning(
                "models missing (features needing them answer MODEL_UNAVAILABLE): %s; "
                "run `faceplane models install`",
                ", ".join(missing),
            )
        await hub.start()
        yield
        await hub.stop()
        rt.close()

    app = FastAPI(
        title="Faceplane",
        version=__version__,
        description="Self-hosted face detection, comparison and analysis.",
        lifespan=lifespan,
    )
    # The only app-scoped objects; handlers reach them through `api.deps`.
    app.state.rt = rt
    app.state.hub = hub
    _first_run(rt)
    if settings.auth_disabled:
        log.warning(
            "!!! AUTHENTICATION IS DISABLED (FACEPLANE_AUTH_DISABLED=true): every request acts "
            "as the admin of the first company. Never expose this server. !!!"
        )
        app.state.open_principal = _open_principal(rt)
    app.include_router(admin.router)
    app.include_router(faces.router)
    app.include_router(tasks.router)
    app.include_router(collections.router)
    app.include_router(meta.router)
    app.include_router(compat_photo.router)
    app.include_router(compat_linkface.router)
    app.include_router(compat_ailab.router)
    app.include_router(compat_oz.router)
    install_handlers(app)
    app.add_middleware(AuditLog, rt=rt)
    app.add_middleware(
        RequestContext,
        max_body_bytes=int(settings.max_body_mb * 1024 * 1024),
        drain_max_bytes=int(settings.oversize_drain_mb * 1024 * 1024),
        drain_max_s=settings.oversize_drain_s,
    )
    return app


def _first_run(rt: Runtime) -> None:
    """On an empty database: create a company, an admin and an app, and print them once."""
    created = bootstrap(rt, rt.settings.default_rate_limit)
    if created is None:
        return
    banner = "\n".join(
        [
            "",
            "=" * 72,
            "Faceplane first run: created company 'default', its admin and an app.",
            f"  admin login : {created['admin_email']} / {created['admin_password']}",
            f"  APP_ID      : {created['app_id']}",
            f"  KEY         : {created['key']}",
            "These secrets are shown this once. Use the KEY as `Authorization: Bearer <KEY>`.",
            "=" * 72,
            "",
        ]
    )
    print(banner, file=sys.stderr, flush=True)


def _open_principal(rt: Runtime) -> Principal:
    """The caller every request becomes when authentication is disabled."""
    return Principal(company_id=first_company_id(rt), role="admin", via="disabled")
