"""Outbound HTTP: Retry-After in both forms, POSTs that never raise, and calls that dial the
vetted address while speaking to (and verifying) the URL's own name."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.outbound import MAX_RETRY_AFTER_S, heartbeating, parse_retry_after, post_signed
from devstack.http_target import CallbackServer, Reply
from devstack.process import free_port
from rules.egress import VettedTarget
from tests.utils.egress import ScriptedResolver, ServerOn, make_guard
from tests.utils.tls import SERVER_NAME, Pki, make_pki

NOW = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
TENANT = uuid.uuid4()


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


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client configured like the worker's."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield http


def _pinned(request_url: str) -> VettedTarget:
    """A target as the guard would return it, pointing wherever the test needs."""
    return VettedTarget(
        url=request_url,
        address=ip_address("127.0.0.1"),
        request_url=request_url,
        host_header="127.0.0.1",
        sni_hostname=None,
    )


async def _vetted(url: str) -> VettedTarget:
    guard = make_guard(ScriptedResolver(), networks=["127.0.0.0/8"])
    return await guard.vet(url, tenant_id=uuid.uuid4())


async def _post(
    client: httpx.AsyncClient, target: VettedTarget, **headers: str
) -> tuple[int | None, str]:
    result = await post_signed(client, target, b"{}", headers=headers, timeout_s=5)
    return result.status, result.error or ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{closed}/cb", "ConnectError"),
        # What the guard refuses never gets here; were it to, it is still a result.
        ("http://127.0.0.1:99999/cb", "port must be 0-65535"),
        ("http://127.0.0.1:abc/cb", "InvalidURL"),
        ("ftp://127.0.0.1/cb", "UnsupportedProtocol"),
    ],
)
async def test_a_url_that_cannot_be_called_is_an_error_not_an_exception(
    client: httpx.AsyncClient, url: str, reason: str
) -> None:
    status, error = await _post(client, _pinned(url.format(closed=free_port())))
    assert status is None
    assert reason in error


async def test_a_header_httpx_cannot_encode_is_an_error(client: httpx.AsyncClient) -> None:
    async with CallbackServer() as server:
        target = await _vetted(server.url)
        status, error = await _post(client, target, **{"X-Correlation-ID": "café ☕"})
    assert (status, server.calls) == (None, [])
    assert "UnicodeEncodeError" in error


async def test_a_503_carries_its_retry_after(client: httpx.AsyncClient) -> None:
    async with CallbackServer([Reply(503, headers={"Retry-After": "1.5"})]) as server:
        target = await _vetted(server.url)
        result = await post_signed(client, target, b"{}", headers={}, timeout_s=5)
    assert (result.status, result.retry_after_s, result.error) == (503, 1.5, None)


async def test_heartbeats_run_until_the_answer_is_in_and_stop_there(
    client: httpx.AsyncClient,
) -> None:
    # Before the answer a kill must reach the activity; after it, it would only cut short
    # the statements recording how the call ended.
    loop = asyncio.get_running_loop()
    beats: list[float] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *_: beats.append(loop.time())

    async def attempt(url: str) -> float:
        async with heartbeating(every_s=0.1):
            await asyncio.sleep(0.35)  # reads before the call
            result = await post_signed(client, await _vetted(url), b"{}", headers={}, timeout_s=5)
            answered = loop.time()
            assert result.status == 200
            await asyncio.sleep(0.5)  # recording the answer
        return answered

    async with CallbackServer() as server:
        answered = await env.run(attempt, server.url)
    assert len([b for b in beats if b < answered]) >= 3, beats
    assert not [b for b in beats if b > answered], (beats, answered)


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer at once, then send the body a byte every 0.2 s for a minute."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
    try:
        for _ in range(300):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)
    except ConnectionError:
        pass  # the client gave up, as it should
    finally:
        writer.close()


async def test_a_server_that_drips_its_answer_is_cut_off_at_the_timeout(
    client: httpx.AsyncClient,
) -> None:
    # Every read arrives within httpx's per-read timeout; the call as a whole must not.
    server = await asyncio.start_server(_drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        started = asyncio.get_running_loop().time()
        result = await post_signed(
            client, _pinned(f"http://127.0.0.1:{port}/cb"), b"{}", headers={}, timeout_s=1
        )
        took = asyncio.get_running_loop().time() - started
    assert (result.status, result.error) == (None, "timed out after 1s")
    assert took < 5


async def test_the_call_dials_the_vetted_address_with_the_names_host_header(
    client: httpx.AsyncClient,
) -> None:
    # The name exists only in the scripted resolver: had httpx resolved it, nothing connects.
    async with ServerOn("127.0.0.2") as server:
        resolver = ScriptedResolver({"pinned.egress.test": [["127.0.0.2"]]})
        guard = make_guard(resolver, networks=["127.0.0.2/32"])
        target = await guard.vet(f"http://pinned.egress.test:{server.port}/cb", tenant_id=TENANT)
        status, _ = await _post(client, target)
    assert status == 200
    [call] = server.calls
    assert call.headers["host"] == f"pinned.egress.test:{server.port}"
    assert call.headers["connection"] == "close"  # no pooled connection outlives its vetting


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for SERVER_NAME only."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls(pki: Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    return server, ssl.create_default_context(cafile=str(pki.ca))


@pytest.mark.parametrize(("name", "verified"), [(SERVER_NAME, True), ("other.test", False)])
async def test_tls_verifies_the_name_while_dialling_the_address(
    pki: Pki, name: str, verified: bool
) -> None:
    server_tls, client_tls = _tls(pki)
    resolver = ScriptedResolver({name: [["127.0.0.1"]]})
    guard = make_guard(resolver, networks=["127.0.0.1/32"], hosts=[name])
    async with (
        ServerOn("127.0.0.1", tls=server_tls) as server,
        httpx.AsyncClient(verify=client_tls) as tls_client,
    ):
        target = await guard.vet(f"https://{name}:{server.port}/cb", tenant_id=TENANT)
        status, error = await _post(tls_client, target)
    # The certificate names SERVER_NAME only: checked against the address, it would fail.
    assert (status == 200) is verified
    assert verified or "CERTIFICATE_VERIFY_FAILED" in error
    assert [c.headers["host"] for c in server.calls] == (
        [f"{name}:{server.port}"] if verified else []
    )
