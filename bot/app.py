"""Application assembly: one aiohttp app, one lifecycle (``cleanup_ctx``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from bot import face_service, family_reminders, keys, metrics_view
from bot.channels import telegram as telegram_channel
from bot.channels import web as web_channel
from bot.channels import wechat as wechat_channel
from bot.client_address import ClientAddresses
from bot.core.config import Settings
from bot.core.conversation import ConversationStore
from bot.core.errors import BadRequest, BotError
from bot.core.facts import facts_for
from bot.core.i18n import BO, ZH, render, tr
from bot.core.outbox import Outbox
from bot.core.storage.db import Database, migrate
from bot.core.storage.redis import EmbeddedRedis, make_client
from bot.records.cases import HandoffService
from bot.records.pensioners import PensionerRegistry, seed_demo
from bot.services import Services, build_dialogs, build_nlu, build_pipeline
from bot.staff import web as staff_console
from faq.knowledge import KnowledgeBase

log = logging.getLogger(__name__)
Feature = Callable[[web.Application], None]


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """The one place that maps errors to HTTP answers (JSON for APIs)."""
    language = _reader_language(request)
    try:
        return await handler(request)
    except BotError as exc:
        if exc.status >= 500:
            log.error("request failed: %s %s", exc.code, exc.detail, extra={"path": request.path})
        said = render(exc.user_message, language)
        body: dict[str, object] = {"error": exc.code, "message": said}
        if request.path.startswith("/api/chat"):
            body["replies"] = [{"text": said, "options": []}]
        return web.json_response(body, status=exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400 and (request.path.startswith("/api/") or exc.status == 413):
            message = {413: tr("内容太大了"), 404: tr("没有这个地址"), 405: tr("不支持这个方法")}.get(
                exc.status, tr("请求有误"))
            return web.json_response({"error": exc.reason.lower().replace(" ", "_"),
                                      "message": render(message, language)}, status=exc.status)
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return web.json_response({"error": "internal_error",
                                  "message": render(tr("系统出了点问题，请稍后再试。"), language)},
                                 status=500)


def _reader_language(request: web.Request) -> str:
    """The language an API error is said in: Tibetan when the client asks for it first
    (``Accept-Language: bo``, as the web chat page does in a Tibetan chat), else Chinese."""
    first = request.headers.get("Accept-Language", "").split(",")[0].strip().lower()
    return BO if first.split("-")[0] == BO else ZH


def secure_data_dir(settings: Settings) -> None:
    """``data_dir`` 0700 and the SQLite file 0600: they hold ID and phone numbers."""
    data_dir = settings.storage.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    if not settings.storage.database_url:
        database = data_dir / "bot.sqlite3"
        os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(database, 0o600)


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis (embedded or configured), the database, NLU and the pipeline."""
    settings = app[keys.SETTINGS]
    secure_data_dir(settings)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.storage.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.storage.data_dir)
        await asyncio.to_thread(embedded.start)
        app[keys.EMBEDDED_REDIS] = embedded
        redis_url = embedded.url
    redis = make_client(redis_url, settings.storage.redis_timeout_s)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    try:
        await asyncio.to_thread(migrate, settings.database_url)
    except Exception as exc:  # noqa: BLE001 - start-up must say why
        log.error("database migration failed: %s", exc)
        raise
    nlu = build_nlu(settings)
    await nlu.start()
    services = Services(
        settings=settings, redis=redis, db=db,
        conversations=ConversationStore(redis, settings.conversation.idle_timeout_s),
        outbox=Outbox(redis), nlu=nlu, faq=KnowledgeBase(facts=facts_for(settings)), dialogs=build_dialogs(),
        handoff=HandoffService(settings, db, redis),
        registry=PensionerRegistry(settings, db, redis),
    )
    supervisor = asyncio.create_task(embedded.supervise(), name="embedded-redis") if embedded else None
    if settings.demo:
        await seed_demo(services.registry)
    services.pipeline = build_pipeline(services)
    app[keys.SERVICES] = services
    log.info("started", extra={"redis": "embedded" if embedded else "server",
                               "database": db.engine.dialect.name, "nlu": nlu.name})
    yield
    if supervisor is not None:
        supervisor.cancel()
    await nlu.close()
    await redis.aclose()
    await db.dispose()
    if embedded is not None:
        await asyncio.to_thread(embedded.stop)


async def healthz(request: web.Request) -> web.Response:
    """200 when Redis and the database answer, else 503; JSON either way."""
    services = request.app[keys.SERVICES]
    try:
        redis_ok = bool(await asyncio.wait_for(services.redis.ping(), timeout=2))
    except Exception:  # noqa: BLE001 - any failure means down
        redis_ok = False
    db_ok = await services.db.ping()
    body: dict[str, object] = {"status": "ok" if redis_ok and db_ok else "degraded",
                               "redis": "up" if redis_ok else "down", "database": "up" if db_ok else "down"}
    embedded = request.app.get(keys.EMBEDDED_REDIS)
    if embedded is not None:  # the supervised embedded server: how often it was restarted
        body["redis_restarts"] = embedded.restarts
    return web.json_response(body, status=200 if redis_ok and db_ok else 503)


def default_features() -> list[Feature]:
    """Route sets mounted on the app; each channel/console adds one."""
    return [web_channel.setup, face_service.setup, wechat_channel.setup, telegram_channel.setup,
            staff_console.setup, metrics_view.setup, family_reminders.setup]


def create_app(settings: Settings, features: list[Feature] | None = None) -> web.Application:
    """Build the aiohttp application. Nothing connects until the app starts."""
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=settings.server.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.CLIENT_ADDRESSES] = ClientAddresses(settings.web_chat)
    app.cleanup_ctx.append(storage_ctx)
    app.router.add_get("/healthz", healthz)
    for feature in features if features is not None else default_features():
        feature(app)
    return app


def json_body_error(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid_json", user_message=tr("请求格式不对。"))


@asynccontextmanager
async def started(settings: Settings, features: Sequence[Feature] = ()) -> AsyncIterator[Services]:
    """Run the app's lifecycle without an HTTP listener (CLI chat, workers, tests)."""
    app = create_app(settings, features=list(features))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app[keys.SERVICES]
    finally:
        await runner.cleanup()
