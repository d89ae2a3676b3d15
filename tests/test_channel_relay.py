"""Staff relay on WeChat and Telegram, and platform sends that fail or are slow (issues 7, 8).

One app with both channels, each pointed at a local server speaking its platform's API
(tests/channel_fakes.py). The user side goes through signed ``/wechat`` XML and Telegram
``Update`` JSON; the staff side through the console API.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import keys
from bot.app import create_app
from bot.channels.telegram import TELEGRAM, TelegramChannel
from bot.channels.wechat import WECHAT, WechatChannel
from bot.staff.desk import GREETING
from bot.staff.web import AUTH
from tests.channel_fakes import (
    APP_ID,
    BOT_TOKEN,
    CHAT,
    OPENID,
    SECRET,
    TOKEN,
    FakeTelegram,
    FakeWechat,
    base_url,
    buttons,
    callback_update,
    deliver,
    message_update,
    passive_text,
    query,
    text_xml,
    wechat_settings,
)
from tests.conftest import ROOT, Backends
from tests.services import free_port

PASSWORD = "secret-pass-1"
RETRY_DELAYS = (0.05, 0.1, 0.2)


@pytest.fixture
async def app_client(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat,
                     fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server with WeChat and Telegram on, retries short enough for tests."""
    monkeypatch.setattr(TelegramChannel, "send_retry_delays", RETRY_DELAYS)
    tg_base = base_url(fake_telegram)
    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{
        "wechat.passive_reply_budget_s": 0.5,
        "telegram.token": BOT_TOKEN, "telegram.webhook_secret": SECRET,
        "telegram.api_base": f"{tg_base}/bot", "telegram.file_base": f"{tg_base}/file/bot"})
    client = await aiohttp_client(create_app(settings))
    wechat(client).retry_delays = RETRY_DELAYS
    await asyncio.wait_for(telegram(client).ready.wait(), 20)
    return client


def wechat(client: Any) -> WechatChannel:
    return client.server.app[WECHAT]


def telegram(client: Any) -> TelegramChannel:
    return client.server.app[TELEGRAM]


async def post(client: Any, xml: str) -> tuple[int, str, float]:
    """A signed WeChat callback: status, body and how long the answer took."""
    started = time.monotonic()
    response = await client.post("/wechat", params=query(), data=xml, headers={"Content-Type": "text/xml"})
    body = await response.text()
    return response.status, body, time.monotonic() - started


async def staff_client(aiohttp_client: Any, client: Any, username: str, role: str = "agent") -> Any:
    """A logged-in staff browser of its own (cookie jar) on the same server."""
    app: web.Application = client.server.app
    await app[AUTH].create_user(username, PASSWORD, role)
    browser = await aiohttp_client(client.server)
    response = await browser.post("/staff/login", data={"username": username, "password": PASSWORD},
                                  allow_redirects=False)
    assert response.status == 303, await response.text()
    return browser


async def only_case(staff: Any, channel: str, user_id: str) -> int:
    response = await staff.get("/api/staff/cases")
    assert response.status == 200
    [case] = await response.json()
    assert (case["channel"], case["user_id"], case["status"]) == (channel, user_id, "waiting")
    return int(case["id"])


async def case_messages(staff: Any, case_id: int) -> list[tuple[str, str]]:
    detail = await (await staff.get(f"/api/staff/cases/{case_id}")).json()
    # the claim greeting is kept in the case too; these tests look at what follows it
    return [(m["author"], m["text"]) for m in detail["messages"] if m["text"] != GREETING]


async def failures(staff: Any, **params: Any) -> list[dict[str, Any]]:
    response = await staff.get("/api/staff/send-failures", params=params)
    assert response.status == 200, await response.text()
    return list(await response.json())


def assert_backoff(times: list[float], delays: tuple[float, ...]) -> None:
    """One first try plus one retry per delay, each after at least its delay."""
    assert len(times) == len(delays) + 1
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= delay * 0.9, (gaps, delays)


# ---------------------------------------------------------------- relay both ways


