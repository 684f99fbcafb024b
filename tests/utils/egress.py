"""Egress test doubles: a scripted DNS resolver, callback servers on any loopback address, and
the table of addresses the guard must refuse."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable

from devstack.http_target import CallbackServer, Reply
from rules.egress import EgressGuard
from rules.egress_lists import TenantEgressSource

# Every name under this suffix is allow-listed in the guards tests build.
DOMAIN = "egress.test"

# (URL host, class the refusal must name, address a name resolving to it would answer).
REFUSED: list[tuple[str, str, str]] = [
    ("127.0.0.1", "loopback address 127.0.0.1", "127.0.0.1"),
    ("10.0.0.1", "private address 10.0.0.1", "10.0.0.1"),
    ("172.16.5.4", "private address 172.16.5.4", "172.16.5.4"),
    ("192.168.1.1", "private address 192.168.1.1", "192.168.1.1"),
    ("169.254.169.254", "link-local address 169.254.169.254", "169.254.169.254"),
    ("[::1]", "loopback address ::1", "::1"),
    ("[::ffff:127.0.0.1]", "loopback address ::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ("[::ffff:169.254.169.254]", "link-local address ::ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
    ("0.0.0.0", "unspecified address 0.0.0.0", "0.0.0.0"),
    ("[::]", "unspecified address ::", "::"),
    ("100.64.0.1", "CGNAT (shared) address 100.64.0.1", "100.64.0.1"),
    ("[fd12:3456::1]", "private (unique local) address fd12:3456::1", "fd12:3456::1"),
    ("[fe80::1]", "link-local address fe80::1", "fe80::1"),
    ("224.0.0.251", "multicast address 224.0.0.251", "224.0.0.251"),
    ("[ff02::1]", "multicast address ff02::1", "ff02::1"),
    ("255.255.255.255", "reserved address 255.255.255.255", "255.255.255.255"),
    ("[64:ff9b::a9fe:a9fe]", "link-local (through NAT64 or 6to4)", "64:ff9b::a9fe:a9fe"),
    ("[2002:7f00:1::1]", "loopback (through NAT64 or 6to4)", "2002:7f00:1::1"),
    # Legacy numeric spellings inet_aton (and so httpx's resolver) would read as addresses.
    ("2130706433", "loopback address 127.0.0.1", "127.0.0.1"),
    ("0177.0.0.1", "loopback address 127.0.0.1", "127.0.0.1"),
    ("0x7f.1", "loopback address 127.0.0.1", "127.0.0.1"),
    ("127.1", "loopback address 127.0.0.1", "127.0.0.1"),
    ("0x7f000001", "loopback address 127.0.0.1", "127.0.0.1"),
    ("017700000001", "loopback address 127.0.0.1", "127.0.0.1"),
    ("2852039166", "link-local address 169.254.169.254", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "link-local address 169.254.169.254", "169.254.169.254"),
    ("0251.0376.0251.0376", "link-local address 169.254.169.254", "169.254.169.254"),
    ("012.1", "private address 10.0.0.1", "10.0.0.1"),
]


def resolving_name(index: int) -> str:
    """The name that, in the scripted resolver, answers row `index` of REFUSED."""
    return f"case-{index}.{DOMAIN}"


class ScriptedResolver:
    """A DNS stand-in: each lookup of a name takes its next answer (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        """Answer like getaddrinfo: addresses, or a gaierror for an unknown name."""
        asked = self.lookups.count(host)
        self.lookups.append(host)
        script = self.answers.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return script[min(asked, len(script) - 1)]


def table_resolver() -> ScriptedResolver:
    """A resolver answering each REFUSED row's name with its address."""
    return ScriptedResolver(
        {resolving_name(index): [[answer]] for index, (_, _, answer) in enumerate(REFUSED)}
    )


def make_guard(
    resolver: ScriptedResolver,
    *,
    networks: Iterable[str] = (),
    hosts: Iterable[str] = (),
    strict: bool = False,
    tenant_lists: TenantEgressSource | None = None,
) -> EgressGuard:
    """A guard allowing `*.egress.test` (plus `hosts`) with the scripted resolver."""
    return EgressGuard(
        hosts=[f"*.{DOMAIN}", "127.0.0.1", *hosts],
        networks=networks,
        strict=strict,
        tenant_lists=tenant_lists,
        resolver=resolver,
    )


class ServerOn(CallbackServer):
    """A CallbackServer on any loopback address (all of 127/8 is local), optionally TLS, that
    also counts connections: a refused call must not even open one."""

    def __init__(
        self,
        host: str,
        script: list[Reply] | None = None,
        *,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(script)
        self.host = host
        self.port = port or self.port
        self.connections = 0
        self._tls = tls

    @property
    def url(self) -> str:
        """Return the callback URL on this server's own address."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}/callback"

    async def __aenter__(self) -> ServerOn:
        self._server = await asyncio.start_server(self._count, self.host, self.port, ssl=self._tls)
        return self

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._handle(reader, writer)
