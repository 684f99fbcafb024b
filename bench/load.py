"""A minimal closed-loop HTTP/1.1 load generator: pre-encoded requests, keep-alive clients.

It costs far less CPU than the servers it drives, so what it measures is theirs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devstack.progress import following, progress_board


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0–1) of `values`, in milliseconds rounded to 0.01."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index] * 1000, 2)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def raw_requests(url: str, headers: dict[str, str], bodies: list[bytes]) -> Iterator[bytes]:
    """Each body as a complete HTTP/1.1 POST to `url`, encoded once, ahead of the clock."""
    parts = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return iter(
        (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    )


@dataclass
class LoadResult:
    """What the clients of one `drive` saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def drive(
    url: str | list[str],
    bodies: list[bytes],
    *,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
    events_per_request: int = 1,
) -> dict[str, Any]:
    """Closed loop: `concurrency` keep-alive connections POST pre-encoded bodies for `seconds`.

    A minimal HTTP/1.1 client, so the load generator costs far less CPU than the servers.
    Given several URLs (servers of the same path), connection i goes to URL i modulo their
    number, as a connection-balancing proxy would spread them.
    """
    urls = [url] if isinstance(url, str) else url
    targets = [urlsplit(each) for each in urls]
    parts = targets[0]
    requests = raw_requests(urls[0], headers, bodies)
    seen = LoadResult()
    deadline = time.perf_counter() + seconds

    async def client(target: int) -> None:
        where = targets[target % len(targets)]
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        try:
            while time.perf_counter() < deadline and (request := next(requests, None)):
                started = time.perf_counter()
                if await _exchange(reader, writer, request) >= 300:
                    seen.errors += 1
                seen.latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    def done() -> tuple[float, str]:
        """How far the run is: the deadline or the bodies, whichever comes first."""
        left = max(0.0, deadline - time.perf_counter())
        part = max(1 - left / seconds, len(seen.latencies) / max(1, len(bodies)))
        return min(100.0, part * 100), f"{len(seen.latencies):,} requests, {seen.errors} errors"

    started = time.perf_counter()
    with progress_board(sys.stderr) as board:
        async with following(board.add(parts.path, total=100), done):
            await asyncio.gather(*(client(number) for number in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(seen.latencies),
        "errors": seen.errors,
        "events_per_s": round(len(seen.latencies) * events_per_request / elapsed, 1),
        "p50_ms": percentile(seen.latencies, 0.5),
        "p99_ms": percentile(seen.latencies, 0.99),
    }
