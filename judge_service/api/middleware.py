"""Pure ASGI middleware (no BaseHTTPMiddleware, so disconnects and streaming stay intact)."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from judge_service.errors import PayloadTooLargeError
from judge_service.metrics import ServiceMetrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class BodyTooLarge(PayloadTooLargeError):
    """Raised inside ``receive`` once the body passes the limit. The app's JudgeError handler
    answers 413; if the exception escapes the app instead, the middleware answers it."""


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from Content-Length, else while streaming.
    ``path_max_bytes`` gives some paths a limit of their own (``/v1/jobs`` takes whole
    evaluations)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_max_bytes: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.path_max_bytes = path_max_bytes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_max_bytes.get(scope.get("path", ""), self.default_max_bytes)
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > max_bytes:
                    await self._reject(send, f"request body of {declared} bytes is over the limit of {max_bytes} bytes (JUDGE_MAX_REQUEST_BYTES)")
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(
                        f"request body is over the limit of {max_bytes} bytes "
                        "(JUDGE_MAX_REQUEST_BYTES)"
                    )
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, f"request body is over the limit of {max_bytes} bytes (JUDGE_MAX_REQUEST_BYTES)")

    @staticmethod
    async def _reject(send: Send, message: str) -> None:
        await send_json_error(send, 413, "payload_too_large", message, [(b"connection", b"close"), *SECURITY_HEADERS])


async def send_json_error(
    send: Send, status: int, error_type: str, message: str, extra_headers: list[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the service's error body ``{"error": {"type", "message"}}`` from inside an
    ASGI middleware (where the app's error table cannot be reached)."""
    body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *extra_headers],
    })
    await send({"type": "http.response.body", "body": body})


class ObservabilityMiddleware:
    """Security headers on every response, and a request counter by route and status."""

    def __init__(self, app: ASGIApp, metrics_of: Callable[[], ServiceMetrics | None], routes: set[str]) -> None:
        self.app = app
        self.metrics_of = metrics_of
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
                metrics = self.metrics_of()
                if metrics is not None:
                    metrics.requests.labels(route=route, status=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_with_headers)
