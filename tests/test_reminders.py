"""Certification reminders (issue 20) end to end: opt-in in chat, `bot reminders send`, delivery.

The WeChat and Telegram APIs are the local fakes of tests/channel_fakes.py; selfies are
verified by a real arq worker running the real model on photos from ../shared/faces; the
CLI runs as a separate process on the same Redis and database, as it would next to a server.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.channels.wechat import WECHAT
from bot.core.config import Settings
from bot.core.storage.models import AuditLog, Pensioner, ReminderDelivery, ReminderSubscription
from bot.records.reminders import (
    FIRST,
    MISSED,
    SECOND,
    is_quiet,
    kind_due,
    local_time,
    run_pass,
    subscribe,
)
from bot.reminder_delivery import make_deliverer
from bot.services import Services
from nlu.entities import with_check_digit
from nlu.rules import match_command
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
    deliver,
    message_update,
    message_xml,
    passive_text,
    query,
    text_xml,
    wechat_settings,
)
from tests.conftest import ROOT, Backends, TestBot, backends, make_settings, wait_for
from tests.face_support import (
    ID_OBAMA,
    enrol_obama,
    needs_model,
    needs_photos,
    photo_bytes,
    run_worker,
)
from tests.webchat import web_id

TEMPLATE_ID = "TPL_pension_due_0001"
LINK = "https://bot.example.org/chat?from=reminder"


# ---------------------------------------------------------------- helpers


def cli_config(tmp_path: Path, settings: Settings, **sections: dict[str, Any]) -> Path:
    """A config file for the CLI process: the same storage as the test server."""
    data: dict[str, Any] = {"storage": {"redis_url": backends().redis_url,
                                        "database_url": backends().database_url,
                                        "data_dir": str(settings.storage.data_dir)}}
    data.update(sections)
    path = tmp_path / "cli-config.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    """``python -m bot`` in its own process (asynchronously: the fake APIs run in this loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(config), *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def send_pass(config: Path, now: str) -> dict[str, int]:
    code, out, err = await cli(config, "reminders", "send", "--now", now)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # one JSON line, nothing else on stdout
    return json.loads(lines[0])


async def subscriptions(services: Services) -> list[ReminderSubscription]:
    async with services.db.session() as session:
        return list(await session.scalars(select(ReminderSubscription).order_by(ReminderSubscription.id)))


async def deliveries(services: Services) -> list[ReminderDelivery]:
    async with services.db.session() as session:
        return list(await session.scalars(select(ReminderDelivery).order_by(ReminderDelivery.id)))


async def next_due(services: Services, pensioner_id: int) -> date:
    pensioner = await services.registry.get(pensioner_id)
    assert pensioner is not None and pensioner.next_due is not None
    return pensioner.next_due


# ---------------------------------------------------------------- WeChat, the pensioner


class Wechat:
    """A WeChat user talking to the server through signed callbacks."""

    def __init__(self, client: Any, fake: FakeWechat) -> None:
        self.client, self.fake = client, fake
        self.seen = 0

    async def post(self, xml: str) -> str:
        response = await self.client.post("/wechat", params=query(), data=xml,
                                          headers={"Content-Type": "text/xml"})
        assert response.status == 200
        body = await response.text()
        await self.client.server.app[WECHAT].drain()
        return "" if body == "success" else passive_text(body)

    async def say(self, text: str) -> str:
        return await self.post(text_xml(text)) + self.pushed()

    def pushed(self) -> str:
        texts = self.fake.texts()
        new, self.seen = texts[self.seen:], len(texts)
        return "\n".join(new)


@needs_model
@needs_photos
async def test_wechat_pensioner_certifies_opts_in_and_gets_one_template_message(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"face.challenge": False,
        "wechat.reminder_template_id": TEMPLATE_ID, "wechat.reminder_url": LINK})
    client = await aiohttp_client(create_app(settings))
    services: Services = client.server.app[keys.SERVICES]
    pensioner_id = await enrol_obama(services)
    user = Wechat(client, fake_wechat)

    assert "身份证" in await user.post(message_xml(
        "event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[certify_now]]></EventKey>"))
    assert "姓名" in await user.say(ID_OBAMA)
    assert "正脸照片" in await user.say("欧巴马")
    # A small photo: the WeChat client reads media/get answers in one read() (another issue
    # fixes that); a 37 KB selfie arrives whole.
    fake_wechat.media["selfie-1"] = photo_bytes("obama/obama-240p.jpg")
    await user.post(message_xml("image", "<PicUrl><![CDATA[http://mmbiz.example/s.jpg]]></PicUrl>"
                                         "<MediaId><![CDATA[selfie-1]]></MediaId>"))
    assert "正在核验" in user.pushed()
    await run_worker(services)
    await wait_for(lambda: any("认证成功" in t for t in fake_wechat.texts()), f"the verdict {fake_wechat.texts()}")
    success = user.pushed()
    due = await next_due(services, pensioner_id)
    assert f"{due.year}年{due.month}月{due.day}日" in success
    assert "要不要我到时候提醒您" in success and "好的，到时候提醒我" in success
    assert "我会提醒您" not in success  # no promise before the answer
    assert await subscriptions(services) == []

    answer = await user.say("好的，到时候提醒我")
    assert "到时候我会提醒您" in answer and "不用提醒了" in answer
    [sub] = await subscriptions(services)
    assert (sub.conversation_key, sub.pensioner_id, sub.role, sub.active) == (
        f"wechat:{OPENID}", pensioner_id, "self", True)

    config = cli_config(tmp_path, settings, wechat={
        "token": TOKEN, "app_id": APP_ID, "app_secret": "s3cret",
        "api_base": str(fake_wechat.server.make_url("/cgi-bin/")),  # type: ignore[attr-defined]
        "reminder_template_id": TEMPLATE_ID, "reminder_url": LINK})
    first_day = (due - timedelta(days=20)).isoformat()
    at_night = await send_pass(config, f"{first_day}T02:00")
    assert at_night == {"due": 1, "sent": 0, "failed": 0, "skipped": 1}
    assert fake_wechat.templates == []

    assert await send_pass(config, f"{first_day}T10:00") == {"due": 1, "sent": 1, "failed": 0, "skipped": 0}
    [message] = fake_wechat.templates
    assert message["_path"].endswith("/message/template/send")
    assert message["touser"] == OPENID and message["template_id"] == TEMPLATE_ID and message["url"] == LINK
    assert message["data"]["keyword2"]["value"] == f"{due.year}年{due.month}月{due.day}日"
    assert message["data"]["keyword1"]["value"] == "欧*马"
    assert "刷脸认证" in message["data"]["remark"]["value"]

    assert await send_pass(config, f"{first_day}T10:00") == {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
    assert await send_pass(config, f"{first_day}T15:30") == {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
    assert len(fake_wechat.templates) == 1
    second_day = (due - timedelta(days=5)).isoformat()
    assert (await send_pass(config, f"{second_day}T02:00"))["sent"] == 0
    assert (await send_pass(config, f"{second_day}T22:30"))["sent"] == 0
    assert len(fake_wechat.templates) == 1
    [delivery] = await deliveries(services)
    assert (delivery.kind, delivery.status, delivery.due_date) == (FIRST, "sent", due)

    # Opting out stops the second one.
    assert "不再给您发认证提醒" in await user.say("不用提醒了")
    assert (await send_pass(config, f"{second_day}T10:00"))["due"] == 0
    assert len(fake_wechat.templates) == 1


# ---------------------------------------------------------------- Telegram, a family member


@needs_model
@needs_photos
async def test_telegram_family_member_opts_in_and_gets_one_message(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.channels.telegram import TELEGRAM, TelegramChannel

    monkeypatch.setattr(TelegramChannel, "send_retry_delays", (0.01, 0.01))
    base = base_url(fake_telegram)
    settings = make_settings(tmp_path, clean_backends, **{"face.challenge": False,
        "telegram.token": BOT_TOKEN, "telegram.webhook_secret": SECRET,
        "telegram.api_base": f"{base}/bot", "telegram.file_base": f"{base}/file/bot"})
    client = await aiohttp_client(create_app(settings))
    await asyncio.wait_for(client.server.app[TELEGRAM].ready.wait(), 20)
    services: Services = client.server.app[keys.SERVICES]
    pensioner_id = await enrol_obama(services)

    async def say(text: str) -> str:
        before = len(fake_telegram.texts())
        assert await deliver(client, message_update(text=text)) == 200
        await wait_for(lambda: len(fake_telegram.texts()) > before, f"an answer to {text}")
        await asyncio.sleep(0.2)
        return "\n".join(fake_telegram.texts()[before:])

    assert "什么人" in await say("帮家人认证")
    assert "身份证" in await say("1")
    assert "姓名" in await say(ID_OBAMA)
    assert "在场" in await say("欧巴马")
    assert "正脸照片" in await say("1")
    selfie = photo_bytes("obama/obama2.jpg")
    fake_telegram.files = {"selfie-id": selfie}
    before = len(fake_telegram.texts())
    assert await deliver(client, message_update(photo=[
        {"file_id": "selfie-id", "file_unique_id": "s", "width": 600, "height": 800,
         "file_size": len(selfie)}])) == 200
    await wait_for(lambda: any("正在核验" in t for t in fake_telegram.texts()[before:]), "the ack")
    await run_worker(services)
    await wait_for(lambda: any("认证成功" in t for t in fake_telegram.texts()), "the verdict")
    await asyncio.sleep(0.2)
    success = fake_telegram.texts()[-1]
    assert "提醒" in success and "我会" not in success
    answer = await say("好的，到时候提醒我")
    assert "提醒您" in answer
    [sub] = await subscriptions(services)
    assert (sub.conversation_key, sub.role, sub.active) == (f"telegram:{CHAT}", "family", True)

    due = await next_due(services, pensioner_id)
    config = cli_config(tmp_path, settings, telegram={
        "token": BOT_TOKEN, "api_base": f"{base}/bot", "file_base": f"{base}/file/bot"})
    first_day = (due - timedelta(days=20)).isoformat()
    sent_before = len(fake_telegram.texts())
    assert (await send_pass(config, f"{first_day}T02:00"))["sent"] == 0
    assert len(fake_telegram.texts()) == sent_before
    assert await send_pass(config, f"{first_day}T10:00") == {"due": 1, "sent": 1, "failed": 0, "skipped": 0}
    [reminder] = [p for p in fake_telegram.sent()[sent_before:]]
    assert int(reminder["chat_id"]) == CHAT
    assert "欧*马" in reminder["text"] and f"{due.month}月{due.day}日" in reminder["text"]
    assert "帮家人认证" in reminder["text"] and reminder.get("reply_markup")
    assert (await send_pass(config, f"{first_day}T10:00"))["sent"] == 0
    assert len(fake_telegram.texts()) == sent_before + 1


# ---------------------------------------------------------------- schedule, retries, opt-out


def test_schedule_kinds_and_quiet_hours(settings: Settings) -> None:
    due = date(2027, 6, 30)
    assert kind_due(settings, due, due - timedelta(days=31)) is None
    assert kind_due(settings, due, due - timedelta(days=30)) == FIRST
    assert kind_due(settings, due, due - timedelta(days=8)) == FIRST
    assert kind_due(settings, due, due - timedelta(days=7)) == SECOND
    assert kind_due(settings, due, due) == SECOND
    assert kind_due(settings, due, due + timedelta(days=1)) == MISSED
    assert kind_due(settings, due, due + timedelta(days=61)) is None
    for hour, quiet in ((7, True), (8, False), (12, False), (20, False), (21, True), (23, True), (0, True)):
        assert is_quiet(settings, local_time(settings, datetime(2027, 6, 1, hour, 30))) is quiet, hour
    # An aware UTC time is converted: 13:30 UTC is 21:30 in Beijing.
    assert is_quiet(settings, local_time(settings, datetime(2027, 6, 1, 13, 30, tzinfo=UTC)))


async def _pensioner(services: Services, due: date, name: str = "张桂兰") -> int:
    pensioner = await services.registry.register(with_check_digit("63010219500315002"), name)
    async with services.db.session() as session:
        row = await session.get(Pensioner, pensioner.id)
        assert row is not None
        row.next_due = due
    return pensioner.id


async def test_failed_deliveries_are_retried_with_backoff_then_send_failed(
        tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> None:
    from bot.app import started

    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"face.challenge": False,
        "wechat.reminder_template_id": TEMPLATE_ID, "reminders.max_attempts": 3,
        "reminders.retry_base_s": 600})
    async with started(settings) as services:
        due = date(2027, 6, 30)
        pensioner_id = await _pensioner(services, due)
        await subscribe(services.db, f"wechat:{OPENID}", pensioner_id, "self")
        fake_wechat.template_errors = [-1, -1, -1]  # "system busy" three times
        at = datetime(2027, 6, 10, 10, 0)

        async def run(moment: datetime) -> dict[str, int]:
            return (await run_pass(settings, services.db, services.redis, deliverer=make_deliverer(settings, services.redis), now=moment)).counts()

        assert await run(at) == {"due": 1, "sent": 0, "failed": 1, "skipped": 0}
        assert await run(at + timedelta(minutes=5)) == {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
        assert await run(at + timedelta(minutes=11)) == {"due": 1, "sent": 0, "failed": 1, "skipped": 0}
        assert await run(at + timedelta(minutes=30)) == {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
        assert await run(at + timedelta(minutes=42)) == {"due": 1, "sent": 0, "failed": 1, "skipped": 0}
        [row] = await deliveries(services)
        assert (row.status, row.attempts) == ("send_failed", 3)
        assert await run(at + timedelta(days=1)) == {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
        async with services.db.session() as session:
            [failed] = list(await session.scalars(select(AuditLog).where(AuditLog.action == "send_failed")))
        assert failed.target == f"wechat:{OPENID}" and failed.details["kind"] == FIRST
        assert fake_wechat.templates == []
        # A retry that succeeds: the second reminder of the same due date.
        fake_wechat.template_errors = [45009]
        later = datetime(2027, 6, 25, 9, 0)
        assert (await run(later))["failed"] == 1
        assert (await run(later + timedelta(minutes=10)))["sent"] == 1
        assert len(fake_wechat.templates) == 1


async def test_parallel_passes_send_once(services: Services) -> None:
    due = date(2027, 6, 30)
    pensioner_id = await _pensioner(services, due)
    bots = [TestBot(services) for _ in range(3)]
    for bot in bots:
        await subscribe(services.db, bot.key, pensioner_id, "self")
    at = datetime(2027, 6, 10, 10, 0)
    results = await asyncio.gather(*(run_pass(services.settings, services.db, services.redis, deliverer=make_deliverer(services.settings, services.redis), now=at,
                                              audit=services.audit) for _ in range(4)))
    assert sum(r.sent for r in results) == 3
    for bot in bots:
        [reminder] = await bot.pushed()
        assert "2027年6月30日" in reminder.text and "还有 20 天" in reminder.text


async def test_opt_out_works_in_any_state_and_keeps_the_dialog(testbot: TestBot) -> None:
    services = testbot.services
    pensioner_id = await _pensioner(services, date(2027, 6, 30))
    await subscribe(services.db, testbot.key, pensioner_id, "self")
    await testbot.say(event="menu:certify_now")
    assert "身份证" in testbot.text
    await testbot.say("以后别再提醒我了")
    assert "不再给您发认证提醒" in testbot.text and "身份证" in testbot.text  # then the question again
    [sub] = await subscriptions(services)
    assert sub.active is False and sub.cancelled_at is not None
    await testbot.say("取消提醒")
    assert "没有开启认证提醒" in testbot.text
    for text in ("不用提醒了", "取消提醒", "不要再提醒我了", "关闭认证提醒", "提醒取消吧"):
        found = match_command(text)
        assert found is not None and found.name == "cmd_stop_reminders", text
    for text in ("提醒我", "好的，到时候提醒我", "取消", "认证提醒是什么", "不用了"):
        found = match_command(text)
        assert found is None or found.name != "cmd_stop_reminders", text


async def test_declining_makes_no_promise_and_subscribes_nothing(testbot: TestBot) -> None:
    from bot.core.conversation import Frame

    services = testbot.services
    pensioner_id = await _pensioner(services, date(2027, 6, 30))
    conv = await testbot.conversation()
    conv.stack.append(Frame(dialog="reminders", state="offer",
                            slots={"pensioner_id": pensioner_id, "due": "2027-06-30", "role": "self"}))
    await services.conversations.save(conv)
    await testbot.say("不用提醒")
    assert "不提醒您" in testbot.text and "2027年6月30日" in testbot.text
    assert await subscriptions(services) == []


# ---------------------------------------------------------------- due dates stay true


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "import.csv"
    path.write_text(text, encoding="utf-8")
    return path


async def test_import_rejects_bad_rows_and_imports_nothing(services: Services, tmp_path: Path) -> None:
    good = with_check_digit("63010219500315002")
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    future = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    path = _csv(tmp_path, "id_number,name,last_certified,phone\n"
                          f"{good},张桂兰,2026-03-15,13912345678\n"
                          f"{bad_check},马福海,2026-03-15,\n"
                          f"{with_check_digit('63210219480802001')},,2026/13/01,\n"
                          f"{with_check_digit('63280219551120003')},李德明,{future},12345\n"
                          f"{good},张桂兰,2026-03-16,\n")
    config = cli_config(tmp_path, services.settings)
    code, out, err = await cli(config, "pensioners", "import", str(path))
    assert code == 1 and out == ""
    assert "第3行" in err and "校验位" in err
    assert "第4行" in err and "姓名" in err and "认证日期" in err
    assert "第5行" in err and "今天之后" in err and "电话" in err
    assert "第6行" in err and "第2行重复" in err
    assert "第2行" not in err.replace("第2行重复", "")
    assert "没有导入任何记录" in err
    assert bad_check not in err  # ID numbers are masked
    async with services.db.session() as session:
        assert list(await session.scalars(select(Pensioner))) == []


async def test_import_moves_due_dates_and_cancels_pending_reminders(services: Services,
                                                                    tmp_path: Path) -> None:
    old_due = datetime.now(UTC).date() + timedelta(days=10)
    pensioner_id = await _pensioner(services, old_due)
    bot = TestBot(services)
    sub_id = await subscribe(services.db, bot.key, pensioner_id, "self")
    async with services.db.session() as session:
        session.add(ReminderDelivery(subscription_id=sub_id, due_date=old_due, kind=FIRST, status="retry",
                                     attempts=1, next_attempt_at=datetime.now(UTC)))
    certified = datetime.now(UTC).date() - timedelta(days=2)
    path = _csv(tmp_path, "id_number,name,last_certified\n"
                          f"{with_check_digit('63010219500315002')},张桂兰,{certified.isoformat()}\n"
                          f"{with_check_digit('63210219480802001')},马福海,2026-01-05\n")
    code, out, err = await cli(cli_config(tmp_path, services.settings), "pensioners", "import", str(path))
    assert code == 0, err
    counts = json.loads(out)
    assert counts["imported"] == 2 and counts["created"] == 1 and counts["reminders_cancelled"] == 1
    assert await next_due(services, pensioner_id) == certified + timedelta(days=365)
    [row] = await deliveries(services)
    assert row.status == "cancelled"
    result = await run_pass(services.settings, services.db, services.redis, deliverer=make_deliverer(services.settings, services.redis),
                            now=datetime.combine(old_due - timedelta(days=3), datetime.min.time()).replace(hour=10))
    assert result.due == 0 and not await bot.pushed()
    # The same file again changes nothing; a name that differs from the registry rejects the file.
    code, out, _ = await cli(cli_config(tmp_path, services.settings), "pensioners", "import", str(path))
    assert code == 0 and json.loads(out)["unchanged"] == 2
    path = _csv(tmp_path, "id_number,name,last_certified\n"
                          f"{with_check_digit('63010219500315002')},张兰,{certified.isoformat()}\n")
    code, _, err = await cli(cli_config(tmp_path, services.settings), "pensioners", "import", str(path))
    assert code == 1 and "第2行" in err and "姓名" in err


async def test_cli_dry_run_and_bad_time(services: Services, tmp_path: Path) -> None:
    due = date(2027, 6, 30)
    pensioner_id = await _pensioner(services, due)
    bot = TestBot(services)
    await subscribe(services.db, bot.key, pensioner_id, "self")
    config = cli_config(tmp_path, services.settings)
    code, out, err = await cli(config, "reminders", "send", "--now", "2027-06-10T10:00", "--dry-run")
    assert code == 0, err
    assert json.loads(out) == {"due": 1, "sent": 0, "failed": 0, "skipped": 1}
    assert await deliveries(services) == [] and not await bot.pushed()
    code, _, err = await cli(config, "reminders", "send", "--now", "tomorrow")
    assert code == 2 and "YYYY-MM-DDTHH:MM" in err
    # A web user sees it on the next visit (the outbox queue the page reads).
    assert json.loads((await cli(config, "reminders", "send", "--now", "2027-06-10T10:00"))[1])["sent"] == 1
    [reminder] = await bot.pushed()
    assert "刷脸认证" in reminder.options


# ---------------------------------------------------------------- web, staff console, notices


async def test_web_reminder_is_shown_on_the_next_visit_and_staff_see_it(client: Any) -> None:
    from bot.staff.web import AUTH

    services: Services = client.server.app[keys.SERVICES]
    pensioner_id = await _pensioner(services, date(2027, 6, 30))
    await subscribe(services.db, "web:visitor-1", pensioner_id, "self")
    result = await run_pass(services.settings, services.db, services.redis, deliverer=make_deliverer(services.settings, services.redis), now=datetime(2027, 6, 10, 10, 0))
    assert result.sent == 1
    response = await client.get("/api/chat/updates", params={"user_id": await web_id(client, "visitor-1")})
    [reminder] = (await response.json())["replies"]
    assert "2027年6月30日" in reminder["text"] and "不用提醒了" in reminder["options"]
    assert await services.redis.ttl("outbox:web:visitor-1") == -2  # taken by the visit

    assert (await client.get("/api/staff/reminders")).status == 401
    await client.server.app[AUTH].create_user("wang", "secret-pass-1", "agent")
    login = await client.post("/staff/login", data={"username": "wang", "password": "secret-pass-1"},
                              allow_redirects=False)
    assert login.status == 303
    assert (await client.get("/api/staff/reminders", params={"pensioner_id": "x"})).status == 400
    body = await (await client.get("/api/staff/reminders", params={"pensioner_id": str(pensioner_id)})).json()
    [sub] = body["subscriptions"]
    assert sub["channel"] == "web" and sub["role"] == "self" and sub["active"] is True
    [delivery] = body["deliveries"]
    assert (delivery["kind"], delivery["status"], delivery["due_date"]) == (FIRST, "sent", "2027-06-30")


async def test_subscription_notice_mode(tmp_path: Path, clean_backends: Backends,
                                        fake_wechat: FakeWechat) -> None:
    from bot.app import started

    settings = wechat_settings(tmp_path, clean_backends, fake_wechat, **{"face.challenge": False,
        "wechat.reminder_mode": "subscribe", "wechat.reminder_template_id": "SUB_TPL_1",
        "wechat.reminder_fields": {"pensioner": "thing1", "due_date": "time2", "note": "thing3"},
        "wechat.reminder_url": LINK})
    async with started(settings) as services:
        pensioner_id = await _pensioner(services, date(2027, 6, 30))
        await subscribe(services.db, f"wechat:{OPENID}", pensioner_id, "self")
        result = await run_pass(settings, services.db, services.redis, deliverer=make_deliverer(settings, services.redis), now=datetime(2027, 7, 3, 9, 0))
        assert result.counts() == {"due": 1, "sent": 1, "failed": 0, "skipped": 0}
    [notice] = fake_wechat.templates
    assert notice["_path"].endswith("/message/subscribe/bizsend") and notice["page"] == LINK
    assert set(notice["data"]) == {"thing1", "time2", "thing3"}
    assert notice["data"]["time2"]["value"] == "2027年6月30日"
    assert "暂停发放" in notice["data"]["thing3"]["value"]  # after the due date: the missed-deadline help
