"""A global cap on request bodies, enforced while they stream, before routing and auth."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.routes.events import BATCH_BODY_FACTOR
from settings import Settings

log = logging.getLogger("awfdrs.limits")


def request_body_limit(settings: Settings) -> int:
    """Return the global body limit: the setting, or else the batch intakes' own limit."""
    return settings.max_request_bytes or settings.max_body_bytes * BATCH_BODY_FACTOR


class _BodyTooLarge(Exception):
    """Raised into the app once the limit is crossed, so that it stops reading."""


def declared_length(scope: Scope) -> int | None:
    """Return the request's declared Content-Length, if it has a valid one."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            declared = bytes(value).decode("latin-1").strip()
            return int(declared) if declared.isdigit() else None
    return None


async def refuse_too_large(send: Send, detail: str) -> None:
    """Answer 413 and close the connection: the rest of the body will never be read."""
    response = problem(413, "Payload too large", detail)
    # The rest of the body is never read: closing stops a client that keeps sending it
    # (a chunked body may be endless) instead of the server discarding it forever.
    headers = [*response.raw_headers, (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class StreamGuard:
    """The receive and send of one request: counts body bytes, answers 413 at the limit."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._received = 0
        self._started = False
        self.refused = False

    async def receive(self) -> Message:
        """Pass a message on, or answer 413 and abort the app once the body is too large."""
        if self.refused:
            raise _BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                if not self._started:  # a response already under way can only be cut off
                    self.refused = True
                    await refuse_too_large(
                        self._send, f"the body exceeds the limit of {self._limit} bytes"
                    )
                raise _BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        """Pass the app's response on, unless the 413 has already answered the request."""
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 problem, without buffering them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await refuse_too_large(
                send, f"the body is {declared} bytes; the limit is {self.max_bytes}"
            )
            return
        guard = StreamGuard(receive, send, self.max_bytes)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception as exc:
            if not guard.refused:
                raise
            # Whatever the aborted read raised (our signal, or a wrapper of it), the 413 is out.
            log.debug("request aborted after its 413: %s", type(exc).__name__)
