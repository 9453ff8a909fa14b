"""Turn every failure — ours, the framework's, or a bug — into one catalogue error body."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceplane.api.dispatch import renderer_for
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import NOT_JSON, parse_json

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


JSON_STATE = "json_body"
"""Key of `scope["state"]` holding a JSON body the middleware has parsed (see api.inputs)."""


def printable(text: str) -> str:
    """`text` for one log line: control and other non-printable characters escaped (`\\n`,
    `\\x1b`, `\\u2028`), so a request field can never start a forged line."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


FORM = "application/x-www-form-urlencoded"


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _Body:
    """The request body as the app reads it, counted against the cap."""

    def __init__(self, receive: Receive, max_bytes: int, state: dict[str, Any]) -> None:
        self._receive = receive
        self.max_bytes = max_bytes
        self.state = state
        self.received = 0
        self.complete = False
        self.overflowed = False
        self.disconnected = False

    async def receive(self) -> Message:
        """The next message; PAYLOAD_TOO_LARGE once the body passes the cap."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.received > self.max_bytes:
                self.overflowed = True
                self.state["body_too_large"] = True  # the audit log records the 413
                raise _too_big(self.max_bytes)
        elif message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def read(self) -> bytes | None:
        """The whole body (None when the client went away)."""
        chunks: list[bytes] = []
        while not self.complete:
            message = await self.receive()
            if self.disconnected:
                return None
            chunks.append(message.get("body", b""))
        return b"".join(chunks)

    async def drain(self, max_bytes: int, max_s: float) -> bool:
        """Read and drop the rest of the body within the bounds; True when none is left.

        A client that sends its whole body before it reads (urllib, requests) would otherwise
        meet a closed socket with unread data in it: the kernel answers that with a reset, and
        the client never reads the coded 413 waiting for it.
        """
        deadline = time.monotonic() + max_s
        budget = max_bytes
        while not self.complete and not self.disconnected:
            left = deadline - time.monotonic()
            if left <= 0 or budget < 0:
                return False
            try:
                message = await asyncio.wait_for(self._receive(), left)
            except TimeoutError:
                return False
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return False
            budget -= len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        return self.complete


def _nul(where: str) -> FaceplaneError:
    return FaceplaneError(
        Err.INVALID_ARGUMENT, f"{where} holds a NUL character (%00).", reason="nul"
    )


def _too_big(max_bytes: int) -> FaceplaneError:
    return FaceplaneError(
        Err.PAYLOAD_TOO_LARGE,
        f"The request body exceeds {max_bytes} bytes.",
        max_bytes=max_bytes,
    )


class RequestContext:
    """ASGI middleware: a request id on every answer, the body-size cap, the JSON guard and
    the access log."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        drain_max_bytes: int = 64 * 1024 * 1024,
        drain_max_s: float = 5.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.drain_max_bytes = drain_max_bytes
        self.drain_max_s = drain_max_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag the request, guard its body, add X-Request-Id on the way out, log one line."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        status_code = 0
        t0 = time.perf_counter()

        async def tagged_send(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
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
            await self._guarded(scope, receive, tagged_send, rid)
        except Exception:
            status_code = status_code or 500
            raise
        finally:
            access_log.info(
                "%s %s %s %.1fms %s",
                printable(scope["method"]),
                printable(scope["path"]),
                status_code,
                (time.perf_counter() - t0) * 1000,
                rid,
            )

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        """Run the app on a body within the cap; refuse a hostile body before any route."""
        headers = Headers(scope=scope)
        body = _Body(receive, self.max_body_bytes, scope["state"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            # Nothing read yet: a client waiting for `100 Continue` has sent nothing, and
            # draining would ask it for the whole body.
            expecting = headers.get("expect", "").lower() == "100-continue"
            await self._answer(scope, body, send, rid, _too_big(self.max_body_bytes), expecting)
            return
        # No text a client sends may hold NUL: PostgreSQL stores none, and a 500 would follow.
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await self._answer(scope, body, send, rid, _nul("The path or query string"))
            return
        app_receive: Receive = body.receive
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if (_is_json(media) or media == FORM) and declared != "0":
            try:
                raw = await body.read()
            except FaceplaneError as exc:
                await self._answer(scope, body, send, rid, exc)
                return
            if raw is None:
                return  # the client went away
            try:
                if media == FORM:
                    if b"%00" in raw:
                        raise _nul("The form")
                else:
                    scope["state"][JSON_STATE] = parse_json(raw)
            except FaceplaneError as exc:
                # Not JSON at all is the route's to answer (in its dialect, with its own
                # code); too deep, too many values or text no encoder takes: nobody's.
                if exc.details.get("reason") not in NOT_JSON:
                    await self._answer(scope, body, send, rid, exc)
                    return
            app_receive = _replay(raw, receive)

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if body.overflowed and not started:
                return  # the app's answer to a body it could not read: replaced below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, app_receive, guarded_send)
        except Exception:
            if not body.overflowed or started:
                raise
        if body.overflowed and not started:
            # Whatever the app made of the cut body (FastAPI answers 400 "error parsing the
            # body"), the answer is the coded 413.
            await self._answer(scope, body, send, rid, _too_big(self.max_body_bytes))

    async def _answer(
        self,
        scope: Scope,
        body: _Body,
        send: Send,
        rid: str,
        exc: FaceplaneError,
        expecting: bool = False,
    ) -> None:
        """Answer `exc` before the app, after draining what the client is still sending
        (bounded; nothing when it waits for `100 Continue`)."""
        drained = body.complete or (
            not expecting and await body.drain(self.drain_max_bytes, self.drain_max_s)
        )
        response = error_response(rid, exc, scope["path"])
        if not drained:
            response.headers["Connection"] = "close"

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body read already, then waits for the disconnect."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
