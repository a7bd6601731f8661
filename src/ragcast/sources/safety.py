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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from ragcast.errors import ItemError, ValidationError

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
METADATA_ADDRS = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeAddressError(ItemError):
    """A connection to an address ragcast must not reach."""


def address_problem(addr: Address, *, allow_loopback: bool) -> str | None:
    """Why ``addr`` may not be fetched from, or None when it may."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRS:
        return "a cloud metadata address"
    if addr.is_unspecified:
        return "a reserved address"  # 0.0.0.0 reaches this host on Linux
    if addr.is_loopback:
        return None if allow_loopback else "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_multicast or addr.is_reserved:
        return "a reserved address"
    return None


def resolve(host: str) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}, key=str)


def check_url(url: str, *, field: str, allow_loopback: bool) -> None:
    """Refuse ``url`` with a ValidationError naming ``field`` unless it is safe to fetch."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(
            field, f"only http and https URLs can be fetched, not {parsed.scheme or 'a bare path'}"
        )
    host = (parsed.hostname or "").lower()
    if not host:
        raise ValidationError(field, "the URL has no host")
    if host in METADATA_HOSTS:
        raise ValidationError(field, "the URL points at a cloud metadata service")
    try:
        addrs = resolve(host)
    except OSError:
        # Not resolvable now (DNS can fail for a while): nothing can be reached through it,
        # and the connection guard checks whatever it resolves to when it is fetched.
        return
    for addr in addrs:
        problem = address_problem(addr, allow_loopback=allow_loopback)
        if problem:
            raise ValidationError(field, f"the host {host} resolves to {problem} ({addr})")


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
