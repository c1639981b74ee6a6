"""Where a webhook may send: public addresses only, unless REGISTRAR_WEBHOOKS_ALLOW_PRIVATE, so a
webhook cannot be used to probe the internal network. The host is resolved when the webhook is
created and again at every connection, which is made to the very address that was checked
(registrar.webhooks.sending): a name that resolves elsewhere by then (DNS rebinding) gains
nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from registrar.domain.errors import Invalid

RESOLVE_SECONDS = 5.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The target resolves to an address webhooks may not reach."""


def _embedded_ipv4(ip: Address) -> Address:
    """The IPv4 address an IPv6 transition address wraps (mapped, 6to4, NAT64), else `ip`: a
    wrapped private address must not pass for a public one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded
    return ip


def is_public(ip: Address) -> bool:
    """A globally routable unicast address: not loopback, private, link-local (cloud metadata),
    shared (CGNAT), multicast, reserved or unspecified."""
    ip = _embedded_ipv4(ip)
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
    )


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS
        )
    except TimeoutError:
        raise TargetRefused(f"resolving {host!r} took over {RESOLVE_SECONDS:g} s") from None
    except (OSError, UnicodeError) as error:
        raise TargetRefused(f"cannot resolve {host!r}: {error}") from None
    found: dict[Address, None] = {}
    for info in infos:
        with_scope = str(info[4][0])
        found[ipaddress.ip_address(with_scope.partition("%")[0])] = None
    if not found:
        raise TargetRefused(f"{host!r} resolves to no address")
    return list(found)


def _refused(host: str, addresses: Iterable[Address]) -> Address | None:
    return next((ip for ip in addresses if not is_public(ip)), None)


async def public_addresses(host: str, port: int) -> list[Address]:
    """`host`'s addresses, all public; TargetRefused naming the first that is not."""
    addresses = await resolve(host, port)
    private = _refused(host, addresses)
    if private is not None:
        raise TargetRefused(
            f"{host!r} resolves to {private}, which is not a public address: webhooks may not"
            " reach loopback, private or link-local networks unless"
            " REGISTRAR_WEBHOOKS_ALLOW_PRIVATE=true"
        )
    return addresses


async def check_target(url: str, allow_private: bool) -> None:
    """Invalid unless `url` (already well-formed) may be a webhook's target."""
    if allow_private:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await public_addresses(parts.hostname or "", port)
    except TargetRefused as refused:
        raise Invalid(f"Webhook URL {url!r} refused: {refused}") from None
