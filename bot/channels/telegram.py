"""The Telegram channel (python-telegram-bot 22), for retirees abroad.

- Webhook ``POST /telegram`` on the same aiohttp app; the ``X-Telegram-Bot-Api-Secret-Token``
  header must equal ``telegram.webhook_secret`` (403 otherwise).
- The PTB ``Application`` is built with ``updater(None)`` and the configured API base URLs and
  initialised in ``cleanup_ctx``. An unreachable Telegram API at start-up is logged and
  retried in the background; until then the webhook answers 503 (Telegram redelivers).
  With ``server.public_base_url`` set, the webhook is registered (``setWebhook``) once the
  API answers.
- ``python -m bot telegram poll``: the same handlers with long polling, for development.
- Text, photos (largest size -> ``InboundMessage.image``), voice (not supported yet: asks for
  text), options as inline keyboard buttons whose callbacks feed the pipeline, ``/start``
  and ``/help``. Only private chats are served.
- Answers to an update are sent by a per-chat ordered task: the webhook waits for them at
  most ``webhook_send_budget_s``, so a slow or failing Bot API (retried with backoff, then
  recorded as ``send_failed`` for the staff console) never holds the webhook.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, PhotoSize, Update
from telegram.error import BadRequest as TgBadRequest
from telegram.error import Forbidden as TgForbidden
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import keys
from bot.channels.adapter import PHOTO_FAILED, mount, record_send_failure
from bot.core.config import Settings
from bot.core.errors import BadRequest, BotError, Forbidden
from bot.core.i18n import tr
from bot.core.logs import mask, quiet_http_clients
from bot.core.messages import InboundMessage, Reply
from bot.core.outbox import DeliveryFailed
from bot.records.reminders import Reminder, ReminderSendError
from bot.safety import loads_json
from bot.services import Services

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096                # Telegram's limit for one message (characters)
CALLBACK_DATA_LIMIT = 64         # bytes
MAX_UPDATE_BYTES = 1024 * 1024
ALLOWED_UPDATES = ["message", "callback_query"]

VOICE_TEXT = tr("语音消息我暂时还听不懂。请您打字告诉我，也可以发照片给我。")
UNSUPPORTED_TEXT = tr("我现在能看懂文字和照片。请您打字或者发照片给我。")
PHOTO_TOO_LARGE = tr("这张照片太大了，请发一张小一点的照片（{mb}MB 以内）。")
HELP_TEXT = (tr("我是青海养老金资格认证小助手。您可以：\n"
             "1. 直接打字提问，比如“怎么认证”“认证失败了”；\n"
             "2. 点下面的按钮选择；\n"
             "3. 按提示发一张自己的正面照片做刷脸认证。\n"
             "想找工作人员，发“转人工”就行。"))
ERROR_TEXT = tr("系统出了点问题，请稍后再试。")

PRIVATE_MESSAGES = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE


class NotReady(BotError, status=503, code="telegram_not_ready"):
    """The Telegram API has not answered yet since start-up."""

    user_message = tr("服务正在启动，请稍后再试。")


def callback_data(index: int, label: str) -> str:
    """What a button sends back: its label, or its number when the label is too long."""
    return label if len(label.encode()) <= CALLBACK_DATA_LIMIT else str(index)


def keyboard(options: Sequence[str]) -> InlineKeyboardMarkup | None:
    """One big button per row, numbered like the text channels."""
    if not options:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(f"{i}. {label}", callback_data=callback_data(i, label))]
                                 for i, label in enumerate(options, 1)])


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line breaks where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        pieces.append(text)
    return pieces


class TelegramChannel:
    """Owns the PTB Application; turns updates into InboundMessages and sends replies."""

    start_retry_delays: tuple[float, ...] = (1, 2, 5, 10, 30, 60)  # then every 60 s
    send_retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0)
    download_retry_delays: tuple[float, ...] = (0.5, 2.0)  # a photo download, then ask again
    ready_timeout_s = 30.0
    webhook_send_budget_s = 2.0

    def __init__(self, services: Services, *, polling: bool = False) -> None:
        self.services = services
        self.config = services.settings.telegram
        assert self.config.token
        quiet_http_clients()  # httpx logs every request URL, and those carry the token
        builder = (Application.builder().token(self.config.token)
                   .base_url(self.config.api_base).base_file_url(self.config.file_base))
        if not polling:
            builder = builder.updater(None)
        self.application = builder.build()
        self.polling = polling
        self.ready = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None
        self._sending: dict[int, asyncio.Task[bool]] = {}  # the last send task of each chat
        app = self.application
        app.add_handler(CommandHandler("start", self.on_start, filters=PRIVATE_MESSAGES))
        app.add_handler(CommandHandler("help", self.on_help, filters=PRIVATE_MESSAGES))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(PRIVATE_MESSAGES & filters.PHOTO, self.on_photo))
        app.add_handler(MessageHandler(PRIVATE_MESSAGES & (filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE),
                                       self.on_voice))
        app.add_handler(MessageHandler(PRIVATE_MESSAGES & filters.TEXT, self.on_text))
        app.add_handler(MessageHandler(PRIVATE_MESSAGES, self.on_other))
        app.add_error_handler(self.on_error)

    # -- lifecycle
    def start_background(self) -> None:
        """Initialise (getMe) and register the webhook, retrying until the API answers."""
        self._starter = asyncio.create_task(self.initialize())

    async def initialize(self) -> None:
        attempt = 0
        while True:
            try:
                await self.application.initialize()
                await self._register_webhook()
                break
            except (TelegramError, OSError) as exc:
                delay = self.start_retry_delays[min(attempt, len(self.start_retry_delays) - 1)]
                attempt += 1
                level = logging.ERROR if isinstance(exc, InvalidToken) else logging.WARNING
                log.log(level, "telegram API not reachable (%s: %s); retrying in %.0f s",
                        exc.__class__.__name__, mask(str(exc))[:200], delay)
                await asyncio.sleep(delay)
        self.ready.set()
        log.info("telegram channel ready", extra={"bot": self.application.bot.username})

    async def _register_webhook(self) -> None:
        base = self.services.settings.server.public_base_url
        if self.polling or not base:
            return
        if not self.config.webhook_secret:
            log.error("TELEGRAM_WEBHOOK_SECRET is not set: webhook not registered")
            return
        await self.application.bot.set_webhook(url=base.rstrip("/") + "/telegram",
                                               secret_token=self.config.webhook_secret,
                                               allowed_updates=ALLOWED_UPDATES)

    async def close(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            try:
                await self._starter
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        pending = list(self._sending.values())
        if pending:
            await asyncio.wait(pending, timeout=10)
            for task in pending:
                task.cancel()
        await self.application.shutdown()
        await self.application.bot.shutdown()

    # -- webhook
    async def webhook(self, request: web.Request) -> web.Response:
        """One Update from Telegram, processed before answering (Telegram redelivers on errors)."""
        secret = self.config.webhook_secret
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        given_bytes = given.encode("utf-8", "surrogateescape")  # a non-ASCII header is just wrong
        if not secret or not hmac.compare_digest(given_bytes, secret.encode()):
            log.warning("telegram webhook with a wrong secret token refused")
            raise Forbidden("bad telegram secret token")
        if not self.ready.is_set():
            raise NotReady("telegram API not initialised yet")
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            raise BadRequest("update too large", code="body_too_large", status=413)
        data = loads_json(await request.read())  # broken, deep or non-UTF-8 JSON: 400
        try:
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an Update")
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # noqa: BLE001 - whatever PTB cannot read is a bad request
            raise BadRequest(f"invalid update: {exc.__class__.__name__}", code="invalid_update") from exc
        await self.application.process_update(update)
        chat = update.effective_chat
        sending = self._sending.get(chat.id) if chat is not None else None
        if sending is not None:  # usually done at once; a slow API must not hold the webhook
            await asyncio.wait({sending}, timeout=self.webhook_send_budget_s)
        return web.Response(text="ok")

    # -- handlers
    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.run(update, event="subscribe")

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        assert chat is not None
        self.queue_replies(chat.id, [Reply(HELP_TEXT)])
        await self.run(update, event="menu:greet")

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text is not None
        limit = self.services.settings.server.max_text_chars
        if len(message.text) > limit:
            self.queue_replies(message.chat_id, [Reply(tr("消息太长了，请不要超过{limit}个字。", limit=limit))])
            return
        await self.run(update, text=message.text)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        try:
            await query.answer()
        except TelegramError as exc:
            log.warning("answerCallbackQuery failed: %s", exc.__class__.__name__)
        chat = update.effective_chat
        if chat is None or chat.type != "private" or not isinstance(query.data, str) or not query.data:
            return
        await self.run(update, text=query.data, message_id=f"cb:{query.id}")

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.photo
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        limit = self.services.settings.face.max_image_bytes
        if largest.file_size and largest.file_size > limit:
            self.queue_replies(message.chat_id, [Reply(PHOTO_TOO_LARGE.format(mb=limit // (1024 * 1024)))])
            return
        image = await self.download_photo(largest)
        if image is None:
            self.queue_replies(message.chat_id, [Reply(PHOTO_FAILED)])
            return
        if len(image) > limit:
            self.queue_replies(message.chat_id, [Reply(PHOTO_TOO_LARGE.format(mb=limit // (1024 * 1024)))])
            return
        await self.run(update, image=image)

    async def download_photo(self, photo: PhotoSize) -> bytes | None:
        """The photo's bytes, whole; a failed or short download is fetched again.

        None when it could not be fetched (the user is asked to send it again; nothing
        reached the dialog, so no attempt is counted)."""
        delays = self.download_retry_delays
        for attempt in range(len(delays) + 1):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])
            try:
                file = await photo.get_file()
                data = bytes(await file.download_as_bytearray())
            except RetryAfter as exc:
                wait = exc.retry_after
                await asyncio.sleep(min(10.0, wait.total_seconds() if hasattr(wait, "total_seconds")
                                        else float(wait)))
                continue
            except (TgForbidden, TgBadRequest, InvalidToken) as exc:  # another try will not help
                log.error("telegram photo download refused: %s", exc.__class__.__name__)
                return None
            except TelegramError as exc:  # network: dropped, cut off, timed out
                log.warning("telegram photo download failed (attempt %d): %s", attempt + 1,
                            exc.__class__.__name__)
                continue
            expected = file.file_size or photo.file_size
            if expected and len(data) != expected:
                log.warning("telegram photo download cut off (attempt %d): %d of %d bytes",
                            attempt + 1, len(data), expected)
                continue
            return data
        log.error("telegram photo could not be downloaded")
        return None

    async def on_voice(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        self.queue_replies(message.chat_id, [Reply(VOICE_TEXT)])

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        self.queue_replies(message.chat_id, [Reply(UNSUPPORTED_TEXT)])

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed: %r", context.error)

    async def run(self, update: Update, *, text: str | None = None, image: bytes | None = None,
                  event: str | None = None, message_id: str | None = None) -> None:
        """One turn through the pipeline; the replies go back to the chat."""
        chat = update.effective_chat
        assert chat is not None
        inbound = InboundMessage(channel=CHANNEL, user_id=str(chat.id),
                                 message_id=message_id or f"u{update.update_id}",
                                 text=text, image=image, event=event)
        try:
            turn = await self.services.handle(inbound)
        except BotError as exc:
            self.queue_replies(chat.id, [Reply(exc.user_message)])
            return
        except Exception:
            log.exception("telegram turn failed")
            self.queue_replies(chat.id, [Reply(ERROR_TEXT)])
            return
        if turn.outcome != "duplicate":
            self.queue_replies(chat.id, turn.replies)

    # -- sending
    async def send(self, conversation_key: str, replies: Sequence[Reply]) -> None:
        """Outbox sender for ``telegram:<chat id>``; ``DeliveryFailed`` when something was lost."""
        try:
            chat_id = int(conversation_key.split(":", 1)[1])
        except (IndexError, ValueError):
            log.error("telegram sender got a bad conversation key")
            return
        if not await self.queue_replies(chat_id, replies):
            raise DeliveryFailed(f"telegram message to {conversation_key[:12]}… not delivered")

    def queue_replies(self, chat_id: int, replies: Sequence[Reply]) -> asyncio.Task[bool]:
        """Send after whatever this chat still has on its way (keeps the order); a task."""
        previous = self._sending.get(chat_id)
        task = asyncio.create_task(self._send_after(previous, chat_id, replies))
        self._sending[chat_id] = task

        def forget(done: asyncio.Task[bool]) -> None:
            if self._sending.get(chat_id) is done:
                del self._sending[chat_id]
            if not done.cancelled() and done.exception() is not None:
                log.error("telegram send task failed: %r", done.exception())

        task.add_done_callback(forget)
        return task

    async def _send_after(self, previous: asyncio.Task[bool] | None, chat_id: int,
                          replies: Sequence[Reply]) -> bool:
        if previous is not None:
            await asyncio.wait({previous})
        return await self.send_replies(chat_id, replies)

    async def send_replies(self, chat_id: int, replies: Sequence[Reply]) -> bool:
        """Send replies in order; options become inline buttons under the last piece.

        False when some piece could not be delivered (recorded as ``send_failed``)."""
        if any(reply.unrendered for reply in replies):  # said outside a turn (help, errors)
            language = await self.services.outbox.language_of(f"{CHANNEL}:{chat_id}")
            replies = [reply.localized(language) for reply in replies]
        delivered = True
        for reply in replies:
            if reply.image is not None:
                delivered = await self._with_retries(
                    chat_id, "sendPhoto", lambda r=reply: self.application.bot.send_photo(chat_id, photo=r.image),
                    tr("[照片]")) and delivered
            pieces = split_text(reply.text) or ([tr("请选择：")] if reply.options else [])
            for index, piece in enumerate(pieces):
                markup = keyboard(reply.options) if index == len(pieces) - 1 else None
                delivered = await self._with_retries(
                    chat_id, "sendMessage",
                    lambda p=piece, m=markup: self.application.bot.send_message(chat_id, p, reply_markup=m),
                    piece) and delivered
        return delivered

    async def _with_retries(self, chat_id: int, what: str, call: Any, text: str = "") -> bool:
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), self.ready_timeout_s)
            except TimeoutError:
                await self._record_failure(chat_id, what, "telegram API not initialised", text, 0)
                return False
        error: TelegramError | None = None
        attempts = 0
        for attempt in range(len(self.send_retry_delays) + 1):
            attempts = attempt + 1
            try:
                await call()
                return True
            except RetryAfter as exc:
                error = exc
                wait = exc.retry_after
                await asyncio.sleep(min(60.0, wait.total_seconds() if hasattr(wait, "total_seconds")
                                        else float(wait)))
                continue
            except (TgForbidden, TgBadRequest, InvalidToken) as exc:  # retrying will not help
                error = exc
                break
            except TelegramError as exc:
                error = exc
                log.warning("telegram %s failed (attempt %d): %s", what, attempt + 1, exc.__class__.__name__)
            if attempt < len(self.send_retry_delays):
                await asyncio.sleep(self.send_retry_delays[attempt])
        await self._record_failure(chat_id, what, f"{error.__class__.__name__}: {error}", text, attempts)
        return False

    async def _record_failure(self, chat_id: int, what: str, error: str, text: str, attempts: int) -> None:
        log.error("telegram %s could not be delivered: %s", what, mask(error)[:200])
        await record_send_failure(self.services, CHANNEL, f"{CHANNEL}:{chat_id}", text, method=what,
                                  error=mask(error)[:200], attempts=attempts)


TELEGRAM = web.AppKey("telegram_channel", TelegramChannel)


async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the PTB Application, register the outbox sender, initialise in the background."""
    services = app[keys.SERVICES]
    channel = TelegramChannel(services)
    if not channel.config.webhook_secret:
        log.error("TELEGRAM_WEBHOOK_SECRET is not set: /telegram refuses every update")
    services.outbox.register(CHANNEL, channel.send)
    app[TELEGRAM] = channel
    channel.start_background()
    try:
        yield
    finally:
        await channel.close()


