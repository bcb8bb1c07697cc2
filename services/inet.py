"""Addresses of both families, for the probe (services/probe.py) and the built-in servers
(services/labsvc.py): which family an address is, how an address is written in what they
report, and the IPv6 interfaces a host has. Standard library only; ipaddress is imported
only when an IPv6 address is written, so an IPv4-only server never loads it."""

from __future__ import annotations

import socket
import sys

IF_INET6 = "/proc/net/if_inet6"


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def address_text(address: str) -> str:
    """An address as reports write it: IPv4 dotted (also when it reached an IPv6 socket as
    ::ffff:a.b.c.d), IPv6 compressed and lowercase, as ipaddress writes it, without a scope."""
    if ":" not in address:
        return address
    import ipaddress
    ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    return str(ip.ipv4_mapped or ip)


def endpoint(sockaddr: tuple) -> tuple:
    """(address text, port) of a socket address of either family (no flow info, no scope)."""
    return address_text(sockaddr[0]), sockaddr[1]


def ipv6_interfaces(table: str = IF_INET6) -> dict[str, int]:
    """Interface name -> index of every non-loopback interface holding an IPv6 address."""
    return {name: index for _, index, name in _ipv6_addresses(table) if name != "lo"}


def interface_holding(address: str, table: str = IF_INET6) -> int | None:
    """The index of the interface that holds an IPv6 address, or None."""
    packed = socket.inet_pton(socket.AF_INET6, address.split("%", 1)[0])
    return next((index for held, index, _ in _ipv6_addresses(table) if held == packed), None)


def _ipv6_addresses(table: str) -> list[tuple[bytes, int, str]]:
    """(address, interface index, interface name) per line: "fd00...02 49c1 40 00 80 eth1"."""
    try:
        with open(table) as handle:
            lines = handle.read(1 << 20).splitlines()
    except OSError:  # no IPv6 in this kernel or namespace
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and len(fields[0]) == 32:
            found.append((bytes.fromhex(fields[0]), int(fields[1], 16), fields[5]))
    return found


def ipv6_membership(group: str, index: int) -> bytes:
    """struct ipv6_mreq for IPV6_JOIN_GROUP: the 16-byte group, the interface index."""
    return socket.inet_pton(socket.AF_INET6, group) + index.to_bytes(4, sys.byteorder)
