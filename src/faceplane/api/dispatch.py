"""Which dialect renders an error: chosen by the route family's path prefix."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse, Response

from faceplane.api import render as native
from faceplane.compat.ailab import render as ailab
from faceplane.compat.linkface import render as linkface
from faceplane.compat.oz import render as oz
from faceplane.compat.photo import render as photo
from faceplane.errors import FaceplaneError

Renderer = Callable[[str, FaceplaneError], Response]


def _native(request_id: str, exc: FaceplaneError) -> Response:
    status, body = native.render_error(request_id, exc)
    return JSONResponse(body, status_code=status)


def _photo(request_id: str, exc: FaceplaneError) -> Response:
    status, xml = photo.render_error(request_id, exc)
    return Response(xml, status_code=status, media_type="text/xml; charset=utf-8")


def _ailab(request_id: str, exc: FaceplaneError) -> Response:
    status, body = ailab.render_error(request_id, exc)
    return JSONResponse(body, status_code=status)


def _linkface(request_id: str, exc: FaceplaneError) -> Response:
    status, body = linkface.render_error(request_id, exc)
    return JSONResponse(body, status_code=status)


def _oz(request_id: str, exc: FaceplaneError) -> Response:
    status, body = oz.render_error(exc)
    return JSONResponse(body, status_code=status)


PREFIXES: tuple[tuple[str, Renderer], ...] = (
    ("/compat/photo/", _photo),
    ("/compat/ailab/", _ailab),
    ("/compat/linkface/", _linkface),
    ("/compat/oz/", _oz),
)


def renderer_for(path: str) -> Renderer:
    """The error renderer of the route family `path` belongs to (native by default)."""
    for prefix, renderer in PREFIXES:
        if path.startswith(prefix):
            return renderer
    return _native
