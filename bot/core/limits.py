"""Fixed-window counters in Redis (shared by every server process) and client-address keys.

A limit is "at most N per window": :func:`count_hit` adds one to the current window's
counter and returns the new count; the caller refuses when it is above N. Client addresses
never appear in Redis keys as such: :func:`address_bucket` hashes them, and an IPv6 client
counts as its /64 network (one household or phone usually holds a whole /64).
:func:`check_chat_and_address` is the usual pair: one limit per chat, one per its address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

import redis.asyncio as aioredis

from bot.core.errors import BotError
from bot.core.storage.redis import redis_guard


@redis_guard
async def count_hit(redis: aioredis.Redis, prefix: str, window_s: int) -> int:
    """Count one event in the current ``window_s`` window of ``prefix``; the count so far."""
    key = f"{prefix}:{int(time.time() // window_s)}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s + 60)
        count, _ = await pipe.execute()
    return int(count)


def address_bucket(address: str) -> str:
    """A short, non-reversible-at-a-glance key for a client address (IPv6: its /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        normal = address
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        normal = (str(ipaddress.ip_network(f"{ip}/64", strict=False))
                  if isinstance(ip, ipaddress.IPv6Address) else str(ip))
    return hashlib.sha256(b"addr:" + normal.encode()).hexdigest()[:20]


async def check_chat_and_address(redis: aioredis.Redis, kind: str, conversation_key: str,
                                 client_address: str | None, *, per_chat: int, per_address: int,
                                 error: type[BotError], details: tuple[str, str],
                                 window_s: int = 3600) -> None:
    """Count one ``kind`` event for the chat (``rl:KIND:…``) and, when known, for its client
    address (``rl:addr:KIND:…``); raise ``error`` with ``details[0]`` when the chat is past
    ``per_chat`` (the address is then not counted), with ``details[1]`` when the address is
    past ``per_address``."""
    if await count_hit(redis, f"rl:{kind}:{conversation_key}", window_s) > per_chat:
        raise error(details[0])
    if client_address is not None and await count_hit(
            redis, f"rl:addr:{kind}:{address_bucket(client_address)}", window_s) > per_address:
        raise error(details[1])
