"""Which hosts the fetcher may connect to.

Cover URLs come from catalogs and playlists we do not control, so a URL pointing at the
machine itself, the local network or a cloud metadata service (169.254.169.254) is refused.
Hostnames are checked *after* DNS resolution, inside the connector's resolver, so the address
that is checked is the address that is dialled (no window for DNS rebinding); IP literals,
which aiohttp never resolves, are checked before the request and on every redirect hop.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from scorer.errors import RowError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Carrier-grade NAT space: private in practice, though ``ipaddress`` does not call it so.
_SHARED_NAT = ipaddress.IPv4Network("100.64.0.0/10")


class BlockedAddress(OSError):
    """Raised by :class:`SafeResolver`; aiohttp wraps it in ``ClientConnectorDNSError``."""


def blocked_reason(ip: IPAddress, allow_private: bool) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it may.

    ``allow_private`` opens loopback and private ranges (a CDN on the LAN, tests); link-local
    (cloud metadata), multicast and reserved addresses stay closed whatever the options."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return "link-local (cloud metadata) address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_NAT):
        return "private address"
    return None


def check_url(url: str | URL, allow_private: bool) -> URL:
    """Parse and vet one URL (scheme, host, IP literal); raise :class:`RowError` if it may not be fetched."""
    try:
        u = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as e:
        raise RowError("bad_url", f"not a valid URL: {url!r}") from e
    if u.scheme not in ("http", "https"):
        raise RowError("bad_url", f"only http and https URLs are fetched, not {u.scheme or 'no scheme'!r}: {url}")
    if not u.host:
        raise RowError("bad_url", f"URL has no host: {url}")
    try:
        ip = ipaddress.ip_address(u.host.strip("[]"))
    except ValueError:
        return u
    reason = blocked_reason(ip, allow_private)
    if reason:
        raise RowError("blocked_address", f"{u.host} is a {reason}: {url}")
    return u


class SafeResolver(AbstractResolver):
    """Resolves with the system resolver, then refuses the host if any of its addresses is blocked."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        hosts = await self._inner.resolve(host, port, family)
        for h in hosts:
            reason = blocked_reason(ipaddress.ip_address(h["host"]), self.allow_private)
            if reason:
                raise BlockedAddress(f"{host} resolves to {h['host']}, a {reason}")
        return hosts

    async def close(self) -> None:
        await self._inner.close()
