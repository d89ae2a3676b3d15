"""Prometheus metrics, one registry per application (no global state).

``GET /metrics`` needs ``Authorization: Bearer <metrics.token>``; without a configured
token it only answers requests from the loopback interface, so it is never public.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot import keys
from bot.errors import Forbidden, Unauthorized


class Metrics:
    """The counters the bot updates while it works."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("bot_messages_total", "Inbound messages by channel and outcome",
                                ["channel", "outcome"], registry=self.registry)
        self.turn_latency = Histogram("bot_turn_seconds", "Time to answer one message",
                                      ["channel"], registry=self.registry,
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.nlu_fallbacks = Counter("bot_nlu_fallbacks_total", "Messages the bot did not understand",
                                     registry=self.registry)
        self.face_verdicts = Counter("bot_face_verdicts_total", "Selfie verification verdicts",
                                     ["decision"], registry=self.registry)
        self.face_latency = Histogram("bot_face_seconds", "Selfie received to verdict",
                                      registry=self.registry,
                                      buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.queue_length = Gauge("bot_handoff_queue_length", "Chats waiting for a person",
                                  registry=self.registry)
        self.handoff_wait = Histogram("bot_handoff_wait_seconds", "Waiting time until staff claim",
                                      registry=self.registry,
                                      buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200))
        self.send_failures = Counter("bot_send_failures_total", "Replies a platform API refused",
                                     ["channel"], registry=self.registry)


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus exposition, behind a bearer token (or loopback only without one)."""
    services = request.app[keys.SERVICES]
    token = services.settings.metrics.token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("metrics token missing or wrong")
    elif not _loopback(request.remote):
        raise Forbidden("metrics are only served on loopback without a token")
    from handlers.handoff import QUEUE_KEY

    services.metrics.queue_length.set(await services.redis.zcard(QUEUE_KEY))
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_view)
