"""The reminder deliverer with each channel's sender (assembly: it knows the channels)."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.channels.telegram import TelegramReminders
from bot.channels.wechat_api import WechatReminders
from bot.core.config import Settings
from bot.core.outbox import Outbox
from bot.records.reminders import Deliverer


def make_deliverer(settings: Settings, redis: aioredis.Redis, outbox: Outbox | None = None) -> Deliverer:
    """WeChat template messages, Telegram messages, and the outbox for the web chat."""
    return Deliverer(settings, redis, outbox, senders={
        "wechat": WechatReminders(settings, redis), "telegram": TelegramReminders(settings)})
