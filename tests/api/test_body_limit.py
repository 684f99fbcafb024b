"""The global body limit on a real uvicorn process: chunked, declared and just-under bodies."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.limits import request_body_limit
from settings import Settings
from tests.api.served import ServedApi, served_api
from tests.conftest import ADMIN_TOKEN, TenantCredentials

MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    """The API as its own process with the default limits."""
    with served_api(settings, tmp_path_factory.mktemp("limit") / "api.log") as api:
        yield api


def _chunks(total: int, sent: list[int]) -> Iterator[bytes]:
    """Yield `total` bytes in 64 KiB chunks, counting what was handed to the client."""
    while sent[0] < total:
        chunk = CHUNK[: total - sent[0]]
        sent[0] += len(chunk)
        yield chunk


def _assert_problem_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413 and body["title"] == "Payload too large"
    assert body["correlation_id"] == response.headers["x-correlation-id"]


def test_a_100_mb_chunked_body_without_credentials_is_refused_unbuffered(
    served: ServedApi,
) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for _ in range(3):  # warm up the code paths before measuring
            client.post("/api/v1/tenants", json={"name": "warm-up"})
        before = served.rss_bytes()
        sent = [0]
        started = time.perf_counter()
        response = client.post(
            "/api/v1/tenants",
            content=_chunks(100 * MB, sent),
            headers={"Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - started
    growth = served.rss_bytes() - before
    figures = f"413 after {elapsed:.3f}s, {sent[0] / MB:.1f} MB sent, RSS +{growth / MB:.2f} MB"
    logging.getLogger(__name__).warning(figures)  # shown by pytest -rA, for the record
    _assert_problem_413(response)
    assert elapsed < 1.0
    assert growth < 20 * MB


def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    served: ServedApi, settings: Settings
) -> None:
    head = (
        "POST /api/v1/tenants HTTP/1.1\r\nHost: awfdrs\r\nContent-Type: application/json\r\n"
        f"Content-Length: {request_body_limit(settings) + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=2) as sock:
        sock.sendall(head.encode())  # and not one byte of the body
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers.lower()
    assert json.loads(body)["status"] == 413


def test_bodies_up_to_the_limit_pass_and_one_byte_more_does_not(
    served: ServedApi, settings: Settings
) -> None:
    limit = request_body_limit(settings)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    name = f"just-under-{uuid.uuid4().hex[:8]}"
    document = json.dumps({"name": name}).encode()
    exact = document[:-1] + b" " * (limit - len(document)) + b"}"  # JSON allows the padding
    assert len(exact) == limit
    with httpx.Client(base_url=served.url, timeout=10) as client:
        created = client.post("/api/v1/tenants", content=exact, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == name
        _assert_problem_413(client.post("/api/v1/tenants", content=exact + b" ", headers=admin))
        streamed = [0]
        _assert_problem_413(
            client.post("/api/v1/tenants", content=_chunks(limit + 1, streamed), headers=admin)
        )


def test_the_intake_keeps_its_own_tighter_limit(
    served: ServedApi, settings: Settings, tenant: TenantCredentials
) -> None:
    body = b'{"padding": "' + b"x" * settings.max_body_bytes + b'"}'
    assert len(body) < request_body_limit(settings)
    with httpx.Client(base_url=served.url, timeout=10) as client:
        response = client.post(
            "/api/v1/events",
            content=body,
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
    _assert_problem_413(response)
    assert f"the limit is {settings.max_body_bytes}" in response.json()["detail"]


def test_an_explicit_global_limit_replaces_the_batch_default(settings: Settings) -> None:
    assert request_body_limit(settings) == settings.max_body_bytes * 16
    assert request_body_limit(settings.model_copy(update={"max_request_bytes": 4096})) == 4096
