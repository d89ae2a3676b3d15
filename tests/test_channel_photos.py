"""Full-size phone photos through WeChat and Telegram (issue 14).

The photos are made here from the shared faces (never stored in the repository): the
596 KB ``obama3.jpg`` as it is, a 3 MB JPEG re-encoding, a PNG of a few MB and an iPhone
style HEIC. The local fake platform servers send every answer slowly and in small chunks
(``Trickle``), with and without Content-Length, so a client that takes only what has
arrived so far gets a part of the photo. The end-to-end tests run the real model in a
real arq worker and certify a pensioner through each channel.
"""

from __future__ import annotations

import asyncio
import functools
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.channels.telegram import PHOTO_FAILED as TG_PHOTO_FAILED
from bot.channels.telegram import TELEGRAM, TelegramChannel
from bot.channels.wechat import PHOTO_FAILED_TEXT, WECHAT, WechatChannel
from bot.channels.wechat_api import WechatApi, WechatApiError
from bot.core.pipeline import NextStep, Turn
from bot.core.storage.models import AuditLog, CertificationAttempt
from bot.services import Services
from tests.channel_fakes import (
    OPENID,
    FakeTelegram,
    FakeWechat,
    Trickle,
    base_url,
    deliver,
    message_update,
    message_xml,
    passive_text,
    query,
    telegram_settings,
    text_xml,
    wechat_settings,
)
from tests.conftest import Backends, wait_for
from tests.face_support import (
    ID_OBAMA,
    IDENTITY_ONLY,
    enrol_obama,
    needs_model,
    needs_photos,
    photo_bytes,
    run_worker,
)
from tests.webchat import web_id

pytestmark = [needs_photos]
KINDS = ["jpeg", "jpeg_3mb", "png", "heic"]
SLOW = Trickle(chunk=8 * 1024, delay_s=0.001)  # a 3 MB photo arrives in about 400 pieces

# These tests check that photos arrive whole and certify by identity (IDENTITY_ONLY);
# tests/test_liveness.py has the pose challenge.


@functools.cache
def phone_photo(kind: str) -> bytes:
    """A realistic phone photo of the enrolled face, made from ``obama/obama3.jpg``."""
    from PIL import Image

    original = photo_bytes("obama/obama3.jpg")
    if kind == "jpeg":
        assert len(original) > 500_000
        return original
    image = Image.open(io.BytesIO(original))
    image.load()
    buffer = io.BytesIO()
    if kind == "jpeg_3mb":  # a newer phone's camera: twice the pixels, high quality
        image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS).save(
            buffer, format="JPEG", quality=95, subsampling=0)
    elif kind == "png":  # a screenshot-style PNG
        image.save(buffer, format="PNG")
    elif kind == "heic":  # an iPhone photo
        from pillow_heif import register_heif_opener

        register_heif_opener()
        image.save(buffer, format="HEIF", quality=75)
    data = buffer.getvalue()
    low, high = {"jpeg_3mb": (2_500_000, 5_000_000), "png": (1_000_000, 9_000_000),
                 "heic": (200_000, 2_000_000)}[kind]
    assert low <= len(data) <= high, (kind, len(data))
    return data


def spy_images(services: Services) -> list[bytes | None]:
    """The photos that reach the pipeline, in order."""
    seen: list[bytes | None] = []

    async def spy(turn: Turn, next_step: NextStep) -> None:
        seen.append(turn.msg.image)
        await next_step()

    services.pipeline.middlewares.insert(0, spy)
    return seen


async def attempts(services: Services) -> list[CertificationAttempt]:
    async with services.db.session() as session:
        return list(await session.scalars(select(CertificationAttempt)))


# ---------------------------------------------------------------- WeChat


@pytest.fixture
def fake_wechat(fake_wechat: FakeWechat) -> FakeWechat:
    """The shared fake, answering slowly in small pieces."""
    fake_wechat.trickle = Trickle(chunk=SLOW.chunk, delay_s=SLOW.delay_s)
    return fake_wechat


def wechat_channel(client: Any) -> WechatChannel:
    return client.server.app[WECHAT]


