"""The egress guard: the one check before AWFDRS calls any URL a tenant or operator gave it.

A URL passes when its host is on the allow-list (built-in, global or the tenant's own), its
scheme and port are allowed, and every address its host resolves to — resolved once, here —
is public or inside an allowed network. The caller then connects to the vetted address itself,
so a second DNS answer (rebinding) can never redirect the call.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from rules.addresses import (
    IPAddress,
    IPNetwork,
    address_class,
    connect_address,
    ends_in_number,
    in_networks,
    parse_address,
    parse_ipv4_number,
    parse_network,
    shown,
)
from rules.egress_lists import (
    BUILTIN_HOSTS,
    DEFAULT_PORTS,
    AllowEntry,
    TenantEgress,
    TenantEgressSource,
    parse_entry,
)

if TYPE_CHECKING:
    from settings import Settings

DNS_TIMEOUT_S = 5.0

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class EgressRefused(Exception):
    """A URL AWFDRS will not call; the message says why (naming the address class if any)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # A DNS failure may clear up; a refused host, scheme, port or address will not.
        self.transient = transient


@dataclass(frozen=True)
class VettedTarget:
    """A URL that passed the guard, pinned to the address the guard vetted."""

    url: str
    address: IPAddress
    request_url: str  # the URL with the vetted address in place of its host
    host_header: str
    sni_hostname: str | None  # the name TLS sends and verifies (https to a name only)


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    canonical: bool  # False: a numeric host in a legacy spelling (`2130706433`, `0x7f.1`)


