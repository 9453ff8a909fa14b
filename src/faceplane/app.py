"""create_app(settings): the one place where the server is wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import cv2
from fastapi import FastAPI

from faceplane import __version__
from faceplane.api.blocking import BlockingPool
from faceplane.api.handlers import RequestContext, install_handlers
from faceplane.api.routes import collections, faces, meta, tasks
from faceplane.services.context import Services
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.tasks.hub import TaskHub

log = logging.getLogger("faceplane")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app with its services, routes, handlers and middleware."""
    settings = settings or Settings()
    # Parallelism comes from the bounded inference pool (one job per core); OpenCV's own
    # thread pool on top of it would oversubscribe the cores.
    cv2.setNumThreads(1)
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
        await app.state.hub.start()
        yield
        await app.state.hub.stop()
        store.indexes.save_all()
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
    app.state.store = store = services.store = Store.open(settings)
    app.state.hub = TaskHub(services, store)
    app.include_router(faces.router)
    app.include_router(tasks.router)
    app.include_router(collections.router)
    app.include_router(meta.router)
    install_handlers(app)
    app.add_middleware(RequestContext, max_body_bytes=int(settings.max_body_mb * 1024 * 1024))
    return app
