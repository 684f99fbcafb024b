"""Outbound HTTP: Retry-After in both forms, the allow-list, and POSTs that never raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from activities.outbound import MAX_RETRY_AFTER_S, host_allowed, parse_retry_after, post_signed
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port

NOW = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        (str(int(MAX_RETRY_AFTER_S)), MAX_RETRY_AFTER_S),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),  # IMF-fixdate
        ("Thursday, 01-Jan-26 00:00:30 GMT", 30.0),  # obsolete RFC 850
        ("Thu Jan  1 00:00:30 2026", 30.0),  # obsolete asctime, no zone: GMT
        ("Thu, 01 Jan 2026 00:00:30 -0000", 30.0),
        ("Thu, 01 Jan 2026 01:00:30 +0100", 30.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # already past: retry now
    ],
)
def test_retry_after_gives_seconds_from_now(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "-5",
        "+5",
        "1e3",
        "1_000",
        "٣",  # a non-ASCII digit float() would accept
        "9" * 400,  # float() overflows to inf
        str(int(MAX_RETRY_AFTER_S) + 1),
        "Fri, 02 Jan 2026 00:00:01 GMT",  # more than a day ahead
        "Thu, 01 Jan 9999 00:00:00 GMT",
        "Thu, 32 Jan 2026 00:00:00 GMT",
        "Thu, 01 Jan 2026 25:00:00 GMT",
        "Thu, 01 Jan 99999 00:00:00 GMT",
    ],
)
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_an_http_date_is_measured_against_the_clock() -> None:
    ahead = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    seconds = parse_retry_after(ahead)
    assert seconds is not None and 8.5 <= seconds <= 10.0


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/cb", True),
        ("https://hooks.example.com/cb", True),
        ("http://evil.example.org/cb", False),
        ("ftp://127.0.0.1/cb", False),
        ("http://[::1/cb", False),  # urlsplit raises on the unbalanced bracket
        ("http:///cb", False),
    ],
)
def test_host_allowed_never_raises(url: str, allowed: bool) -> None:
    assert host_allowed(url, ["127.0.0.1", "*.example.com"]) is allowed


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client configured like the worker's."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield http


async def _post(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[int | None, str]:
    result = await post_signed(client, url, b"{}", headers=headers, timeout_s=5)
    return result.status, result.error or ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{closed}/cb", "ConnectError"),
        ("http://127.0.0.1:99999/cb", "port must be 0-65535"),
        ("http://127.0.0.1:abc/cb", "InvalidURL"),
        ("http://[::1/cb", "InvalidURL"),
        ("ftp://127.0.0.1/cb", "UnsupportedProtocol"),
        ("http:///cb", "UnsupportedProtocol"),
    ],
)
async def test_a_url_that_cannot_be_called_is_an_error_not_an_exception(
    client: httpx.AsyncClient, url: str, reason: str
) -> None:
    status, error = await _post(client, url.format(closed=free_port()))
    assert status is None
    assert reason in error


async def test_a_header_httpx_cannot_encode_is_an_error(client: httpx.AsyncClient) -> None:
    async with CallbackServer() as server:
        status, error = await _post(client, server.url, **{"X-Correlation-ID": "café ☕"})
    assert (status, server.calls) == (None, [])
    assert "UnicodeEncodeError" in error


async def test_a_503_carries_its_retry_after(client: httpx.AsyncClient) -> None:
    async with CallbackServer([Reply(503, headers={"Retry-After": "1.5"})]) as server:
        result = await post_signed(client, server.url, b"{}", headers={}, timeout_s=5)
    assert (result.status, result.retry_after_s, result.error) == (503, 1.5, None)
