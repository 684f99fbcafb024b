"""A throwaway PKI and a TLS-terminating proxy, so clients can do real (m)TLS handshakes."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "temporal.test"


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA, a server certificate for SERVER_NAME and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def _certificate(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Write a CA, a server certificate (for SERVER_NAME) and a client certificate."""
    pem = serialization.Encoding.PEM
    ca_key = _write_key(directory / "ca.key")
    ca = _certificate(
        subject="awfdrs test CA",
        key=ca_key,
        issuer=None,
        extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)],
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    leaf_usage = {
        "server": (
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)])],
        ),
        "client": (ExtendedKeyUsageOID.CLIENT_AUTH, []),
    }
    for role, (usage, extra) in leaf_usage.items():
        key = _write_key(directory / f"{role}.key")
        cert = _certificate(
            subject=role,
            key=key,
            issuer=(ca.subject, ca_key),
            extensions=[
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (x509.ExtendedKeyUsage([usage]), False),
                *((extension, False) for extension in extra),
            ],
        )
        (directory / f"{role}.pem").write_bytes(cert.public_bytes(pem))
    return Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass  # either side hung up: the proxy just stops relaying
    finally:
        writer.close()


@contextlib.contextmanager
def tls_proxy(pki: Pki, target: str) -> Iterator[str]:
    """Terminate mTLS (a client certificate from the CA is required) in front of `target`.

    Yields the proxy's `host:port`. It runs its own event loop in a thread, so the client
    under test and the proxy never wait on each other's loop.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])  # gRPC refuses a TLS peer that does not offer HTTP/2
    host, _, port = target.rpartition(":")
    loop = asyncio.new_event_loop()
    # A refused handshake is the expected outcome of some tests, not an error worth a log.
    loop.set_exception_handler(lambda _loop, _context: None)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = loop.run_until_complete(
        asyncio.start_server(relay, "127.0.0.1", 0, ssl=context, ssl_handshake_timeout=5)
    )

    async def shutdown() -> None:
        server.close()
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0.1)  # let the closed transports release their sockets

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
