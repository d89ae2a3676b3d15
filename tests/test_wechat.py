"""The WeChat channel with real protocol payloads against a local server speaking the WeChat API.

Callbacks are signed (and in safe mode encrypted) exactly as WeChat does; the fake API
server records what the bot sent through ``message/custom/send`` and ``menu/create``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.channels.wechat import (
    PHOTO_FAILED_TEXT,
    TEXT_LIMIT_BYTES,
    UNSUPPORTED_TEXT,
    VOICE_NO_TEXT,
    WECHAT,
    WechatChannel,
    parse_xml,
    split_text,
)
from bot.core.messages import Reply
from bot.core.pipeline import NextStep, Turn
from bot.core.storage.models import AuditLog
from tests.channel_fakes import (
    ACCOUNT,
    AES_KEY,
    APP_ID,
    OPENID,
    TOKEN,
    FakeWechat,
    jpeg,
    message_xml,
    passive_text,
    query,
    sign,
    text_xml,
    wechat_settings,
)
from tests.conftest import ROOT, Backends, make_settings
from tests.services import free_port


@pytest.fixture
async def wx(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> Any:
    client = await aiohttp_client(create_app(wechat_settings(tmp_path, clean_backends, fake_wechat)))
    channel(client).retry_delays = (0.01, 0.01)
    return client


def channel(client: Any) -> WechatChannel:
    return client.server.app[WECHAT]


async def post(client: Any, xml: str | bytes, params: dict[str, str] | None = None) -> tuple[int, str]:
    response = await client.post("/wechat", params=params or query(), data=xml,
                                 headers={"Content-Type": "text/xml"})
    return response.status, await response.text()


def slow_middleware(delay: float, calls: list[str]) -> Callable[[Turn, NextStep], Awaitable[None]]:
    async def slow(turn: Turn, next_step: NextStep) -> None:
        calls.append(turn.msg.message_id)
        await asyncio.sleep(delay)
        await next_step()

    return slow


# ---------------------------------------------------------------- verification and security

async def test_url_verification_echoes_echostr(wx: Any) -> None:
    response = await wx.get("/wechat", params={**query(), "echostr": "4913276524"})
    assert response.status == 200
    assert await response.text() == "4913276524"


async def test_forged_signature_is_403_and_nothing_is_processed(wx: Any, fake_wechat: FakeWechat) -> None:
    forged = query(token="not-our-token")
    response = await wx.get("/wechat", params={**forged, "echostr": "x"})
    assert response.status == 403
    status, _ = await post(wx, text_xml("你好"), forged)
    assert status == 403
    status, _ = await post(wx, text_xml("你好"), {k: v for k, v in query().items() if k != "signature"})
    assert status == 403
    services = wx.server.app[keys.SERVICES]
    assert (await services.conversations.load(f"wechat:{OPENID}")).turns == 0
    assert fake_wechat.sent == []


async def test_replayed_timestamp_is_refused(wx: Any) -> None:
    old = query(timestamp=int(time.time()) - 3600)  # correctly signed, an hour old
    status, _ = await post(wx, text_xml("你好"), old)
    assert status == 403
    future = query(timestamp=int(time.time()) + 3600)
    assert (await post(wx, text_xml("你好"), future))[0] == 403
    response = await wx.get("/wechat", params={**old, "echostr": "1"})
    assert response.status == 403
    status, body = await post(wx, text_xml("你好"), query(timestamp=int(time.time()) - 60))
    assert status == 200 and "回复 1" in passive_text(body)


@pytest.mark.parametrize("name, body, status", [
    ("xxe", '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName>"
            "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>", 400),
    ("billion_laughs", '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
     + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
               for i in range(1, 10))
     + f"]><xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName>"
     "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content><MsgId>2</MsgId></xml>", 400),
    ("oversized", "<xml><Content>" + "A" * (200 * 1024) + "</Content></xml>", 413),
    ("not_xml", "this is not xml at all", 400),
    ("wrong_root", "<html><body/></html>", 400),
    ("truncated", f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUser", 400),
    ("no_fields", "<xml><Content>hi</Content></xml>", 400),
])
async def test_hostile_or_broken_xml_gets_a_4xx(wx: Any, fake_wechat: FakeWechat,
                                                name: str, body: str, status: int) -> None:
    got, text = await post(wx, body)
    assert got == status, (name, text)
    assert "passwd" not in text and "root:" not in text
    assert fake_wechat.sent == []


async def test_oversized_body_without_content_length_is_413(wx: Any) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"<xml>" + b"A" * 4096

    response = await wx.post("/wechat", params=query(), data=chunks(), headers={"Content-Type": "text/xml"})
    assert response.status == 413


# ---------------------------------------------------------------- messages

async def test_text_gets_a_passive_reply_with_numbered_options(wx: Any) -> None:
    status, body = await post(wx, text_xml("你好"))
    assert status == 200
    content = passive_text(body)
    assert "认证" in content
    assert "回复 1 怎么认证" in content and "回复 5 转人工" in content


async def test_subscribe_welcomes_with_the_menu_and_unsubscribe_is_quiet(wx: Any, fake_wechat: FakeWechat) -> None:
    status, body = await post(wx, message_xml("event", "<Event><![CDATA[subscribe]]></Event>"))
    assert status == 200
    content = passive_text(body)
    assert "您好" in content and "回复 1 怎么认证" in content
    status, body = await post(wx, message_xml("event", "<Event><![CDATA[unsubscribe]]></Event>"))
    assert (status, body) == (200, "success")
    assert fake_wechat.sent == []


async def test_menu_click_is_answered_like_the_question(wx: Any) -> None:
    _, typed = await post(wx, text_xml("需要带什么材料"))
    _, clicked = await post(wx, message_xml(
        "event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[materials]]></EventKey>"))
    assert "身份证" in passive_text(clicked)
    assert passive_text(clicked).split("\n")[0] == passive_text(typed).split("\n")[0]
    _, upper = await post(wx, message_xml(
        "event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MATERIALS]]></EventKey>",
        create_time=int(time.time()) + 1))
    assert passive_text(upper) == passive_text(clicked)


async def test_voice_uses_recognition_or_asks_to_type(wx: Any) -> None:
    _, typed = await post(wx, text_xml("需要带什么材料"))
    _, spoken = await post(wx, message_xml(
        "voice", "<MediaId><![CDATA[voice-1]]></MediaId><Format><![CDATA[amr]]></Format>"
                 "<Recognition><![CDATA[需要带什么材料]]></Recognition>"))
    assert passive_text(spoken) == passive_text(typed)
    _, unrecognised = await post(wx, message_xml(
        "voice", "<MediaId><![CDATA[voice-2]]></MediaId><Format><![CDATA[amr]]></Format>"))
    assert passive_text(unrecognised) == VOICE_NO_TEXT
    assert "打字" in VOICE_NO_TEXT and "照片" in VOICE_NO_TEXT


async def test_other_message_types_get_a_polite_note(wx: Any) -> None:
    _, body = await post(wx, message_xml(
        "location", "<Location_X>36.6</Location_X><Location_Y>101.7</Location_Y><Scale>15</Scale>"
                    "<Label><![CDATA[西宁]]></Label>"))
    assert passive_text(body) == UNSUPPORTED_TEXT


async def test_image_is_downloaded_and_reaches_the_pipeline(wx: Any, fake_wechat: FakeWechat) -> None:
    photo = jpeg()
    fake_wechat.media["media-abc"] = photo
    seen: list[bytes | None] = []

    async def spy(turn: Turn, next_step: NextStep) -> None:
        seen.append(turn.msg.image)
        await next_step()

    services = wx.server.app[keys.SERVICES]
    services.pipeline.middlewares.insert(0, spy)
    status, body = await post(wx, message_xml(
        "image", "<PicUrl><![CDATA[http://mmbiz.example/x.jpg]]></PicUrl><MediaId><![CDATA[media-abc]]></MediaId>"))
    assert (status, body) == (200, "success")  # photos always take the customer-service way
    await channel(wx).drain()
    assert fake_wechat.media_requests == ["media-abc"]
    assert seen == [photo]
    texts = fake_wechat.texts()
    assert len(texts) == 1 and texts[0]
    conv = await services.conversations.load(f"wechat:{OPENID}")
    assert conv.transcript[0]["text"] == "[照片]"


async def test_deferred_turn_goes_through_the_customer_service_api(wx: Any, fake_wechat: FakeWechat) -> None:
    async def defer(turn: Turn, next_step: NextStep) -> None:
        await next_step()
        turn.deferred = True  # as the face flow does while a verification runs

    wx.server.app[keys.SERVICES].pipeline.middlewares.insert(0, defer)
    status, body = await post(wx, text_xml("你好"))
    assert (status, body) == (200, "success")
    await channel(wx).drain()
    assert len(fake_wechat.texts()) == 1 and "回复 1" in fake_wechat.texts()[0]


# ---------------------------------------------------------------- the 5-second rule and retries

async def test_slow_answer_goes_through_the_customer_service_api(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"wechat.passive_reply_budget_s": 0.2})
    client = await aiohttp_client(create_app(settings))
    calls: list[str] = []
    client.server.app[keys.SERVICES].pipeline.middlewares.insert(0, slow_middleware(1.0, calls))
    started = time.monotonic()
    status, body = await post(client, text_xml("需要带什么材料"))
    assert (status, body) == (200, "success")
    assert time.monotonic() - started < 0.9  # answered before the pipeline finished
    assert fake_wechat.sent == []
    await channel(client).drain()
    texts = fake_wechat.texts()
    assert len(texts) == 1 and "身份证" in texts[0]
    assert fake_wechat.sent[0]["msgtype"] == "text"


async def test_triple_delivery_is_processed_and_answered_once(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"wechat.passive_reply_budget_s": 0.3})
    client = await aiohttp_client(create_app(settings))
    calls: list[str] = []
    # right after de-duplication: what reaches it is processed
    client.server.app[keys.SERVICES].pipeline.middlewares.insert(1, slow_middleware(0.8, calls))
    xml = text_xml("怎么认证", msg_id="6912345678901234567")
    # WeChat retries while the first delivery is still being processed, then once more later.
    first, second = await asyncio.gather(post(client, xml, query()), post(client, xml, query()))
    await channel(client).drain()
    third = await post(client, xml, query())
    bodies = [first[1], second[1], third[1]]
    assert all(status == 200 for status, _ in (first, second, third))
    passive = [b for b in bodies if b != "success"]
    assert calls == ["6912345678901234567"]  # processed once
    assert len(passive) + len(fake_wechat.sent) == 1  # answered once


async def test_repeated_event_is_answered_once(wx: Any, fake_wechat: FakeWechat) -> None:
    xml = message_xml("event", "<Event><![CDATA[subscribe]]></Event>", create_time=int(time.time()))
    bodies = [(await post(wx, xml))[1] for _ in range(3)]
    await channel(wx).drain()
    assert sum(b != "success" for b in bodies) + len(fake_wechat.sent) == 1


# ---------------------------------------------------------------- access token and outbox

async def test_token_is_cached_and_refreshed_on_40001(wx: Any, fake_wechat: FakeWechat) -> None:
    services = wx.server.app[keys.SERVICES]
    await services.push(f"wechat:{OPENID}", [Reply("第一条")])
    await services.push(f"wechat:{OPENID}", [Reply("第二条")])
    assert len(fake_wechat.tokens_issued) == 1  # cached in Redis
    first_token = fake_wechat.tokens_issued[0]
    assert await services.redis.get(f"wechat:access_token:{APP_ID}") == first_token.encode()
    fake_wechat.invalid_tokens.add(first_token)  # e.g. another system fetched a new token
    await services.push(f"wechat:{OPENID}", [Reply("第三条", ["好的"])])
    assert len(fake_wechat.tokens_issued) == 2
    assert fake_wechat.texts() == ["第一条", "第二条", "第三条\n\n回复 1 好的"]
    assert fake_wechat.sent[-1]["_token"] == fake_wechat.tokens_issued[1]
    assert await services.redis.get(f"wechat:access_token:{APP_ID}") == fake_wechat.tokens_issued[1].encode()


async def test_one_refresher_at_a_time(wx: Any, fake_wechat: FakeWechat) -> None:
    fake_wechat.token_delay_s = 0.2
    api = channel(wx).api
    tokens = await asyncio.gather(*(api.access_token() for _ in range(8)))
    assert len(set(tokens)) == 1
    assert len(fake_wechat.tokens_issued) == 1


async def test_outbox_retries_then_records_a_persistent_failure(wx: Any, fake_wechat: FakeWechat) -> None:
    services = wx.server.app[keys.SERVICES]
    fake_wechat.send_errors = [-1, 45009]  # system busy, then rate limited: retried
    await services.push(f"wechat:{OPENID}", [Reply("核验结果：通过")])
    assert fake_wechat.texts() == ["核验结果：通过"]
    fake_wechat.send_errors = [45015]  # the 48-hour window has closed: not retried
    await services.push(f"wechat:{OPENID}", [Reply("工作人员回复：请明天再试")])
    assert fake_wechat.send_errors == [] and len(fake_wechat.sent) == 1
    async with services.db.session() as session:
        rows = list(await session.scalars(select(AuditLog).where(AuditLog.action == "send_failed")))
    assert len(rows) == 1
    assert rows[0].target == f"wechat:{OPENID}" and rows[0].details["errcode"] == 45015


async def test_long_reply_is_split_within_the_size_limit(wx: Any, fake_wechat: FakeWechat) -> None:
    services = wx.server.app[keys.SERVICES]
    text = "\n".join(f"第{i}条：请带好身份证和社保卡，到社区服务中心办理。" for i in range(120))
    await services.push(f"wechat:{OPENID}", [Reply(text)])
    texts = fake_wechat.texts()
    assert len(texts) > 1
    assert all(len(t.encode()) <= TEXT_LIMIT_BYTES for t in texts)
    assert "\n".join(texts) == text


def test_split_text_cuts_long_lines_by_bytes() -> None:
    pieces = split_text("认" * 2000 + "\n好")
    assert all(len(p.encode()) <= TEXT_LIMIT_BYTES for p in pieces)
    assert "".join(pieces).replace("\n", "") == "认" * 2000 + "好"
    assert split_text("短消息") == ["短消息"]


async def test_api_errors_do_not_crash_the_callback(wx: Any, fake_wechat: FakeWechat) -> None:
    status, body = await post(wx, message_xml("image", "<MediaId><![CDATA[no-such-media]]></MediaId>"))
    assert (status, body) == (200, "success")
    await channel(wx).drain()
    assert fake_wechat.texts() == [PHOTO_FAILED_TEXT]  # the user hears that something went wrong


# ---------------------------------------------------------------- safe mode

@pytest.fixture
async def wx_safe(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> Any:
    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"wechat.aes_key": AES_KEY})
    return await aiohttp_client(create_app(settings))


def encrypted_post(xml: str) -> tuple[dict[str, str], str]:
    from wechatpy.crypto import WeChatCrypto

    params = query()
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(xml, params["nonce"], params["timestamp"])
    fields = parse_xml(envelope.encode())
    params.update({"encrypt_type": "aes", "msg_signature": fields["MsgSignature"]})
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{fields['Encrypt']}]]></Encrypt></xml>")
    return params, body


async def test_safe_mode_decrypts_and_encrypts(wx_safe: Any) -> None:
    from wechatpy.crypto import WeChatCrypto

    params, body = encrypted_post(text_xml("你好"))
    status, answer = await post(wx_safe, body, params)
    assert status == 200
    envelope = parse_xml(answer.encode())
    assert set(envelope) >= {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        answer, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
    assert "回复 1 怎么认证" in passive_text(plain)


async def test_safe_mode_refuses_a_wrong_msg_signature_or_ciphertext(wx_safe: Any) -> None:
    params, body = encrypted_post(text_xml("你好"))
    assert (await post(wx_safe, body, {**params, "msg_signature": "0" * 40}))[0] == 403
    for size in (16, 32, 48, 64, 80, 96) * 4:  # random ciphertexts fail in many different ways
        params, _ = encrypted_post(text_xml("你好"))
        encrypt = base64.b64encode(os.urandom(size)).decode()
        params["msg_signature"] = sign(TOKEN, params["timestamp"], params["nonce"], encrypt)
        garbage = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        assert (await post(wx_safe, garbage, params))[0] == 400


# ---------------------------------------------------------------- menu

async def test_menu_is_published_from_config(wx: Any, fake_wechat: FakeWechat) -> None:
    from bot.channels.wechat_api import publish_menu

    services = wx.server.app[keys.SERVICES]
    await publish_menu(services.settings, services.redis)
    assert fake_wechat.menus == [{"button": services.settings.wechat.menu}]
    names = [b["name"] for b in fake_wechat.menus[0]["button"]]
    assert len(names) == 3
    keys_ = {s["key"] for b in fake_wechat.menus[0]["button"] for s in b["sub_button"]}
    assert {"certify_now", "cert_failed", "family_certification", "human_handoff"} <= keys_


@pytest.mark.slow
async def test_wechat_menu_command(fake_wechat: FakeWechat, tmp_path: Path, clean_backends: Backends) -> None:
    env = dict(os.environ, WECHAT_TOKEN=TOKEN, WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET="s3cret",
               WECHAT_API_BASE=str(fake_wechat.server.make_url("/cgi-bin/")),  # type: ignore[attr-defined]
               REDIS_URL=clean_backends.redis_url, DATABASE_URL=clean_backends.database_url,
               BOT_DATA_DIR=str(tmp_path / "var"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "wechat", "menu", cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "menu published" in out.decode()
    assert len(fake_wechat.menus) == 1 and len(fake_wechat.menus[0]["button"]) == 3


async def test_channel_is_off_without_a_token(client: Any) -> None:
    response = await client.post("/wechat", data="<xml/>")
    assert response.status in (404, 405)


async def test_unreachable_api_does_not_stop_the_channel(aiohttp_client: Any, tmp_path: Path,
                                                        clean_backends: Backends) -> None:
    settings = make_settings(tmp_path, clean_backends, **{
        "wechat.token": TOKEN, "wechat.app_id": APP_ID, "wechat.app_secret": "s3cret",
        "wechat.api_base": f"http://127.0.0.1:{free_port()}/cgi-bin/"})
    client = await aiohttp_client(create_app(settings))  # no network needed to start
    channel(client).retry_delays = (0.01,)
    status, body = await post(client, text_xml("你好"))
    assert status == 200 and "回复 1" in passive_text(body)  # passive replies need no API
    services = client.server.app[keys.SERVICES]
    await services.push(f"wechat:{OPENID}", [Reply("核验结果")])
    async with services.db.session() as session:
        rows = list(await session.scalars(select(AuditLog).where(AuditLog.action == "send_failed")))
    assert len(rows) == 1 and rows[0].details["errcode"] == 0


async def test_verification_without_echostr_is_400(wx: Any) -> None:
    response = await wx.get("/wechat", params=query())
    assert response.status == 400
