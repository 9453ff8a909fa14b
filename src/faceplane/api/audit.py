"""ASGI middleware writing an audit entry for every change a caller makes."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceplane.runtime import Runtime
from faceplane.services.audit import record

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditLog:
    """After each authenticated POST, PUT, PATCH or DELETE: actor, action, path, status, IP."""

    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, note its status, then record it."""
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            state = scope.get("state", {})
            principal = state.get("principal")
            if principal is not None:
                # A body past the cap is answered 413 by the outer middleware, whatever the
                # app made of it.
                answered = 413 if state.get("body_too_large") else status[0] if status else None
                route = scope.get("route")
                action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
                client = scope.get("client")
                await self.rt.run_io(
                    record,
                    self.rt,
                    principal.company_id,
                    principal.actor,
                    action,
                    scope["path"],
                    answered,
                    # The peer, or the client a trusted proxy named (`faceplane serve` rewrites
                    # it only for FACEPLANE_TRUSTED_PROXIES): never a header anyone may send.
                    client[0] if client else None,
                )
