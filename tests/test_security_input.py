"""Security review (issue 15), findings 2, 3, 4, 7 and 11 (user id): each test failed before its fix.

WeChat signatures cannot be replayed with another body, safe mode refuses plaintext, dedup
keys belong to one user, text that is not UTF-8 never reaches storage, a failing turn frees
its chat, malformed headers and deep JSON are 4xx, and the bot token never reaches the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from sqlalchemy import func, select
from wechatpy.crypto import WeChatCrypto

from bot import keys
from bot.app import create_app
from bot.channels.telegram import TELEGRAM, TelegramChannel
from bot.channels.wechat import TOO_LONG_TEXT, WECHAT, WechatChannel, parse_xml
from bot.core.errors import ConfigError
from bot.core.logs import JsonFormatter
from bot.core.messages import InboundMessage, Reply
from bot.core.pipeline import NextStep, Turn
from bot.core.storage.models import Case
from bot.services import Services
from tests.channel_fakes import (
    ACCOUNT,
    AES_KEY,
    APP_ID,
    BOT_TOKEN,
    SECRET,
    TOKEN,
    FakeTelegram,
    FakeWechat,
    base_url,
    message_update,
    passive_text,
    query,
    telegram_settings,
    text_xml,
    wechat_settings,
)
from tests.conftest import Backends, TestBot
from tests.webchat import web_id

OTHER_OPENID = "oOther_zyxwvutsrqponmlk9876"


async def wechat_client(aiohttp_client: Any, tmp_path: Path, backends: Backends, fake: FakeWechat,
                        **overrides: Any) -> Any:
    client = await aiohttp_client(create_app(wechat_settings(tmp_path, backends, fake, **overrides)))
    client.server.app[WECHAT].retry_delays = (0.01,)
    return client


async def telegram_client(aiohttp_client: Any, tmp_path: Path, backends: Backends,
                          fake: FakeTelegram) -> Any:
    client = await aiohttp_client(create_app(telegram_settings(tmp_path, backends, base_url(fake))))
    await asyncio.wait_for(client.server.app[TELEGRAM].ready.wait(), 20)
    return client


async def post_xml(client: Any, body: str, params: dict[str, str]) -> tuple[int, str]:
    response = await client.post("/wechat", params=params, data=body, headers={"Content-Type": "text/xml"})
    return response.status, await response.text()


def encrypted(xml: str, params: dict[str, str]) -> tuple[dict[str, str], str]:
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(xml, params["nonce"], params["timestamp"])
    fields = parse_xml(envelope.encode())
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{fields['Encrypt']}]]></Encrypt></xml>")
    return {**params, "encrypt_type": "aes", "msg_signature": fields["MsgSignature"]}, body


def decrypted(answer: str) -> str:
    envelope = parse_xml(answer.encode())
    assert "Encrypt" in envelope, answer
    return str(WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        answer, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]))


# ---------------------------------------------------------------- 2: WeChat replay and downgrade

async def test_a_signed_query_carries_one_body_only(aiohttp_client: Any, tmp_path: Path,
                                                    clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    client = await wechat_client(aiohttp_client, tmp_path, clean_backends, fake_wechat)
    signed = query()
    first = text_xml("你好", msg_id="7000000000000000001")
    status, answer = await post_xml(client, first, signed)
    assert status == 200 and "回复 1" in passive_text(answer)
    # The same signature with another body (another sender, another text): refused.
    for body in (text_xml("怎么认证", openid=OTHER_OPENID), text_xml("转人工", msg_id="7000000000000000002")):
        status, _ = await post_xml(client, body, signed)
        assert status == 403
    # WeChat's own redelivery (same query, same body) is still accepted and answered once.
    status, again = await post_xml(client, first, signed)
    assert status == 200 and again == "success"
    await client.server.app[WECHAT].drain()
    assert fake_wechat.sent == []
    conversations = client.server.app[keys.SERVICES].conversations
    assert (await conversations.load(f"wechat:{OTHER_OPENID}")).turns == 0


async def test_safe_mode_refuses_plaintext_and_encrypts_every_reply(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    client = await wechat_client(aiohttp_client, tmp_path, clean_backends, fake_wechat,
                                 **{"wechat.aes_key": AES_KEY, "wechat.encoding_mode": "safe"})
    assert client.server.app[WECHAT].mode == "safe"
    status, _ = await post_xml(client, text_xml("你好"), query())
    assert status == 403  # the downgrade is refused
    params, body = encrypted(text_xml("你好"), query())
    status, answer = await post_xml(client, body, params)
    assert status == 200 and "回复 1" in passive_text(decrypted(answer))
    params, body = encrypted(text_xml("长" * 2100), query())  # refused as too long: encrypted too
    status, answer = await post_xml(client, body, params)
    assert status == 200 and passive_text(decrypted(answer)) == TOO_LONG_TEXT


async def test_encoding_mode_defaults_keep_the_old_behaviour(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    compat = await wechat_client(aiohttp_client, tmp_path, clean_backends, fake_wechat,
                                 **{"wechat.aes_key": AES_KEY})
    assert compat.server.app[WECHAT].mode == "compat"
    status, answer = await post_xml(compat, text_xml("你好"), query())
    assert status == 200 and "回复 1" in passive_text(answer)  # plaintext, answered in plaintext
    plain = wechat_settings(tmp_path, clean_backends, fake_wechat)
    assert plain.wechat.mode == "plain"
    unsafe = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"wechat.encoding_mode": "safe"})
    async with _started(unsafe) as services:
        with pytest.raises(ConfigError, match="aes_key"):
            WechatChannel(services, api=None)  # type: ignore[arg-type]


def _started(settings: Any) -> Any:
    from bot.app import started

    return started(settings)


async def test_malformed_wechat_signatures_are_403_not_500(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    client = await wechat_client(aiohttp_client, tmp_path, clean_backends, fake_wechat)
    ts = str(int(time.time()))
    for raw in (f"signature=%FF%FE&timestamp={ts}&nonce=abc", f"signature=abc&timestamp={ts}&nonce=%E4%B8%AD",
                f"signature=%00&timestamp=%C3%A9{ts}&nonce=n"):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/wechat?{raw}&echostr=x", data=text_xml("你好"))
            body = await response.text()
            assert response.status == 403, (raw, body)
            assert "Traceback" not in body


# ---------------------------------------------------------------- 3: dedup per user

async def test_a_message_id_never_returns_another_users_answer(client: Any) -> None:
    first = await client.post("/api/chat", json={"user_id": await web_id(client, "alice"), "text": "需要带什么材料",
                                                 "message_id": "m-1"})
    alice = (await first.json())["replies"]
    second = await client.post("/api/chat", json={"user_id": await web_id(client, "bob"), "text": "你好", "message_id": "m-1"})
    bob = (await second.json())["replies"]
    assert bob != alice and "身份证" in alice[0]["text"]
    retry = await client.post("/api/chat", json={"user_id": await web_id(client, "bob"), "text": "你好", "message_id": "m-1"})
    assert (await retry.json())["replies"] == bob  # a retry still gets its own first answer


# ---------------------------------------------------------------- 4: bad input never reaches storage

def _redis_keys(backends: Backends) -> list[bytes]:
    return list(sync_redis.Redis.from_url(backends.redis_url).keys("*"))


async def _cases(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Case)) or 0)


async def test_lone_surrogate_on_the_web_is_400_and_nothing_is_written(
        client: Any, clean_backends: Backends) -> None:
    services = client.server.app[keys.SERVICES]
    eve = await web_id(client, "eve")  # issuing the id writes the signing secret once
    before = _redis_keys(clean_backends)
    for payload in ({"user_id": eve, "text": "转人工\udc00"},
                    {"user_id": eve, "text": "你好", "message_id": "id\ud800"}):
        response = await client.post("/api/chat", json=payload)  # json.dumps escapes it as \\udc00
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_text"
    assert _redis_keys(clean_backends) == before
    assert await _cases(services) == 0
    ok = await client.post("/api/chat", json={"user_id": eve, "text": "你好"})
    assert ok.status == 200  # and the chat is not locked


async def test_lone_surrogate_on_telegram_and_wechat_is_400(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram,
        fake_wechat: FakeWechat) -> None:
    tg = await telegram_client(aiohttp_client, tmp_path, clean_backends, fake_telegram)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    response = await tg.post("/telegram", json=message_update(text="转人工\udc00"), headers=headers)
    assert response.status == 400 and (await response.json())["error"] == "invalid_text"
    assert await _cases(tg.server.app[keys.SERVICES]) == 0
    assert fake_telegram.sent() == []
    wx = await wechat_client(aiohttp_client, tmp_path, clean_backends, fake_wechat)
    # Raw surrogate bytes are not UTF-8: 400; a character reference never gives a 500.
    for content, statuses in (("转人工\udc00", (400,)),):
        body = text_xml(content).encode("utf-8", "surrogatepass")
        response = await wx.post("/wechat", params=query(), data=body, headers={"Content-Type": "text/xml"})
        assert response.status in statuses
        await wx.server.app[WECHAT].drain()
    assert await _cases(wx.server.app[keys.SERVICES]) == 0


async def test_a_failing_turn_releases_the_lock_and_the_dedup_marker(services: Services) -> None:
    services.settings.conversation.user_lock_timeout_s = 3
    broken: list[bool] = [True]

    async def unsavable(turn: Turn, next_step: NextStep) -> None:  # a bug: a reply Redis cannot take
        await next_step()
        if broken[0]:
            turn.replies.append(Reply("坏\udc00"))

    assert services.pipeline is not None
    services.pipeline.middlewares.insert(len(services.pipeline.middlewares), unsavable)
    bot = TestBot(services, channel="web")
    msg = InboundMessage("web", bot.user_id, "retry-me", text="你好")
    with pytest.raises(Exception):  # noqa: B017 - whatever the failure, the chat must be free
        await services.handle(msg)
    assert not await services.redis.exists(f"lock:{bot.key}")
    assert not await services.redis.exists(f"dedup:web:{bot.user_id}:retry-me")
    broken[0] = False
    started = time.monotonic()
    turn = await services.handle(msg)  # the platform's retry is processed, at once
    assert time.monotonic() - started < 1.0
    assert turn.outcome != "duplicate" and turn.replies


async def test_deep_json_and_odd_headers_are_4xx_without_traceback(
        aiohttp_client: Any, client: Any, tmp_path: Path, clean_backends: Backends,
        fake_telegram: FakeTelegram) -> None:
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * 100_000):
        response = await client.post("/api/chat", data=deep, headers={"Content-Type": "application/json"})
        text = await response.text()
        assert response.status == 400 and "Traceback" not in text
        assert (await response.json())["error"] == "invalid_json"
    tg = await telegram_client(aiohttp_client, tmp_path, clean_backends, fake_telegram)
    response = await tg.post("/telegram", data=b"[" * 100_000,
                             headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                      "Content-Type": "application/json"})
    assert response.status == 400
    for secret in ("密钥", SECRET + "é", "\u00ff" * 30):
        response = await tg.post("/telegram", json=message_update(text="你好"),
                                 headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        text = await response.text()
        assert response.status == 403, text
        assert "Traceback" not in text
    assert fake_telegram.sent() == []


async def test_user_id_with_a_trailing_newline_is_refused(client: Any) -> None:
    response = await client.post("/api/chat", json={"user_id": "alice\n", "text": "你好"})
    assert response.status == 400 and (await response.json())["error"] == "invalid_user_id"
    response = await client.get("/api/chat/updates", params={"user_id": "alice\n"})
    assert response.status == 400


# ---------------------------------------------------------------- 7: no token in the log

async def test_telegram_round_trip_never_logs_the_token(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TelegramChannel, "send_retry_delays", (0.01,))
    caplog.set_level(logging.DEBUG)
    tg = await telegram_client(aiohttp_client, tmp_path, clean_backends, fake_telegram)
    response = await tg.post("/telegram", json=message_update(text="你好"),
                             headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert response.status == 200
    fake_telegram.send_status = 500  # failures are logged too
    await tg.post("/telegram", json=message_update(text="怎么认证"),
                  headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    await asyncio.sleep(0.2)
    assert [name for name, _ in fake_telegram.calls][:1] == ["getMe"]
    assert any(r.name == "bot.turn" for r in caplog.records)  # the capture works
    secret_part = BOT_TOKEN.split(":", 1)[1]
    formatter = JsonFormatter()
    # aiohttp.access lines here are the fake Bot API server's own access log (serve runs
    # without an access log); everything the bot and its libraries logged is checked.
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert any(r.name.startswith("telegram") for r in records)
    for record in records:
        assert secret_part not in record.getMessage(), record.name
        assert secret_part not in formatter.format(record), record.name