@pytest.fixture
async def wx(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> Any:
    client = await aiohttp_client(create_app(wechat_settings(tmp_path, clean_backends, fake_wechat, **IDENTITY_ONLY)))
    channel = wechat_channel(client)
    channel.retry_delays = (0.01, 0.01)
    channel.api.download_retry_delays = (0.01, 0.02)
    return client


async def wx_post(client: Any, xml: str) -> str:
    response = await client.post("/wechat", params=query(), data=xml, headers={"Content-Type": "text/xml"})
    assert response.status == 200
    return await response.text()


def image_xml(media_id: str) -> str:
    return message_xml("image", "<PicUrl><![CDATA[http://mmbiz.qpic.cn/x.jpg]]></PicUrl>"
                                f"<MediaId><![CDATA[{media_id}]]></MediaId>")


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", KINDS)
async def test_wechat_photo_arrives_whole(wx: Any, fake_wechat: FakeWechat, kind: str,
                                          content_length: bool) -> None:
    data = phone_photo(kind)
    fake_wechat.trickle.content_length = content_length
    fake_wechat.media["m-1"] = data
    seen = spy_images(wx.server.app[keys.SERVICES])
    assert await wx_post(wx, image_xml("m-1")) == "success"
    await wechat_channel(wx).drain()
    assert fake_wechat.media_requests == ["m-1"]
    assert len(seen) == 1 and seen[0] is not None
    assert len(seen[0]) == len(data) and seen[0] == data


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_wechat_answer_over_the_limit_is_refused(tmp_path: Path, clean_backends: Backends,
                                                       fake_wechat: FakeWechat, content_length: bool) -> None:
    import aiohttp
    import redis.asyncio as aioredis

    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **IDENTITY_ONLY, **{"face.max_image_bytes": 400_000})
    fake_wechat.trickle.content_length = content_length
    fake_wechat.media["big"] = phone_photo("jpeg")  # 596 KB > 400 KB
    fake_wechat.media["fits"] = phone_photo("jpeg")[:300_000]
    redis = aioredis.Redis.from_url(clean_backends.redis_url)
    async with aiohttp.ClientSession() as session:
        api = WechatApi(settings, redis, session)
        api.download_retry_delays = (0.01,)
        with pytest.raises(WechatApiError) as refused:
            await api.download_media("big")
        assert refused.value.errcode == 40006
        assert fake_wechat.media_requests == ["big"]  # too large is not retried
        assert await api.download_media("fits") == phone_photo("jpeg")[:300_000]
    await redis.aclose()


async def test_wechat_cut_off_download_is_fetched_again(wx: Any, fake_wechat: FakeWechat) -> None:
    data = phone_photo("jpeg")
    fake_wechat.media["m-cut"] = data
    fake_wechat.trickle.cut_next = 1  # WeChat hangs up halfway through the first download
    seen = spy_images(wx.server.app[keys.SERVICES])
    assert await wx_post(wx, image_xml("m-cut")) == "success"
    await wechat_channel(wx).drain()
    assert fake_wechat.media_requests == ["m-cut", "m-cut"]
    assert seen == [data]


async def test_wechat_download_failing_every_time_asks_again_without_a_turn(
        wx: Any, fake_wechat: FakeWechat) -> None:
    fake_wechat.media["m-lost"] = phone_photo("jpeg")
    fake_wechat.trickle.cut_next = 100
    seen = spy_images(wx.server.app[keys.SERVICES])
    assert await wx_post(wx, image_xml("m-lost")) == "success"
    await wechat_channel(wx).drain()
    assert fake_wechat.media_requests == ["m-lost"] * 3  # bounded
    assert seen == []  # nothing reached the dialog, so no attempt can be counted
    assert fake_wechat.texts() == [PHOTO_FAILED_TEXT]
    assert "不算" in PHOTO_FAILED_TEXT and "再发" in PHOTO_FAILED_TEXT


async def _wechat_to_selfie_step(wx: Any) -> None:
    assert "身份证" in passive_text(await wx_post(wx, text_xml("我要刷脸认证")))
    assert "姓名" in passive_text(await wx_post(wx, text_xml(ID_OBAMA)))
    assert "正脸照片" in passive_text(await wx_post(wx, text_xml("欧巴马")))


