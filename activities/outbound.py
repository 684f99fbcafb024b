"""Signed, bounded outbound HTTP to vetted addresses, shared by callbacks and escalations."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from temporalio import activity

from rules.egress import VettedTarget

log = logging.getLogger("awfdrs.outbound")
MAX_RESPONSE_BYTES = 64 * 1024
HEARTBEAT_EVERY_S = 1.0
# A `Retry-After` beyond a day does not describe a transient overload: it is a misconfigured
# server, a clock far off, or a date in the wrong century. Ignoring it leaves the wait to the
# retry policy's own backoff instead of parking the incident for days.
MAX_RETRY_AFTER_S = 24 * 3600.0
# delta-seconds is digits only; a decimal fraction is tolerated, signs and exponents are not.
_DELTA_SECONDS = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")


@dataclass(frozen=True)
class HttpResult:
    """What came back, or why nothing did."""

    status: int | None
    body: str
    error: str | None = None
    retry_after_s: float | None = None


def canonical_json(document: dict[str, Any]) -> bytes:
    """Serialise deterministically so the signature is reproducible by the receiver."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` (delta-seconds or HTTP-date); None when unusable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds: float | None = float(value)
    else:
        seconds = _seconds_until(value, now or datetime.now(UTC))
    if seconds is None or not math.isfinite(seconds) or seconds > MAX_RETRY_AFTER_S:
        return None
    return seconds


def _seconds_until(http_date: str, now: datetime) -> float | None:
    # IMF-fixdate and the obsolete RFC 850 and asctime forms; measured against this worker's
    # clock, so skew between the two hosts shifts the wait by the same amount.
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" carry no zone; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


_BEATING: ContextVar[asyncio.Task[None] | None] = ContextVar("awfdrs_beating", default=None)


@asynccontextmanager
async def heartbeating(every_s: float = HEARTBEAT_EVERY_S) -> AsyncIterator[None]:
    """Heartbeat every `every_s` until `post_signed` has its answer (nothing outside an activity).

    From the activity's first moment, not only while its request is in flight: reads before
    the request that queue behind a busy pool or event loop must not outlast the heartbeat
    timeout, or Temporal gives up on an attempt that is still running and may yet call out.
    """
    if not activity.in_activity():
        yield
        return
    beat = asyncio.create_task(_beat(every_s))
    token = _BEATING.set(beat)
    try:
        yield
    finally:
        _BEATING.reset(token)
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)


def _stop_heartbeating() -> None:
    """Stop this activity's heartbeats: the answer is in, so a cancellation comes too late."""
    # A kill delivered through a later heartbeat would cut short the statements that record
    # the answer: the call was made, and its row must say how it ended, not "killed".
    if (beat := _BEATING.get()) is not None:
        beat.cancel()


async def _beat(every_s: float) -> None:
    while True:
        try:
            activity.heartbeat()
        except Exception:  # the attempt would then time out, unexplained
            log.warning("activity heartbeat failed", exc_info=True)
        await asyncio.sleep(every_s)


def pinned_request_options(target: VettedTarget, headers: dict[str, str]) -> dict[str, Any]:
    """The URL, headers and extensions that make httpx dial the vetted address, not DNS."""
    # The Host header and the TLS name stay the URL's own, so virtual hosting and certificate
    # checks work as if httpx had resolved the name. `Connection: close`: a pooled connection
    # is keyed by address alone and would carry another host's request over this host's TLS.
    pinned = {**headers, "Host": target.host_header, "Connection": "close"}
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
    return {"url": target.request_url, "headers": pinned, "extensions": extensions}


async def post_signed(
    http: httpx.AsyncClient,
    target: VettedTarget,
    body: bytes,
    *,
    headers: dict[str, str],
    timeout_s: float,
) -> HttpResult:
    """POST to the vetted address without following redirects, reading at most 64 KiB, all
    within `timeout_s`.

    Never raises but for cancellation: a request that cannot be built or sent is a result
    whose `error` says why. Activities run it `heartbeating()`, so a kill reaches it while it
    waits; once the answer is in, heartbeats stop (a kill is then too late).
    """
    try:
        # httpx's timeout bounds each step (connect, write, every read), not the whole call:
        # a server that drips its answer would otherwise outlast the activity's own timeout
        # and end the attempt without an outcome, never counted against its vendor.
        async with (
            asyncio.timeout(timeout_s),
            http.stream(
                "POST",
                content=body,
                timeout=timeout_s,
                follow_redirects=False,
                **pinned_request_options(target, headers),
            ) as response,
        ):
            result = HttpResult(
                response.status_code,
                await _capped_text(response),
                retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            )
    except (httpx.TimeoutException, TimeoutError):
        result = HttpResult(None, "", error=f"timed out after {timeout_s:g}s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        result = HttpResult(None, "", error=_describe(exc))
    except Exception as exc:
        # Below httpx, a URL that cannot be called also surfaces as anyio's exception groups
        # (port 99999: OverflowError) or codec errors (a non-ASCII header): for the tenant it
        # is the same failed call, never a failed activity. Cancellation is not an Exception.
        log.warning("outbound POST failed outside httpx's errors", exc_info=True)
        result = HttpResult(None, "", error=_describe(exc))
    _stop_heartbeating()
    return result


async def _capped_text(response: httpx.Response) -> str:
    """The first 64 KiB of the body: a huge or endless answer costs no more than that."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk[: MAX_RESPONSE_BYTES - size])
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks).decode(errors="replace")


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]