async def test_wechat_relay_both_ways(app_client: Any, aiohttp_client: Any, fake_wechat: FakeWechat) -> None:
    status, body, _ = await post(app_client, text_xml("我要找人工"))
    assert status == 200 and "转接人工" in passive_text(body)
    staff = await staff_client(aiohttp_client, app_client, "wang")
    case_id = await only_case(staff, "wechat", OPENID)

    claimed = await staff.post(f"/api/staff/cases/{case_id}/claim")
    assert claimed.status == 200
    assert fake_wechat.texts() == [GREETING]  # through message/custom/send to this openid

    # user -> staff: the bot stays silent, the messages land in the case
    for text in ("我刷脸三次都没过", "是不是光线不好"):
        status, body, _ = await post(app_client, text_xml(text))
        assert (status, body) == (200, "success")
    await wechat(app_client).drain()
    assert fake_wechat.texts() == [GREETING]
    assert await case_messages(staff, case_id) == [("user", "我刷脸三次都没过"), ("user", "是不是光线不好")]

    # staff -> user through the customer-service API
    sent = await staff.post(f"/api/staff/cases/{case_id}/messages", json={"text": "请到窗户边再拍一张"})
    assert sent.status == 201
    assert fake_wechat.sent[-1]["touser"] == OPENID and fake_wechat.sent[-1]["msgtype"] == "text"
    assert fake_wechat.texts()[-1] == "工作人员：请到窗户边再拍一张"

    closed = await staff.post(f"/api/staff/cases/{case_id}/resolve", json={"decision": "resolved", "note": ""})
    assert closed.status == 200
    closing = fake_wechat.texts()[-1]
    assert "这次帮到您了吗？" in closing and "回复 1 帮到了" in closing
    assert fake_wechat.sent[-1]["touser"] == OPENID

    status, body, _ = await post(app_client, text_xml("1"))  # back with the bot, passive again
    assert status == 200 and "谢谢" in passive_text(body)
    assert await failures(staff, case_id=case_id) == []


async def test_telegram_relay_both_ways(app_client: Any, aiohttp_client: Any,
                                        fake_telegram: FakeTelegram) -> None:
    assert await deliver(app_client, message_update(text="转人工")) == 200
    assert "转接人工" in fake_telegram.texts()[0]
    staff = await staff_client(aiohttp_client, app_client, "wang")
    case_id = await only_case(staff, "telegram", str(CHAT))

    assert (await staff.post(f"/api/staff/cases/{case_id}/claim")).status == 200
    assert fake_telegram.texts()[-1] == GREETING
    count = len(fake_telegram.texts())

    assert await deliver(app_client, message_update(text="我在国外，没法去社区")) == 200
    assert len(fake_telegram.texts()) == count  # silent while a person handles the chat
    assert await case_messages(staff, case_id) == [("user", "我在国外，没法去社区")]

    sent = await staff.post(f"/api/staff/cases/{case_id}/messages", json={"text": "可以用手机刷脸认证"})
    assert sent.status == 201
    last = fake_telegram.sent()[-1]
    assert int(last["chat_id"]) == CHAT and last["text"] == "工作人员：可以用手机刷脸认证"

    assert (await staff.post(f"/api/staff/cases/{case_id}/resolve",
                             json={"decision": "resolved"})).status == 200
    question = fake_telegram.sent()[-1]
    assert question["text"].startswith("这次帮到您了吗")
    assert buttons(question) == [("1. 帮到了", "帮到了"), ("2. 帮到一部分", "帮到一部分"), ("3. 没帮到", "没帮到")]
    assert await deliver(app_client, callback_update("解决了")) == 200
    assert "谢谢" in fake_telegram.texts()[-1]


# ---------------------------------------------------------------- failing or slow WeChat


