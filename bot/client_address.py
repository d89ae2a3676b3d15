"""The address of the client behind a request, for per-address limits and staff lockouts.

The TCP peer (``request.remote``) is the client unless it is one of
``web_chat.trusted_proxies``. Only then is ``X-Forwarded-For`` read, from the right (the
entry the trusted proxy appended) to the left, skipping further trusted proxies: the first
address that is not a trusted proxy is the client. Entries to its left were written by the
client itself and are never believed. Without trusted proxies the header is ignored; a
proxied request from a peer that is not trusted is logged once, because then every user
behind that proxy shares one address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from functools import lru_cache

from aiohttp import web

from bot.core.config import WebChatConfig

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.5:443"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def in_networks(address: str | None, cidrs: Iterable[str]) -> bool:
    """True when ``address`` lies in one of the CIDR networks."""
    ip = _parse(address) if address else None
    return ip is not None and any(ip in net for net in _networks(tuple(cidrs)))


def resolve(peer: str | None, forwarded_for: list[str], trusted: Iterable[str]) -> str | None:
    """The client address from the TCP peer and the ``X-Forwarded-For`` values (in order)."""
    networks = _networks(tuple(trusted))
    peer_ip = _parse(peer) if peer else None
    if peer_ip is None:
        return peer
    if not any(peer_ip in net for net in networks):
        return str(peer_ip)
    client = peer_ip
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:  # garbage written by a trusted hop: stop at the hop that sent it
            break
        client = ip
        if not any(ip in net for net in networks):
            break
    return str(client)


class ClientAddresses:
    """Finds the client address of requests for one app (``keys.CLIENT_ADDRESSES``)."""

    def __init__(self, config: WebChatConfig) -> None:
        self.config = config
        self._warned: set[str] = set()  # untrusted proxying peers already logged

    def of(self, request: web.BaseRequest) -> str | None:
        """The address of the client behind ``request`` (see the module docstring)."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        peer = request.remote
        if forwarded and peer and peer not in self._warned and not in_networks(
                peer, self.config.trusted_proxies):
            self._warned.add(peer)
            log.warning("X-Forwarded-For from %s ignored: if it is your reverse proxy, add it to "
                        "web_chat.trusted_proxies, or all its users share one address", peer)
        return resolve(peer, forwarded, self.config.trusted_proxies)

    def limited(self, address: str | None) -> bool:
        """Whether per-address limits apply: not for ``web_chat.address_limits_exempt``
        (nor for an unknown address, e.g. a Unix socket)."""
        return address is not None and not in_networks(address, self.config.address_limits_exempt)
