"""A small real HTTP server on loopback: the demo's callback target and the tests' stand-in."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from devstack.process import free_port


@dataclass
class Call:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int | None = None  # what the server answered (None: connection dropped)
    raw: bytes = b""  # the body as sent, which signatures cover
    received_at: float = 0.0  # wall clock (Unix seconds), comparable with the sender's


@dataclass
class Reply:
    """A scripted response: status, extra headers, and an optional delay before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = "{}"
    reset: bool = False  # drop the connection without answering


class CallbackServer:
    """Answers POSTs from a script (the last reply repeats) and records every call."""

    # Shown every call of every server before it is answered: the test suite verifies the
    # signatures of everything AWFDRS sends with it.
    observer: ClassVar[Callable[[Call], None] | None] = None

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script = list(script or [Reply()])
        self.calls: list[Call] = []
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.on_call: Callable[[Call], Awaitable[None]] | None = None

    @property
    def url(self) -> str:
        """Return the callback URL."""
        return f"http://127.0.0.1:{self.port}/callback"

    async def __aenter__(self) -> CallbackServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        # Keep-alive connections would otherwise keep their handlers waiting forever.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def keys(self) -> list[str]:
        """Return the Idempotency-Key of every call, in order."""
        return [call.headers.get("idempotency-key", "") for call in self.calls]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                _, path, _ = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                parsed = json.loads(raw) if raw else {}
                call = Call(
                    path, headers, parsed, time.monotonic(), raw=raw, received_at=time.time()
                )
                self.calls.append(call)
                if CallbackServer.observer is not None:
                    CallbackServer.observer(call)
                reply = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
                call.status = None if reply.reset else reply.status
                if self.on_call is not None:
                    await self.on_call(call)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                if reply.reset:
                    writer.transport.abort()
                    return
                body = reply.body.encode()
                head = [
                    f"HTTP/1.1 {reply.status} X",
                    f"Content-Length: {len(body)}",
                    "Content-Type: application/json",
                ]
                head += [f"{k}: {v}" for k, v in reply.headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            writer.close()