@pytest.mark.parametrize("failure", ["http500", "errcode-1", "slow"])
async def test_failing_wechat_api_is_retried_then_listed_for_staff(
        app_client: Any, aiohttp_client: Any, fake_wechat: FakeWechat, failure: str) -> None:
    services = app_client.server.app[keys.SERVICES]
    channel = wechat(app_client)
    budget = services.settings.wechat.passive_reply_budget_s
    channel.api.request_timeout_s = 0.3
    fake_wechat.send_failure, fake_wechat.send_delay_s = failure, 1.0

    # a slow turn: the webhook answers `success` within the budget, the answer goes out later
    calls: list[str] = []

    async def slow(turn: Any, next_step: Any) -> None:
        calls.append(turn.msg.message_id)
        await asyncio.sleep(budget + 0.3)
        await next_step()

    services.pipeline.middlewares.insert(0, slow)
    status, body, took = await post(app_client, text_xml("需要带什么材料"))
    assert (status, body) == (200, "success")
    assert took < budget + 0.25
    services.pipeline.middlewares.remove(slow)
    await channel.drain()
    assert_backoff(fake_wechat.send_attempts, RETRY_DELAYS)  # 4 tries, waits growing
    assert fake_wechat.sent == []

    supervisor = await staff_client(aiohttp_client, app_client, "zhao", "supervisor")
    [lost] = await failures(supervisor)
    assert (lost["channel"], lost["user_id"], lost["attempts"]) == ("wechat", OPENID, 4)
    assert "身份证" in lost["text"] and lost["error"] and lost["case_id"] is None
    events = await (await supervisor.get("/api/staff/events")).json()
    assert "send_failed" in [e["kind"] for e in events["events"]]  # open pages refresh at once

    # staff relay while WeChat is down: the message is kept, the API says 502, the loss is listed
    status, body, took = await post(app_client, text_xml("转人工"))
    assert status == 200 and "转接人工" in passive_text(body) and took < budget + 0.25
    agent = await staff_client(aiohttp_client, app_client, "wang")
    case_id = await only_case(agent, "wechat", OPENID)
    assert (await agent.post(f"/api/staff/cases/{case_id}/claim")).status == 200  # greeting lost
    reply = await agent.post(f"/api/staff/cases/{case_id}/messages", json={"text": "请明天上午再试"})
    assert reply.status == 502
    assert (await reply.json())["error"] == "delivery_failed"
    assert await case_messages(agent, case_id) == [("staff", "请明天上午再试")]

    mine = await failures(agent, case_id=case_id)
    assert [f["text"] for f in mine] == ["工作人员：请明天上午再试", GREETING]
    assert all(f["case_id"] == case_id for f in mine)
    everything = await failures(supervisor)
    assert len(everything) == 3 and everything[0]["case_id"] == case_id
    assert (await agent.get("/api/staff/send-failures")).status == 403  # all of them: supervisors
    queue_page = await (await supervisor.get("/staff")).text()
    assert "发送失败" in queue_page and "工作人员：请明天上午再试" in queue_page
    assert "发送失败" not in await (await agent.get("/staff")).text()
    case_page = await (await agent.get(f"/staff/cases/{case_id}")).text()
    assert "发送失败" in case_page and "工作人员：请明天上午再试" in case_page
    live = await (await agent.get(f"/staff/cases/{case_id}/fragments/failures")).text()
    assert "工作人员：请明天上午再试" in live and "send-failed" in live

    # the page's reply form keeps the message and says it was not delivered
    me = await (await agent.get("/api/staff/me")).json()
    form = await agent.post(f"/staff/cases/{case_id}/reply", data={"csrf": me["csrf_token"], "text": "再试一次"},
                            allow_redirects=False)
    assert form.status == 303
    shown = await (await agent.get(form.headers["Location"])).text()
    assert "没能送到用户那里" in shown
    assert [f["text"] for f in await failures(agent, case_id=case_id)][0] == "工作人员：再试一次"

    # WeChat is back: the next staff message goes out
    fake_wechat.send_failure = None
    ok = await agent.post(f"/api/staff/cases/{case_id}/messages", json={"text": "现在好了"})
    assert ok.status == 201 and fake_wechat.texts() == ["工作人员：现在好了"]


async def test_send_failures_api_checks_the_session_and_the_case(app_client: Any, aiohttp_client: Any) -> None:
    assert (await app_client.get("/api/staff/send-failures")).status == 401
    await post(app_client, text_xml("转人工"))
    owner = await staff_client(aiohttp_client, app_client, "wang")
    other = await staff_client(aiohttp_client, app_client, "li")
    case_id = await only_case(owner, "wechat", OPENID)
    assert await failures(other, case_id=case_id) == []  # waiting: every agent may look
    assert (await owner.post(f"/api/staff/cases/{case_id}/claim")).status == 200
    assert (await other.get("/api/staff/send-failures", params={"case_id": case_id})).status == 403
    assert (await owner.get("/api/staff/send-failures", params={"case_id": "x"})).status == 400
    assert (await owner.get("/api/staff/send-failures", params={"case_id": 999999})).status == 404
    assert (await other.get("/staff/fragments/failures")).status == 403