@needs_model
@pytest.mark.parametrize("kind", KINDS)
async def test_full_size_photo_certifies_through_wechat(wx: Any, fake_wechat: FakeWechat, kind: str) -> None:
    services = wx.server.app[keys.SERVICES]
    pensioner_id = await enrol_obama(services)
    await _wechat_to_selfie_step(wx)
    fake_wechat.media["selfie"] = phone_photo(kind)
    assert await wx_post(wx, image_xml("selfie")) == "success"
    await wechat_channel(wx).drain()
    assert any("正在核验" in t for t in fake_wechat.texts())
    await run_worker(services)  # the app's own consumer pushes the verdict to WeChat
    await wait_for(lambda: any("认证成功" in t for t in fake_wechat.texts()), "the verdict", 30)
    assert [a.decision for a in await attempts(services)] == ["passed"]
    pensioner = await services.registry.get(pensioner_id)
    assert pensioner is not None and pensioner.certified_by == "face:wechat"


@needs_model
async def test_damaged_photo_from_the_platform_does_not_use_an_attempt(
        wx: Any, fake_wechat: FakeWechat) -> None:
    """WeChat hands over a photo that stops halfway (with a matching Content-Length)."""
    services = wx.server.app[keys.SERVICES]
    await enrol_obama(services)
    await _wechat_to_selfie_step(wx)
    whole = phone_photo("jpeg")
    fake_wechat.media["broken"] = whole[:len(whole) // 2]
    assert await wx_post(wx, image_xml("broken")) == "success"
    await wechat_channel(wx).drain()
    await run_worker(services)
    await wait_for(lambda: any("不算次数" in t for t in fake_wechat.texts()), "the request to resend", 30)
    last = fake_wechat.texts()[-1]
    assert "没有完整" in last and "不是照片" not in last and "没有通过" not in last
    assert await attempts(services) == []
    conv = await services.conversations.load(f"wechat:{OPENID}")
    assert conv.frame is not None and conv.frame.state == "selfie"
    async with services.db.session() as session:
        audit = list(await session.scalars(select(AuditLog).where(AuditLog.action == "face_photo_unreadable")))
    assert len(audit) == 1
    # Three real attempts are still left: two wrong faces are counted, then the right one passes.
    fake_wechat.media["wrong"] = photo_bytes("biden/biden2.jpg")
    for _ in range(2):
        await wx_post(wx, image_xml("wrong"))
        await wechat_channel(wx).drain()
        await run_worker(services)
        await wait_for(lambda: "次" in fake_wechat.texts()[-1] and "对不上" in "".join(fake_wechat.texts()[-2:]),
                       "the mismatch", 30)
    assert "今天还可以试 1 次" in fake_wechat.texts()[-1]
    fake_wechat.media["selfie"] = whole
    await wx_post(wx, image_xml("selfie"))
    await wechat_channel(wx).drain()
    await run_worker(services)
    await wait_for(lambda: any("认证成功" in t for t in fake_wechat.texts()), "the verdict", 30)
    assert sorted(a.decision for a in await attempts(services)) == ["failed", "failed", "passed"]


# ---------------------------------------------------------------- Telegram


@pytest.fixture
def fake_telegram(fake_telegram: FakeTelegram) -> FakeTelegram:
    """The shared fake, answering slowly in small pieces."""
    fake_telegram.trickle = Trickle(chunk=SLOW.chunk, delay_s=SLOW.delay_s)
    return fake_telegram


@pytest.fixture
async def tg(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(TelegramChannel, "send_retry_delays", (0.01, 0.01))
    monkeypatch.setattr(TelegramChannel, "download_retry_delays", (0.01, 0.02))
    client = await aiohttp_client(create_app(
        telegram_settings(tmp_path, clean_backends, base_url(fake_telegram), **IDENTITY_ONLY)))
    channel = client.server.app[TELEGRAM]
    await asyncio.wait_for(channel.ready.wait(), 20)
    return client


def photo_update(fake: FakeTelegram, data: bytes, file_id: str = "big") -> dict[str, Any]:
    from PIL import Image

    width, height = Image.open(io.BytesIO(data)).size
    thumb = b"\xff\xd8thumbnail"
    fake.files.update({"thumb": thumb, file_id: data})
    return message_update(photo=[
        {"file_id": "thumb", "file_unique_id": "t", "width": 90, "height": 90, "file_size": len(thumb)},
        {"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": width, "height": height,
         "file_size": len(data)}])


async def _sent_texts(tg: Any) -> list[str]:
    channel: TelegramChannel = tg.server.app[TELEGRAM]
    pending = list(channel._sending.values())
    if pending:
        await asyncio.wait(pending, timeout=10)
    fake: FakeTelegram = tg.fake  # type: ignore[attr-defined]
    return fake.texts()


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", KINDS)
async def test_telegram_photo_arrives_whole(tg: Any, fake_telegram: FakeTelegram, kind: str,
                                            content_length: bool) -> None:
    data = phone_photo(kind)
    fake_telegram.trickle.content_length = content_length
    seen = spy_images(tg.server.app[keys.SERVICES])
    assert await deliver(tg, photo_update(fake_telegram, data)) == 200
    assert fake_telegram.sent("download") == [{"path": "photos/big.jpg"}]
    assert len(seen) == 1 and seen[0] is not None
    assert len(seen[0]) == len(data) and seen[0] == data


async def test_telegram_cut_off_download_is_fetched_again(tg: Any, fake_telegram: FakeTelegram) -> None:
    data = phone_photo("jpeg")
    fake_telegram.trickle.cut_next = 1
    seen = spy_images(tg.server.app[keys.SERVICES])
    assert await deliver(tg, photo_update(fake_telegram, data)) == 200
    assert len(fake_telegram.sent("download")) == 2
    assert seen == [data]


async def test_telegram_download_failing_every_time_asks_again(tg: Any, fake_telegram: FakeTelegram) -> None:
    tg.fake = fake_telegram
    fake_telegram.trickle.cut_next = 100
    seen = spy_images(tg.server.app[keys.SERVICES])
    assert await deliver(tg, photo_update(fake_telegram, phone_photo("jpeg"))) == 200
    assert len(fake_telegram.sent("download")) == 3  # bounded
    assert seen == []
    assert await _sent_texts(tg) == [TG_PHOTO_FAILED]
    assert "不算" in TG_PHOTO_FAILED


@needs_model
@pytest.mark.parametrize("kind", ["jpeg", "jpeg_3mb"])
async def test_full_size_photo_certifies_through_telegram(tg: Any, fake_telegram: FakeTelegram,
                                                          kind: str) -> None:
    tg.fake = fake_telegram
    services = tg.server.app[keys.SERVICES]
    pensioner_id = await enrol_obama(services)
    for text, expected in (("我要刷脸认证", "身份证"), (ID_OBAMA, "姓名"), ("欧巴马", "正脸照片")):
        assert await deliver(tg, message_update(text=text)) == 200
        assert expected in (await _sent_texts(tg))[-1]
    assert await deliver(tg, photo_update(fake_telegram, phone_photo(kind))) == 200
    assert "正在核验" in (await _sent_texts(tg))[-1]
    await run_worker(services)
    await wait_for(lambda: any("认证成功" in t for t in fake_telegram.texts()), "the verdict", 30)
    assert [a.decision for a in await attempts(services)] == ["passed"]
    pensioner = await services.registry.get(pensioner_id)
    assert pensioner is not None and pensioner.certified_by == "face:telegram"


# ---------------------------------------------------------------- the reading helper


async def test_read_limited_takes_compressed_answers_and_refuses_big_ones(aiohttp_server: Any) -> None:
    """A gzip answer's Content-Length is the compressed size: not taken for a cut-off body."""
    import aiohttp
    from aiohttp import web

    from bot.channels.reading import AnswerTooLarge, read_limited

    payload = b'{"access_token": "' + b"A" * 200_000 + b'", "expires_in": 7200}'

    async def compressed(request: web.Request) -> web.Response:
        response = web.Response(body=payload, content_type="application/json")
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_get("/gz", compressed)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/gz")) as response:
            assert response.headers.get("Content-Encoding") == "gzip"
            assert await read_limited(response, 1024 * 1024) == payload
        async with session.get(server.make_url("/gz")) as response:
            with pytest.raises(AnswerTooLarge):  # the decoded size counts, not the wire size
                await read_limited(response, 100_000)


# ---------------------------------------------------------------- the web chat


@pytest.mark.parametrize("kind", ["jpeg_3mb", "heic"])
async def test_web_upload_arrives_whole(client: Any, kind: str) -> None:
    from aiohttp import FormData

    data = phone_photo(kind)
    seen = spy_images(client.server.app[keys.SERVICES])
    form = FormData()
    form.add_field("user_id", await web_id(client, "photo-web-1"))
    form.add_field("image", data, filename=f"selfie.{kind}", content_type="image/jpeg")
    response = await client.post("/api/chat", data=form)
    assert response.status == 200
    assert seen == [data]