def _parse_target(url: str) -> _Target:
    """Split a URL strictly: http(s), a host, a port, no credentials, one reading for all."""
    if any(char.isspace() or not char.isprintable() for char in url):
        raise EgressRefused("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # an unbalanced IPv6 bracket; a port not digits or above 65535
        raise EgressRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise EgressRefused("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise EgressRefused("credentials in URLs are not allowed")
    host = parts.hostname or ""
    if not host:
        raise EgressRefused("must name a host")
    if port == 0:
        raise EgressRefused("port must be a number from 1 to 65535")
    if not host.isascii():
        raise EgressRefused("host must be ASCII (write an international name in punycode)")
    literal, canonical = _host_number(host)
    if canonical:
        _same_host_for_httpx(url, host)
    name = str(literal) if literal is not None else host.rstrip(".")
    return _Target(url, parts.scheme, name, port or DEFAULT_PORTS[parts.scheme], literal, canonical)


def _host_number(host: str) -> tuple[IPAddress | None, bool]:
    """The address a numeric host means, and whether it is spelled the one canonical way."""
    if ":" in host:
        if "%" in host:
            raise EgressRefused("IPv6 zone identifiers are not allowed")
        address = parse_address(host)
        if address is None:
            raise EgressRefused(f"{host} is not a valid IPv6 address")
        return address, True
    if not ends_in_number(host):
        return None, True
    number = parse_ipv4_number(host)
    if number is None:
        raise EgressRefused(f"host {host} ends in a number but is not an IPv4 address")
    return number, str(number) == host


def _same_host_for_httpx(url: str, host: str) -> None:
    try:
        raw_host = httpx.URL(url).raw_host
    except (httpx.InvalidURL, ValueError) as exc:
        raise EgressRefused(f"cannot be called ({exc})") from None
    # The lists are checked on this parser's host; the call goes where httpx's points.
    if raw_host.decode("ascii", "replace").lower() != host:
        raise EgressRefused("is ambiguous: its host reads differently to different parsers")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve `host` through the system resolver (getaddrinfo), addresses in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressGuard:
    """Vets every outbound URL: at registration and again right before each call."""

    def __init__(
        self,
        *,
        hosts: Iterable[str],
        networks: Iterable[str],
        strict: bool,
        tenant_lists: TenantEgressSource | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._hosts = tuple(parse_entry(host) for host in (*BUILTIN_HOSTS, *hosts))
        self._networks = tuple(parse_network(network) for network in networks)
        # Strict (production): https on 443 unless an entry allows plain http or another port.
        self._strict = strict
        self._tenant_lists = tenant_lists
        self._resolver = resolver

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        tenant_lists: TenantEgressSource | None = None,
        resolver: Resolver = system_resolver,
    ) -> EgressGuard:
        """Build the guard the settings describe, with the tenants' own lists on top."""
        return cls(
            hosts=settings.allowed_callback_hosts,
            networks=settings.allowed_callback_networks,
            strict=settings.env == "production",
            tenant_lists=tenant_lists,
            resolver=resolver,
        )

    @property
    def global_hosts(self) -> list[str]:
        """Entries every tenant may reach: built-in hosts, then AWFDRS_ALLOWED_CALLBACK_HOSTS."""
        return [str(entry) for entry in self._hosts]

    @property
    def global_networks(self) -> list[str]:
        """The internal networks every tenant may reach (AWFDRS_ALLOWED_CALLBACK_NETWORKS)."""
        return [str(network) for network in self._networks]

    async def vet(self, url: str, *, tenant_id: str | uuid.UUID) -> VettedTarget:
        """Return where to connect for `url`, or raise EgressRefused saying why not."""
        target = _parse_target(url)
        tenant = await self._tenant(str(tenant_id))
        networks = self._networks + tenant.networks
        if target.literal is not None:
            _check_address(target.literal, networks, host=None)
            if not target.canonical:
                raise EgressRefused(f"write the address as {target.literal}")
        self._check_allowed(target, self._hosts + tenant.hosts)
        if target.literal is not None:
            return _pinned(target, target.literal)
        addresses = await self._resolve(target.host, target.port)
        for address in addresses:
            _check_address(address, networks, host=target.host)
        return _pinned(target, addresses[0])

    async def _tenant(self, tenant_id: str) -> TenantEgress:
        if self._tenant_lists is None:
            return TenantEgress()
        return await self._tenant_lists.get(tenant_id)

    def _check_allowed(self, target: _Target, entries: tuple[AllowEntry, ...]) -> None:
        matching = [entry for entry in entries if entry.matches(target.host)]
        if not matching:
            raise EgressRefused(f"host {target.host} is not on the egress allow-list")
        if not self._strict or any(e.permits(target.scheme, target.port) for e in matching):
            return
        if target.scheme == "http" and not any(entry.plain_http for entry in matching):
            raise EgressRefused(f"plain http to {target.host} is not allowed (use https)")
        raise EgressRefused(f"port {target.port} of {target.host} is not on the allow-list")

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(DNS_TIMEOUT_S):
                answers = await self._resolver(host, port)
        except TimeoutError:
            raise EgressRefused(f"host {host}: DNS lookup timed out", transient=True) from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise EgressRefused(f"host {host} does not resolve ({why})", transient=True) from None
        addresses = [parse_address(answer.partition("%")[0]) for answer in answers]
        found = [address for address in addresses if address is not None]
        if not found or len(found) != len(addresses):
            raise EgressRefused(f"host {host} resolves to no usable address", transient=True)
        return found


def _check_address(
    address: IPAddress, networks: tuple[IPNetwork, ...], *, host: str | None
) -> None:
    kind = address_class(address)
    if kind is None or in_networks(address, networks):
        return
    where = f"host {host} resolves to " if host else ""
    raise EgressRefused(f"{where}{kind} address {shown(address)}")


def _pinned(target: _Target, address: IPAddress) -> VettedTarget:
    dial = connect_address(address)
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = target.port == DEFAULT_PORTS[target.scheme]
    named = target.literal is None
    return VettedTarget(
        url=target.url,
        address=dial,
        request_url=str(httpx.URL(target.url).copy_with(host=str(dial))),
        host_header=host if default else f"{host}:{target.port}",
        sni_hostname=target.host if named and target.scheme == "https" else None,
    )