# ---------------------------------------------------------------- failing Telegram


async def test_failing_telegram_api_is_retried_then_listed_for_staff(
        app_client: Any, aiohttp_client: Any, fake_telegram: FakeTelegram,
        monkeypatch: pytest.MonkeyPatch) -> None:
    slow_delays = (0.2, 0.4, 0.8)
    monkeypatch.setattr(TelegramChannel, "send_retry_delays", slow_delays)
    channel = telegram(app_client)
    channel.webhook_send_budget_s = 0.2
    fake_telegram.send_status = 500

    started = time.monotonic()
    assert await deliver(app_client, message_update(text="能用指纹认证吗")) == 200
    assert time.monotonic() - started < 1.0  # the retries (1.4 s of waiting) go on without the webhook
    sending = channel._sending.get(CHAT)
    assert sending is not None and not sending.done()
    assert await asyncio.wait_for(sending, 10) is False
    attempts = [params for name, params in fake_telegram.calls if name == "sendMessage"]
    assert len(attempts) == len(slow_delays) + 1 and "指纹" in attempts[0]["text"]

    supervisor = await staff_client(aiohttp_client, app_client, "zhao", "supervisor")
    [lost] = await failures(supervisor)
    assert (lost["channel"], lost["user_id"], lost["attempts"]) == ("telegram", str(CHAT), 4)
    assert "指纹" in lost["text"] and "Internal Server Error" in lost["error"]

    monkeypatch.setattr(TelegramChannel, "send_retry_delays", RETRY_DELAYS)
    assert await deliver(app_client, message_update(text="转人工")) == 200
    case_id = await only_case(supervisor, "telegram", str(CHAT))
    assert (await supervisor.post(f"/api/staff/cases/{case_id}/claim")).status == 200
    reply = await supervisor.post(f"/api/staff/cases/{case_id}/messages", json={"text": "请用手机认证"})
    assert reply.status == 502 and (await reply.json())["error"] == "delivery_failed"
    assert await case_messages(supervisor, case_id) == [("staff", "请用手机认证")]
    listed = await failures(supervisor, case_id=case_id)  # newest first
    assert [f["text"] for f in listed][:2] == ["工作人员：请用手机认证", GREETING]
    assert len(listed) == 3 and "转接人工" in listed[2]["text"]  # the answer to 转人工 was lost too

    fake_telegram.send_status = None
    ok = await supervisor.post(f"/api/staff/cases/{case_id}/messages", json={"text": "好了"})
    assert ok.status == 201 and fake_telegram.texts()[-1] == "工作人员：好了"


# ---------------------------------------------------------------- start-up without the platforms


@pytest.mark.slow
async def test_serve_starts_with_unreachable_platform_apis(tmp_path: Path, clean_backends: Backends) -> None:
    """``python -m bot serve`` with both channels on and nothing listening at their API bases."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=clean_backends.redis_url, DATABASE_URL=clean_backends.database_url,
               BOT_DATA_DIR=str(tmp_path / "var"), PORT=str(port),
               WECHAT_TOKEN=TOKEN, WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET="s3cret",
               WECHAT_API_BASE=f"http://127.0.0.1:{free_port()}/cgi-bin/",
               TELEGRAM_TOKEN=BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET,
               TELEGRAM_API_BASE=f"http://127.0.0.1:{free_port()}/bot")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--no-worker", cwd=ROOT, env=env,
            stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                while True:
                    assert process.returncode is None, log_path.read_text(errors="replace")[-3000:]
                    try:
                        async with session.get(f"{base}/healthz") as health:
                            if health.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    assert time.monotonic() < deadline, "server did not become healthy"
                    await asyncio.sleep(0.2)
                async with session.post(f"{base}/wechat", params=query(), data=text_xml("你好")) as response:
                    assert response.status == 200
                    assert "回复 1" in passive_text(await response.text())
                async with session.post(f"{base}/telegram", json=message_update(text="你好"),
                                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                    assert response.status == 503  # not initialised yet: Telegram will redeliver
            assert process.returncode is None
        finally:
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 30) == 0
    assert "Traceback" not in log_path.read_text(errors="replace")
