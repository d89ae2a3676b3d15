"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from bot.services import Services
from bot.storage.redis import EmbeddedRedis

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
EMBEDDED_REDIS = web.AppKey("embedded_redis", EmbeddedRedis)
