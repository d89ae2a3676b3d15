"""``GET /metrics``: Prometheus exposition of :class:`bot.core.metrics.Metrics`.

It needs ``Authorization: Bearer <metrics.token>``; without a configured token it only
answers requests from the loopback interface that no proxy forwarded (a reverse proxy on the
same host connects from loopback too: its ``X-Forwarded-For``/``Forwarded`` gives it away), so
it is never public.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot import keys
from bot.core.errors import Forbidden, Unauthorized
from bot.records.cases import QUEUE_KEY


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _proxied(request: web.Request) -> bool:
    """A request a proxy forwarded (from wherever), not one made on this host."""
    return any(name in request.headers for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition, behind a bearer token (or loopback only without one)."""
    services = request.app[keys.SERVICES]
    token = services.settings.metrics.token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("metrics token missing or wrong")
    elif not _loopback(request.remote) or _proxied(request):
        raise Forbidden("metrics are only served on loopback without a token")
    services.metrics.queue_length.set(await services.redis.zcard(QUEUE_KEY))
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_view)