def setup(app: web.Application) -> None:
    """Mount ``/telegram`` when ``telegram.token`` is configured."""
    if app[keys.SETTINGS].telegram.token:
        mount(app, telegram_ctx, TELEGRAM, [("POST", "/telegram", TelegramChannel.webhook)])


async def poll(services: Services, stop: asyncio.Event | None = None) -> None:
    """Long polling for development (``python -m bot telegram poll``)."""
    channel = TelegramChannel(services, polling=True)
    services.outbox.register(CHANNEL, channel.send)
    await channel.initialize()
    application = channel.application
    await application.bot.delete_webhook()
    assert application.updater is not None
    await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
    await application.start()
    log.info("telegram polling started; Ctrl-C stops")
    print(f"polling as @{application.bot.username}; Ctrl-C stops", flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()


# ---------------------------------------------------------------- reminders


class TelegramReminders:
    """Sends reminders as normal messages with the options as buttons."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bot: Bot | None = None

    async def send(self, chat_id: str, reminder: Reminder) -> None:
        config = self.settings.telegram
        if not config.token:
            raise ReminderSendError("telegram.token (TELEGRAM_TOKEN) is not set")
        try:
            if self._bot is None:
                bot = Bot(config.token, base_url=config.api_base, base_file_url=config.file_base)
                await bot.initialize()
                self._bot = bot
            text, options = reminder.said()
            await self._bot.send_message(int(chat_id), text, reply_markup=keyboard(options))
        except (TgForbidden, TgBadRequest, InvalidToken, ValueError) as exc:
            raise ReminderSendError(f"telegram: {exc.__class__.__name__}: {exc}", permanent=True) from exc
        except TelegramError as exc:
            raise ReminderSendError(f"telegram: {exc.__class__.__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._bot is not None:
            await self._bot.shutdown()
