"""The agency dashboard (issue 22): events written by the real dialogs, figures, the API.

Activity is seeded through the real pipeline (TestBot: certify and family dialogs, the
staff desk, the satisfaction question); the face worker's decision is the one part given
(``apply_verdict`` with a worker-shaped result), since the dashboard counts what the
verdict path does with it, not the model.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import func, select

from bot.core.storage.models import (
    CertificationEvent,
    FaceTemplate,
    Pensioner,
    ReminderDelivery,
    ReminderSubscription,
)
from bot.face_service import attach
from bot.records.events import prefecture_of, subject_of
from bot.records.stats import SUPPRESSED, DashboardStats, DateRange
from bot.services import Services
from bot.staff.auth import StaffAuth
from bot.staff.desk import StaffDesk
from bot.staff.web import AUTH
from dialogs.certify import apply_verdict
from nlu.entities import with_check_digit
from tests.conftest import ROOT, TestBot

PASSWORD = "secret-pass-1"
ARTIFACTS = ROOT / "test-artifacts"
XINING = [with_check_digit(f"630102195{i}0315002") for i in range(7)]
HAIXI = [with_check_digit(f"632802195{i}1120003") for i in range(3)]
NAMES = ["张桂兰", "马福海", "李德明", "王秀英", "赵德胜", "陈玉梅", "刘长春", "杨海燕", "周建国", "吴淑珍"]


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (180, 150, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def enrolled(services: Services, id_number: str, name: str) -> int:
    pensioner = await services.registry.register(id_number, name)
    async with services.db.session() as session:
        session.add(FaceTemplate(pensioner_id=pensioner.id, model="Dlib", embedding=[0.0] * 128))
    return int(pensioner.id)


async def selfie(bot: TestBot) -> str:
    await bot.say(image=jpeg())
    conv = await bot.conversation()
    assert conv.frame is not None and conv.frame.state == "verifying", bot.text
    return str(conv.frame.slots["request_id"])


async def verdict(services: Services, bot: TestBot, request_id: str, pensioner_id: int,
                  decision: str, **extra: Any) -> None:
    await apply_verdict(services, {
        "request_id": request_id, "conversation_key": bot.key, "channel": bot.channel,
        "pensioner_id": pensioner_id, "proxy": False, "decision": decision,
        "issues": ["too_dark"] if decision == "rejected" else [], "distance": 0.3, "threshold": 0.6,
        **extra})
    await bot.pushed()


async def certify(services: Services, user: str, id_number: str, name: str,
                  decisions: list[str]) -> TestBot:
    """One person through certify: menu, ID number, name, then a selfie per decision."""
    pensioner_id = await enrolled(services, id_number, name)
    bot = TestBot(services, user_id=user)
    await bot.say("我要刷脸认证")
    assert "身份证" in bot.text, bot.text
    await bot.say(id_number)
    await bot.say(name)
    assert "正脸照片" in bot.text, bot.text
    for decision in decisions:
        request_id = await selfie(bot)
        await verdict(services, bot, request_id, pensioner_id, decision)
    return bot


@pytest.fixture
def settings(tmp_path: Any, clean_backends: Any) -> Any:
    from tests.conftest import make_settings

    return make_settings(tmp_path, clean_backends, **{"face.challenge": False})


@pytest.fixture
async def seeded(services: Services) -> Services:
    """6 people in 西宁 fail once (mismatch) then pass; 2 in 海西 send a dark photo; 1 in 海西
    stops after the ID number; 7 staff cases, resolved and rated 3,3,3,3,3,2,1; 6 reminders
    delivered, 5 of whose pensioners certified within 30 days."""
    attach(services)
    for i in range(6):
        await certify(services, f"x{i}", XINING[i], NAMES[i], ["failed", "passed"])
    for i in range(2):
        await certify(services, f"h{i}", HAIXI[i], NAMES[6 + i], ["rejected"])
    quitter = TestBot(services, user_id="q0")
    await quitter.say("我要刷脸认证")
    await quitter.say(HAIXI[2])
    auth = StaffAuth(services.settings, services.db, services.redis)
    agent = await auth.start_session(await auth.create_user("wang", PASSWORD, "agent"))
    desk = StaffDesk(services)
    for i, answer in enumerate(["1", "1", "1", "帮到了", "1", "2", "3"]):
        bot = TestBot(services, user_id=f"c{i}")
        await bot.say("转人工")
        case_id = (await bot.conversation()).case_id
        await desk.claim(agent, case_id)
        await desk.resolve(agent, case_id, "resolved", "已电话说明")
        await bot.say(answer)
        assert "谢谢" in bot.text or "抱歉" in bot.text
    await reminders_sent(services)
    return services


async def reminders_sent(services: Services) -> None:
    """Reminder rows as a reminder pass leaves them (the pass itself is tested in test_reminders)."""
    now = datetime.now(UTC)
    async with services.db.session() as session:
        for i in range(6):
            pensioner = Pensioner(id_number=with_check_digit(f"630103194{i}0101001"), name="测试",
                                  certified_at=now if i < 5 else None)
            session.add(pensioner)
            await session.flush()
            sub = ReminderSubscription(conversation_key=f"test:r{i}", channel="test",
                                       pensioner_id=pensioner.id, role="self")
            session.add(sub)
            await session.flush()
            session.add(ReminderDelivery(subscription_id=sub.id, due_date=now.date() + timedelta(days=30),
                                         kind="first", status="sent", attempts=1,
                                         sent_at=now - timedelta(days=2), created_at=now - timedelta(minutes=5)))


async def supervisor_client(aiohttp_client: Any, app: web.Application, role: str = "supervisor",
                            username: str = "zhao") -> Any:
    client = await aiohttp_client(app)
    await app[AUTH].create_user(username, PASSWORD, role)
    response = await client.post("/staff/login", data={"username": username, "password": PASSWORD},
                                 allow_redirects=False)
    assert response.status == 303
    return client


def today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


# ---------------------------------------------------------------- records


def test_prefecture_comes_from_the_region_code() -> None:
    assert prefecture_of("630102195003150021") == "6301"
    assert prefecture_of("632802195511200038") == "6328"
    assert prefecture_of("632102194808020019") == "other"  # 6321 is not one of the eight
    assert prefecture_of("110101195003150021") == "other"
    assert prefecture_of(None) is None and prefecture_of("?") is None


async def test_events_hold_no_identity(seeded: Services) -> None:
    async with seeded.db.session() as session:
        rows = list(await session.scalars(select(CertificationEvent)))
    assert rows
    keys_ = {subject_of(f"test:x{i}") for i in range(6)}
    assert keys_ <= {r.subject for r in rows}
    for row in rows:
        values = " ".join(str(getattr(row, c.name)) for c in CertificationEvent.__table__.columns)
        assert not any(n in values for n in NAMES) and not any(n in values for n in XINING + HAIXI)
        assert "test:" not in values


async def test_figures_from_seeded_activity(seeded: Services) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    day = datetime.now(tz).date()
    stats = await DashboardStats(seeded.db, "Asia/Shanghai").compute(DateRange(day, day))
    funnel = {r["step"]: r["people"] for r in stats["funnel"]}
    assert funnel == {"started": 9, "id_given": 9, "selfie_sent": 8, "passed": 6, "failed": 8,
                      "review": SUPPRESSED, "approved": 6}
    causes = {r["cause"]: (r["people"], r["attempts"]) for r in stats["failure_causes"]}
    assert causes["mismatch"] == (6, 6)
    assert causes["quality"] == (SUPPRESSED, SUPPRESSED)  # 2 people: suppressed, attempts too
    prefectures = {r["prefecture"]: r for r in stats["by_prefecture"]}
    assert prefectures["6301"]["approved"] == 6 and prefectures["6301"]["failed_mismatch"] == 6
    assert prefectures["6328"]["id_given"] == SUPPRESSED and prefectures["6328"]["approved"] == SUPPRESSED
    assert [r["channel"] for r in stats["by_channel"]] == ["test"]
    assert stats["by_channel"][0]["started"] == 15 - 6  # the 6 handoff chats never started certifying
    assert stats["by_day"] == [dict(stats["by_day"][0], day=day.isoformat())]
    assert stats["by_day"][0]["approved"] == 6
    handoff = stats["handoff"]
    assert handoff["opened"] == 7 and handoff["answered"] == 7 and handoff["resolved"] == 7
    assert isinstance(handoff["avg_first_reply_s"], float) and handoff["avg_first_reply_s"] >= 0
    assert handoff["per_agent"][0]["agent"] == "wang" and handoff["per_agent"][0]["cases"] == 7
    assert handoff["first_reply_buckets"][0]["cases"] == 7  # the claim greeting is the first reply
    satisfaction = stats["satisfaction"]
    assert satisfaction["answers"] == 7 and satisfaction["average"] == 2.57
    assert [r["people"] for r in satisfaction["rows"]] == [5, SUPPRESSED, SUPPRESSED]
    assert stats["reminders"] == {"sent": 6, "delivered": 6, "certified_within_30_days": 5,
                                  "certified_rate": 0.833}


async def test_satisfaction_is_stored_as_a_score(seeded: Services) -> None:
    async with seeded.db.session() as session:
        scores = sorted(v for v in await session.scalars(
            select(CertificationEvent.value).where(CertificationEvent.kind == "satisfaction")))
    assert scores == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]


async def test_other_days_are_empty(seeded: Services) -> None:
    day = date(2020, 1, 1)
    stats = await DashboardStats(seeded.db, "Asia/Shanghai").compute(DateRange(day, day + timedelta(days=2)))
    assert all(r["people"] == SUPPRESSED for r in stats["funnel"])
    assert len(stats["by_day"]) == 3 and stats["handoff"]["opened"] == SUPPRESSED


# ---------------------------------------------------------------- API


async def test_api_for_supervisors_only(aiohttp_client: Any, app: web.Application, seeded: Services) -> None:
    agent = await supervisor_client(aiohttp_client, app, role="agent", username="li")
    refused = await agent.get("/api/staff/stats")
    assert refused.status == 403 and (await refused.json())["error"] == "forbidden"
    page = await agent.get("/staff/dashboard")
    assert page.status == 403 and "主管" in await page.text()
    assert "数据看板" not in await (await agent.get("/staff")).text()
    anonymous = await aiohttp_client(app)
    assert (await anonymous.get("/api/staff/stats")).status == 401

    boss = await supervisor_client(aiohttp_client, app)
    response = await boss.get("/api/staff/stats", params={"from": today(), "to": today()})
    assert response.status == 200
    body = await response.json()
    for key in ("funnel", "failure_causes", "by_prefecture", "by_channel", "by_day", "handoff",
                "reminders", "satisfaction"):
        assert key in body
    funnel = {r["step"]: r["people"] for r in body["funnel"]}
    assert funnel["approved"] == 6 and funnel["review"] == "<5"
    text = await response.text()
    assert not any(n in text for n in NAMES + XINING + HAIXI)
    assert "数据看板" in await (await boss.get("/staff")).text()


@pytest.mark.parametrize("query", [
    {"from": "2026-13-01"}, {"from": "2026-02-30"}, {"to": "yesterday"}, {"from": "2026-1-5"},
    {"from": "2026-12-05", "to": "2026-12-01"}, {"from": "2020-01-01", "to": "2026-01-01"},
    {"from": "９９９９-01-01"}, {"from": "9999-12-31", "to": "9999-12-31"}, {"to": "0001-01-01"},
    {"from": "2026-01-01' OR 1=1"}, {"format": "xml"}, {"format": "csv"}, {"format": "csv", "table": "users"},
])
async def test_bad_query_is_400_json(aiohttp_client: Any, app: web.Application, query: dict[str, str]) -> None:
    boss = await supervisor_client(aiohttp_client, app)
    response = await boss.get("/api/staff/stats", params=query)
    assert response.status == 400
    body = await response.json()
    assert body["error"] in ("invalid_date", "invalid_range", "invalid_format", "invalid_table")
    assert body["message"]
    page = await boss.get("/staff/dashboard", params=query)
    assert page.status == 400 if "format" not in query else page.status == 200


async def test_csv_download(aiohttp_client: Any, app: web.Application, seeded: Services) -> None:
    boss = await supervisor_client(aiohttp_client, app)
    response = await boss.get("/api/staff/stats", params={"from": today(), "to": today(),
                                                          "format": "csv", "table": "by_prefecture"})
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="stats-by_prefecture-{today()}-{today()}.csv"'
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    by_code = {r["prefecture"]: r for r in rows}
    assert by_code["6301"]["label"] == "西宁" and by_code["6301"]["approved"] == "6"
    assert by_code["6328"]["id_given"] == "<5"
    for key in ("funnel", "failure_causes", "by_channel", "by_day", "handoff", "reminders", "satisfaction"):
        one = await boss.get("/api/staff/stats", params={"format": "csv", "table": key})
        assert one.status == 200, key
        lines = (await one.read()).decode("utf-8-sig").splitlines()
        assert len(lines) >= 2, key
    handoff = list(csv.DictReader(io.StringIO((await (await boss.get(
        "/api/staff/stats", params={"format": "csv", "table": "handoff"})).read()).decode("utf-8-sig"))))
    assert handoff[0]["agent"] == "全部" and handoff[0]["cases"] == "7" and handoff[1]["agent"] == "wang"


async def test_page_has_charts_with_data(aiohttp_client: Any, app: web.Application, seeded: Services) -> None:
    boss = await supervisor_client(aiohttp_client, app)
    response = await boss.get("/staff/dashboard")
    assert response.status == 200
    html = await response.text()
    for chart in ("funnel", "failure_causes", "by_prefecture", "by_channel", "by_day", "handoff",
                  "reminders", "satisfaction"):
        assert f'data-chart="{chart}"' in html, chart
    assert 'data-value="6"' in html and "&lt;5" in html
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert not any(n in html for n in NAMES + XINING + HAIXI)


async def test_prometheus_counts_steps_by_prefecture_and_channel(client: Any) -> None:
    from bot import keys
    from tests.webchat import web_id

    services = client.server.app[keys.SERVICES]
    await enrolled(services, XINING[0], NAMES[0])
    user = await web_id(client, "m1")
    for text in ("我要刷脸认证", XINING[0]):
        assert (await client.post("/api/chat", json={"user_id": user, "text": text})).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'bot_certification_steps_total{channel="web",prefecture="unknown",step="started"} 1.0' in metrics
    assert 'bot_certification_steps_total{channel="web",prefecture="6301",step="id_given"} 1.0' in metrics
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(CertificationEvent)) == 2


# ---------------------------------------------------------------- in Chromium


@pytest.mark.slow
async def test_dashboard_in_chromium(aiohttp_server: Any, app: web.Application, seeded: Services) -> None:
    from tests.test_staff_browser import CHROMIUM, CHROMIUM_ARGS, ensure_chromium

    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await app[AUTH].create_user("zhao", PASSWORD, "supervisor")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = await context.new_page()
            page.set_default_timeout(20000)
            await page.goto(f"{base}/staff/login")
            await page.fill("#username", "zhao")
            await page.fill("#password", PASSWORD)
            await page.click("#login")
            await page.wait_for_url(f"{base}/staff")
            await page.click("header >> text=数据看板")
            await page.wait_for_url(f"{base}/staff/dashboard")
            bars = await page.eval_on_selector_all(
                "svg.chart", """svgs => Object.fromEntries(svgs.map(s => [s.dataset.chart,
                    [...s.querySelectorAll('rect.bar')].filter(r => r.getBBox().width > 0
                        && r.getBBox().height > 0).length]))""")
            for chart in ("funnel", "failure_causes", "by_prefecture", "by_prefecture_approved", "by_day",
                          "by_channel", "handoff", "reminders", "satisfaction"):
                assert bars.get(chart, 0) > 0, (chart, bars)
            assert await page.inner_text("#avg") == "2.57"
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, width  # readable at 1280 px: no sideways scrolling
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            text = await page.inner_text("main")
            assert not any(n in text for n in NAMES + XINING + HAIXI)

            # The range picker applies to the whole page: a day without activity empties it.
            await page.fill("#from", "2024-03-01")
            await page.fill("#to", "2024-03-07")
            await page.click("#apply")
            await page.wait_for_url("**/staff/dashboard?from=2024-03-01&to=2024-03-07")
            bars = await page.eval_on_selector_all(
                "svg.chart rect.bar", "rs => rs.filter(r => r.getBBox().width > 0 && r.getBBox().height > 0).length")
            assert bars == 0
            assert await page.locator("svg[data-chart=by_day] rect.bar").count() == 14  # 7 days x 2
        finally:
            await browser.close()


async def test_figures_on_sqlite(tmp_path: Any) -> None:
    """The same events service and queries on SQLite (the ``make run`` database)."""
    import asyncio

    from bot.core.metrics import Metrics
    from bot.core.storage.db import Database, migrate
    from bot.core.storage.models import Case
    from bot.records.events import CertificationEvents, Chat, FailureCause, Step

    url = f"sqlite+aiosqlite:///{tmp_path / 'dash.sqlite3'}"
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    try:
        events = CertificationEvents(db, Metrics(), "Asia/Shanghai")
        for i in range(6):
            chat = Chat(f"web:s{i}", "web")
            await events.record(Step.STARTED, chat)
            await events.record(Step.ID_GIVEN, chat, id_number=XINING[i])
            for _ in range(2):  # two failed attempts: one person, two attempts
                await events.record(Step.FAILED, chat, cause=FailureCause.QUALITY, id_number=XINING[i])
            await events.record(Step.SATISFACTION, chat, value=3.0)
        now = datetime.now(UTC)
        async with db.session() as session:
            for i in range(5):
                session.add(Case(conversation_key=f"web:s{i}", channel="web", user_id=f"s{i}",
                                 reason="user_request", status="closed", created_at=now - timedelta(minutes=10),
                                 first_reply_at=now - timedelta(minutes=8), closed_at=now))
        day = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        stats = await DashboardStats(db, "Asia/Shanghai").compute(DateRange(day, day))
    finally:
        await db.dispose()
    funnel = {r["step"]: r["people"] for r in stats["funnel"]}
    assert funnel["started"] == 6 and funnel["failed"] == 6 and funnel["selfie_sent"] == SUPPRESSED
    quality = next(r for r in stats["failure_causes"] if r["cause"] == "quality")
    assert quality == {"cause": "quality", "label": "照片质量问题", "people": 6, "attempts": 12}
    assert next(r for r in stats["by_prefecture"] if r["prefecture"] == "6301")["failed_quality"] == 6
    assert stats["handoff"]["opened"] == 5 and stats["handoff"]["avg_first_reply_s"] == 120.0
    assert stats["handoff"]["avg_resolve_s"] == 600.0
    assert stats["satisfaction"]["average"] == 3.0


async def test_prometheus_counts_reminders_by_prefecture(services: Services) -> None:
    from bot.family_reminders import send_due_reminders
    from bot.records.reminders import subscribe

    pensioner_id = await enrolled(services, XINING[1], NAMES[1])
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    async with services.db.session() as session:
        pensioner = await session.get(Pensioner, pensioner_id)
        assert pensioner is not None
        pensioner.next_due = today + timedelta(days=10)
    bot = TestBot(services)
    await subscribe(services.db, bot.key, pensioner_id, "self")
    assert await send_due_reminders(services, today) == 1
    value = services.metrics.registry.get_sample_value(
        "bot_reminders_total", {"outcome": "sent", "prefecture": "6301", "channel": "test"})
    assert value == 1.0
