"""Egress allow-list entries: the grammar shared by settings, admin routes and the guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rules.addresses import IPNetwork, ends_in_number, parse_address, parse_ipv4_number

# Official endpoints of the paging and chat services escalations are meant for (https, 443).
BUILTIN_HOSTS = (
    "events.pagerduty.com",
    "events.eu.pagerduty.com",
    "api.opsgenie.com",
    "api.eu.opsgenie.com",
    "hooks.slack.com",
)
DEFAULT_PORTS = {"https": 443, "http": 80}
PLAIN_HTTP_MARKER = "http://"
MAX_HOST_LENGTH = 253


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a host or `*.suffix`, an optional port, and plain http or not."""

    pattern: str
    port: int | None = None
    plain_http: bool = False

    def matches(self, host: str) -> bool:
        """Tell whether `host` is this entry's host, or under its `*.` suffix."""
        if self.pattern.startswith("*."):
            return host.endswith(self.pattern[1:])
        return host == self.pattern

    def permits(self, scheme: str, port: int) -> bool:
        """Tell whether this entry lets `scheme` reach `port` (443, or 80 for plain http)."""
        if scheme == "http" and not self.plain_http:
            return False
        return port == (self.port if self.port is not None else DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.pattern}]" if ":" in self.pattern else self.pattern
        port = f":{self.port}" if self.port is not None else ""
        return f"{PLAIN_HTTP_MARKER if self.plain_http else ''}{host}{port}"


def parse_entry(text: str) -> AllowEntry:
    """Read `host`, `*.example.com`, `host:port`, `[v6]:port`, each optionally `http://`-prefixed."""
    entry = text.strip().lower()
    plain_http = entry.startswith(PLAIN_HTTP_MARKER)
    rest = entry.removeprefix(PLAIN_HTTP_MARKER)
    if "/" in rest or "@" in rest or any(c.isspace() for c in rest) or not rest.isascii():
        raise ValueError(f"{text!r} is not a host entry (`host`, `host:port`, `http://host`)")
    host, port = _split_host_port(rest, text)
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    if "*" in name or (wildcard and "." not in name):
        raise ValueError(f"{text!r}: wildcards only as a leading `*.` (*.example.com)")
    if not name or len(name) > MAX_HOST_LENGTH or ".." in name or name.startswith((".", "-")):
        raise ValueError(f"{text!r} is not a host name")
    if ":" not in name and ends_in_number(name) and str(parse_ipv4_number(name)) != name:
        raise ValueError(f"{text!r}: write an IPv4 address as four decimal numbers")
    if wildcard and (":" in name or ends_in_number(name)):
        raise ValueError(f"{text!r}: wildcards apply to domain names, not addresses")
    return AllowEntry(host, port, plain_http)


def _split_host_port(rest: str, text: str) -> tuple[str, int | None]:
    if rest.startswith("["):
        inside, closing, after = rest[1:].partition("]")
        if not closing or parse_address(inside) is None or (after and not after.startswith(":")):
            raise ValueError(f"{text!r} is not a bracketed IPv6 address")
        host, port_text = str(parse_address(inside)), after[1:] if after else None
    elif rest.count(":") > 1:  # a bare IPv6 address, which cannot carry a port
        address = parse_address(rest)
        if address is None:
            raise ValueError(f"{text!r} is not an IPv6 address")
        host, port_text = str(address), None
    else:
        host, colon, port_text_raw = rest.partition(":")
        port_text = port_text_raw if colon else None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class TenantEgress:
    """What one tenant may reach beyond the global lists (admin-managed)."""

    hosts: tuple[AllowEntry, ...] = ()
    networks: tuple[IPNetwork, ...] = ()


class TenantEgressSource(Protocol):
    """Where a tenant's own allow-list comes from."""

    async def get(self, tenant_id: str) -> TenantEgress:
        """Return the tenant's entries (empty when it has none)."""
        ...
