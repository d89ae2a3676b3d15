"""Mounting a channel adapter on the app: its lifecycle and the routes that call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from aiohttp import web

Adapter = TypeVar("Adapter")
AdapterHandler = Callable[[Adapter, web.Request], Awaitable[web.Response]]


def mount(app: web.Application, lifecycle: Callable[[web.Application], AsyncIterator[None]],
          key: web.AppKey[Adapter], routes: Sequence[tuple[str, str, AdapterHandler[Adapter]]]) -> None:
    """``lifecycle`` (a cleanup context) puts the adapter under ``key``; each route
    ``(method, path, Adapter.method)`` calls that method of the running adapter."""
    app.cleanup_ctx.append(lifecycle)
    for method, path, handler in routes:
        if method == "GET":  # and HEAD, as add_get does
            app.router.add_get(path, _calling(key, handler))
        else:
            app.router.add_route(method, path, _calling(key, handler))


def _calling(key: web.AppKey[Adapter], handler: AdapterHandler[Adapter]) -> Callable[[web.Request],
                                                                                    Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        return await handler(request.app[key], request)

    route.__name__ = getattr(handler, "__name__", "route")
    return route
