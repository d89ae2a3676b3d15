"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from bot.client_address import ClientAddresses
from bot.core.config import Settings
from bot.core.storage.redis import EmbeddedRedis
from bot.services import Services

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
EMBEDDED_REDIS = web.AppKey("embedded_redis", EmbeddedRedis)
CLIENT_ADDRESSES = web.AppKey("client_addresses", ClientAddresses)
