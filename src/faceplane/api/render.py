"""Faceplane's own JSON shapes for answers and errors."""

from __future__ import annotations

from typing import Any

from faceplane.errors import FaceplaneError


def render_error(request_id: str, exc: FaceplaneError) -> tuple[int, dict[str, Any]]:
    """Return (HTTP status, body) for an error in the native dialect."""
    return exc.err.http, {
        "request_id": request_id,
        "error": {"code": exc.err.name, "message": exc.message, "details": exc.details},
    }


def render_result(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Wrap a service result with its request id."""
    return {"request_id": request_id, **result}
