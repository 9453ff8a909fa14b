"""Turn every failure — ours, the framework's, or a bug — into one catalogue error body."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceplane.api.dispatch import renderer_for
from faceplane.errors import Err, FaceplaneError

log = logging.getLogger("faceplane.api")
access_log = logging.getLogger("faceplane.access")

_HTTP_TO_ERR = {
    404: Err.ROUTE_NOT_FOUND,
    405: Err.METHOD_NOT_ALLOWED,
    413: Err.PAYLOAD_TOO_LARGE,
    400: Err.INVALID_ARGUMENT,
}


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def error_response(request_id: str, exc: FaceplaneError, path: str = "/") -> Response:
    """Render `exc` in the dialect of the route family of `path`, with the request id."""
    response = renderer_for(path)(request_id, exc)
    response.headers["X-Request-Id"] = request_id
    if "retry_after_s" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after_s"])
    return response


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or new_request_id()


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in errors
    ]


def install_handlers(app: FastAPI) -> None:
    """Register the exception handlers on `app`."""

    @app.exception_handler(FaceplaneError)
    async def _faceplane(request: Request, exc: FaceplaneError) -> Response:
        return error_response(_request_id(request), exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
        err = FaceplaneError(
            Err.INVALID_ARGUMENT,
            "The request is invalid.",
            errors=_validation_details(list(exc.errors())),
        )
        return error_response(_request_id(request), err, request.url.path)

    @app.exception_handler(ValidationError)
    async def _validation(request: Request, exc: ValidationError) -> Response:
        details = _validation_details(list(exc.errors()))
        fields = ", ".join(d["field"] for d in details)
        err = FaceplaneError(Err.INVALID_ARGUMENT, f"Invalid value for: {fields}.", errors=details)
        return error_response(_request_id(request), err, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_TO_ERR.get(exc.status_code, Err.INVALID_ARGUMENT)
        message = code.message
        if code is Err.ROUTE_NOT_FOUND:
            message = f"No route {request.method} {request.url.path}."
        elif code is Err.METHOD_NOT_ALLOWED:
            message = f"{request.method} is not allowed on {request.url.path}."
        return error_response(_request_id(request), FaceplaneError(code, message), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        rid = _request_id(request)
        log.exception("unhandled error in request %s", rid)
        return error_response(rid, FaceplaneError(Err.INTERNAL), request.url.path)


class RequestContext:
    """ASGI middleware: a request id on every answer, and the body-size cap."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag the request, refuse oversized bodies early, add X-Request-Id on the way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        too_big = FaceplaneError(
            Err.PAYLOAD_TOO_LARGE,
            f"The request body exceeds {self.max_body_bytes} bytes.",
            max_bytes=self.max_body_bytes,
        )
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await error_response(rid, too_big, scope["path"])(scope, receive, send)
            return

        received = 0
        started = False
        status_code = 0
        t0 = time.perf_counter()

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise FaceplaneError(
                        Err.PAYLOAD_TOO_LARGE,
                        too_big.message,
                        max_bytes=self.max_body_bytes,
                    )
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal started, status_code
            if message["type"] == "http.response.start":
                started = True
                status_code = message["status"]
                raw = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in raw):
                    raw.append((b"x-request-id", rid.encode()))
                # The rate-limit state of this caller, on every answer (seed 003).
                for name, value in scope["state"].get("ratelimit", {}).items():
                    raw.append((name.lower().encode(), value.encode()))
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        finally:
            access_log.info(
                "%s %s %s %.1fms %s",
                scope["method"],
                scope["path"],
                status_code,
                (time.perf_counter() - t0) * 1000,
                rid,
            )
