"""create_app(settings): the one place where the server is wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from faceplane import __version__
from faceplane.api.blocking import BlockingPool
from faceplane.api.handlers import RequestContext, install_handlers
from faceplane.api.routes import faces, meta
from faceplane.services.context import Services
from faceplane.settings import Settings

log = logging.getLogger("faceplane")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app with its services, routes, handlers and middleware."""
    settings = settings or Settings()
    services = Services.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = [m["name"] for m in services.pool.status() if not m["present"]]
        if missing:
            log.warning(
                "models missing (features needing them answer MODEL_UNAVAILABLE): %s; "
                "run `faceplane models install`",
                ", ".join(missing),
            )
        yield
        app.state.blocking.shutdown()

    app = FastAPI(
        title="Faceplane",
        version=__version__,
        description="Self-hosted face detection, comparison and analysis.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = services
    app.state.blocking = BlockingPool(settings.inference_threads)
    app.include_router(faces.router)
    app.include_router(meta.router)
    install_handlers(app)
    app.add_middleware(RequestContext, max_body_bytes=int(settings.max_body_mb * 1024 * 1024))
    return app
