"""IP addresses for egress: every spelling of a host number, and the classes never called."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Blocked IPv4 ranges by the name a refusal gives them; the first match names the address.
_IPV4_CLASSES: tuple[tuple[str, IPv4Network], ...] = tuple(
    (name, IPv4Network(cidr))
    for name, cidrs in (
        ("unspecified", ("0.0.0.0/8",)),
        ("loopback", ("127.0.0.0/8",)),
        ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
        ("CGNAT (shared)", ("100.64.0.0/10",)),
        ("link-local", ("169.254.0.0/16",)),
        ("multicast", ("224.0.0.0/4",)),
        (
            "reserved",
            (
                "192.0.0.0/24",
                "192.0.2.0/24",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "240.0.0.0/4",
            ),
        ),
    )
    for cidr in cidrs
)
_IPV6_CLASSES: tuple[tuple[str, IPv6Network], ...] = tuple(
    (name, IPv6Network(cidr))
    for name, cidr in (
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("private (unique local)", "fc00::/7"),
        ("link-local", "fe80::/10"),
        ("site-local", "fec0::/10"),
        ("multicast", "ff00::/8"),
        ("Teredo", "2001::/32"),
        ("reserved", "2001:db8::/32"),
        ("reserved", "::/96"),  # deprecated IPv4-compatible addresses
        ("reserved", "100::/64"),
        ("reserved", "64:ff9b:1::/48"),
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")
# WHATWG's "ends in a number": such a host is an IPv4 address to browsers, curl and libc.
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def ends_in_number(host: str) -> bool:
    """Tell whether some URL parser reads `host` as an IPv4 address (its last label is numeric)."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    return bool(_NUMBER.fullmatch(labels[-1]))


def parse_ipv4_number(host: str) -> IPv4Address | None:
    """Read an IPv4 host in any inet_aton spelling (`2130706433`, `0177.0.0.1`, `0x7f.1`)."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_part(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = [number for number in numbers if number is not None]
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return IPv4Address(value)


def _part(text: str) -> int | None:
    # Only the digits each base allows: int() would also take signs, spaces and underscores.
    if _HEX.fullmatch(text):
        return int(text[2:] or "0", 16)
    if _OCTAL.fullmatch(text):
        return int(text, 8)
    return int(text) if _DECIMAL.fullmatch(text) else None


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_class(address: IPAddress) -> str | None:
    """Name the blocked class of `address` ("loopback", "link-local", …), or None when public."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address_class(address.ipv4_mapped)  # the same host, reached over IPv6
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = address_class(inner)
        return None if kind is None else f"{kind} (through NAT64 or 6to4)"
    table: tuple[tuple[str, IPNetwork], ...] = (
        _IPV4_CLASSES if isinstance(address, IPv4Address) else _IPV6_CLASSES
    )
    for name, network in table:
        if address in network:
            return name
    # Whatever else IANA keeps out of the global table (new special-purpose blocks).
    return None if address.is_global else "reserved"


def shown(address: IPAddress) -> str:
    """Spell an address for a refusal; an IPv4-mapped one shows its IPv4 form."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped} (IPv4-mapped)"
    return str(address)


def connect_address(address: IPAddress) -> IPAddress:
    """The address to dial: an IPv4-mapped IPv6 address is its IPv4 address."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """Tell whether `address`, or the IPv4 address it maps to, lies in one of `networks`."""
    candidates = [address, connect_address(address)]
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in networks
    )


def parse_network(text: str) -> IPNetwork:
    """Read a CIDR (`10.20.0.0/16`, `::1`); host bits set are an error, not silently dropped."""
    try:
        return ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network in CIDR notation ({exc})") from None


def parse_address(text: str) -> IPAddress | None:
    """Read a literal IP address, or None when `text` is not one."""
    try:
        return ip_address(text)
    except ValueError:
        return None
