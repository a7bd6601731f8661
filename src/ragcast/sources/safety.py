"""Safe fetching: user-supplied URLs never reach internal addresses.

Two layers. :func:`check_url` refuses a URL up front (scheme, host resolving to a
loopback, private, link-local, reserved or metadata address) so a bad request gets a
clear ``400``. :func:`guarded` then watches every socket the fetching thread opens
(Python's ``socket.connect`` audit event), so a redirect, a DNS answer that changed
since the check (rebinding), or a media URL met inside an info page is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from ragcast.errors import ItemError, ValidationError

METADATA_HOSTS = {
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
}
METADATA_ADDRS = {
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: special-purpose ranges (RFC 6890 and its updates) that are refused whatever the
#: running Python's ``is_global`` says of them; ``is_global`` is checked as well
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (Alibaba's metadata service is inside it)
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/96",  # IPv4-compatible, deprecated (its embedded address is checked too)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fec0::/10",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeAddressError(ItemError):
    """A connection to an address ragcast must not reach."""


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo, NAT64, IPv4-compatible)."""
    inner: list[ipaddress.IPv4Address] = []
    if addr.sixtofour is not None:
        inner.append(addr.sixtofour)
    if addr.teredo is not None:
        inner.extend(addr.teredo)
    packed = int(addr)
    if addr in _NAT64 or (packed >> 32 == 0 and packed > 1):
        inner.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return inner


def address_problem(addr: Address, *, allow_loopback: bool) -> str | None:
    """Why ``addr`` may not be fetched from, or None when it may.

    Everything that is not globally routable is refused, and so is an IPv6 address that
    carries a refused IPv4 address (``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``,
    Teredo, NAT64 ``64:ff9b::a9fe:a9fe``).
    """
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # a dual-stack socket reaches the IPv4 address itself
            return address_problem(addr.ipv4_mapped, allow_loopback=allow_loopback)
        for inner in _embedded_ipv4(addr):
            # A tunnelled or translated loopback is never the loopback tests may allow.
            if address_problem(inner, allow_loopback=False):
                return "a tunnelled form of a refused address"
        if addr in _NAT64:
            return None  # DNS64 on an IPv6-only network: the IPv4 address inside decided
    if addr in METADATA_ADDRS:
        return "a cloud metadata address"
    if addr.is_unspecified:
        return "a reserved address"  # 0.0.0.0 reaches this host on Linux
    if addr.is_loopback:
        return None if allow_loopback else "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast or addr.is_reserved:
        return "a reserved address"
    if addr.is_private:
        return "a private address"
    if not addr.is_global or any(addr in net for net in _NOT_PUBLIC):
        return "an address that is not publicly routable"
    return None


def resolve(host: str) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}, key=str)


def check_url(url: str, *, field: str, allow_loopback: bool) -> None:
    """Refuse ``url`` with a ValidationError naming ``field`` unless it is safe to fetch.

    The message names the problem, never what an internal host name resolves to.
    """
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        raise ValidationError(field, "the URL contains spaces or control characters")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(
            field, f"only http and https URLs can be fetched, not {parsed.scheme or 'a bare path'}"
        )
    host = (parsed.hostname or "").lower().rstrip(".")
    if not host:
        raise ValidationError(field, "the URL has no host")
    try:
        parsed.port  # noqa: B018 - raises for a port outside 0-65535
    except ValueError:
        raise ValidationError(field, "the URL's port is not a number from 1 to 65535") from None
    if parsed.port == 0:
        raise ValidationError(field, "the URL's port is not a number from 1 to 65535")
    if host in METADATA_HOSTS:
        raise ValidationError(field, "the URL points at a cloud metadata service")
    literal = _literal(host)
    try:
        addrs = [literal] if literal is not None else resolve(host)
    except (OSError, UnicodeError):
        # Not resolvable now (DNS can fail for a while): nothing can be reached through it,
        # and the connection guard checks whatever it resolves to when it is fetched.
        return
    for addr in addrs:
        problem = address_problem(addr, allow_loopback=allow_loopback)
        if problem:
            where = f"the address {host}" if literal is not None else f"the host {host}"
            verb = "is" if literal is not None else "resolves to"
            raise ValidationError(field, f"{where} {verb} {problem}")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


_state = threading.local()
_installed = False
_install_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not getattr(_state, "active", False):
        return
    sock, address = args[0], args[1]
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        addr = ipaddress.ip_address(str(address[0]).split("%")[0])
    except (ValueError, IndexError, TypeError):
        return
    problem = address_problem(addr, allow_loopback=_state.allow_loopback)
    if problem:
        raise UnsafeAddressError(f"refused to connect to {problem} ({addr})")


@contextmanager
def guarded(*, allow_loopback: bool) -> Iterator[None]:
    """Refuse, in this thread, every connection to an address :func:`check_url` refuses."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)  # cannot be removed; inert outside guarded()
            _installed = True
    previous = getattr(_state, "active", False), getattr(_state, "allow_loopback", False)
    _state.active, _state.allow_loopback = True, allow_loopback
    try:
        yield
    finally:
        _state.active, _state.allow_loopback = previous
