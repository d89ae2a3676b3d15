"""Fixed-window counters in Redis (shared by every server process) and client-address keys.

A limit is "at most N per window": :func:`count_hit` adds one to the current window's
counter and returns the new count; the caller refuses when it is above N. Client addresses
never appear in Redis keys as such: :func:`address_bucket` hashes them, and an IPv6 client
counts as its /64 network (one household or phone usually holds a whole /64).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

import redis.asyncio as aioredis

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
