"""The review page in Debian's Chromium (Playwright), with real photos and the real model.

An impostor's selfie (Biden) against Obama's enrolled photo goes through the real worker
code; the agent sees both photos render, asks to approve against the evidence, the page of
another staff member changes status live, and a supervisor signs off. Screenshots go to
``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.core.storage.models import Pensioner
from bot.records.attempts import evidence, photo_store
from bot.staff.web import AUTH
from face.enrol import enrol
from face.jobs import WorkerDeps, process
from nlu.entities import with_check_digit
from tests.conftest import ROOT
from tests.face_support import engine, needs_model, needs_photos, photo_bytes
from tests.test_staff_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, ensure_chromium

ARTIFACTS = ROOT / "test-artifacts"
pytestmark = [needs_model, needs_photos, pytest.mark.slow]


async def _impostor_case(app: web.Application) -> int:
    services = app[keys.SERVICES]
    settings = services.settings
    id_number = with_check_digit("63010219610804001")
    result = await enrol(services.db, engine(), photo_store(settings), id_number, "欧巴马",
                         photo_bytes("obama/obama1.jpg"))
    assert result.ok and result.pensioner_id
    with ThreadPoolExecutor(1) as pool:
        deps = WorkerDeps(settings=settings, engine=engine(), db=services.db, redis=services.redis,
                          photos=photo_store(settings), executor=pool)
        verdict = await process(deps, {"request_id": uuid.uuid4().hex, "conversation_key": "web:alice",
                                       "pensioner_id": result.pensioner_id, "proxy": False, "dialog": "certify",
                                       "channel": "web", "chat_user": "alice",
                                       "photo": photo_bytes("biden/biden1.jpg")})
    assert verdict["decision"] in ("failed", "rejected") and verdict["attempt_id"]
    conv = await services.conversations.load("web:alice")
    from datetime import datetime, timedelta, timezone

    proof = await evidence(services.db, result.pensioner_id, datetime.now(timezone.utc) - timedelta(hours=1))
    case_id = await services.handoff.escalate(conv, "face_failed", pensioner_id=result.pensioner_id,
                                              evidence=proof)
    await services.conversations.save(conv)
    return case_id


async def _login(browser: Any, base: str, username: str) -> Any:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(20000)
    await page.goto(f"{base}/staff/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/staff")
    return page


async def _natural_width(page: Any, selector: str) -> int:
    await page.wait_for_function(f"document.querySelector('{selector}') && "
                                 f"document.querySelector('{selector}').complete")
    return int(await page.eval_on_selector(selector, "img => img.naturalWidth"))


async def test_review_two_person_approval_and_live_status(aiohttp_server: Any, app: web.Application) -> None:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await app[AUTH].create_user("wang", PASSWORD, "agent")
    await app[AUTH].create_user("boss", PASSWORD, "supervisor")
    case_id = await _impostor_case(app)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            boss = await _login(browser, base, "boss")
            await boss.goto(f"{base}/staff/cases/{case_id}")
            await boss.wait_for_selector("#case-status >> text=排队中")

            agent = await _login(browser, base, "wang")
            await agent.goto(f"{base}/staff/cases/{case_id}")
            assert await _natural_width(agent, "img.reference") > 0
            assert await _natural_width(agent, "img.selfie") > 0
            verdict = await agent.inner_text(".verdict")
            assert "不像" in verdict or "不合格" in verdict
            await agent.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)
            await agent.click("#claim")
            await agent.wait_for_selector("text=已认领")

            # the supervisor's open page follows the case without a reload
            await boss.wait_for_selector("#case-status >> text=处理中", timeout=15000)
            assert await boss.is_visible("#stale")
            await boss.screenshot(path=str(ARTIFACTS / "live-status.png"), full_page=True)

            await agent.check("input[value=approved]")
            await agent.fill("#decision textarea[name=note]", "视频通话核实是本人")
            await agent.click("#resolve")
            await agent.wait_for_load_state()
            assert "勾选" in await agent.inner_text("main"), await agent.inner_text("main")
            await agent.go_back()
            await agent.check("input[value=approved]")
            assert await agent.input_value("#decision textarea[name=note]") == "视频通话核实是本人"  # draft kept
            await agent.check("#confirm")
            await agent.click("#resolve")
            await agent.wait_for_selector("text=等待主管复核")
            async with app[keys.SERVICES].db.session() as session:
                pensioner = await session.scalar(select(Pensioner))
            assert pensioner is not None and pensioner.certified_at is None

            await boss.goto(f"{base}/staff/cases/{case_id}")
            await boss.check("input[name=approve][value=yes]")
            await boss.fill("#decision textarea[name=note]", "已电话核实")
            await boss.click("#signoff")
            await boss.wait_for_selector("text=复核已提交")
            await boss.screenshot(path=str(ARTIFACTS / "signed-off.png"), full_page=True)
            async with app[keys.SERVICES].db.session() as session:
                pensioner = await session.scalar(select(Pensioner))
            assert pensioner is not None and pensioner.certified_by == "staff:boss"
        finally:
            await browser.close()


async def test_acknowledgement_in_a_human_handled_chat(aiohttp_server: Any, tmp_path: Path,
                                                       clean_backends: Any) -> None:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    from bot.app import create_app
    from tests.conftest import make_settings

    ARTIFACTS.mkdir(exist_ok=True)
    app = create_app(make_settings(tmp_path, clean_backends, **{"staff.ack_interval_s": 1}))
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await app[AUTH].create_user("wang", PASSWORD, "agent")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            chat = await (await browser.new_context()).new_page()
            chat.set_default_timeout(20000)
            await chat.goto(f"{base}/")
            await chat.fill("#text", "转人工")
            await chat.press("#text", "Enter")
            await chat.wait_for_selector("text=转接人工服务")
            console = await _login(browser, base, "wang")
            link = console.locator("#queue a", has_text="#")
            await link.first.wait_for()
            await link.first.click()
            await console.click("#claim")
            await chat.wait_for_selector("text=接下来由我为您服务")
            await chat.wait_for_timeout(1200)
            await chat.fill("#text", "我的照片总是不通过")
            await chat.press("#text", "Enter")
            await chat.wait_for_selector("text=已经转给工作人员")
            await chat.fill("#text", "转人工")
            await chat.press("#text", "Enter")
            await chat.wait_for_selector("text=就是在和工作人员对话")
            await chat.screenshot(path=str(ARTIFACTS / "human-chat-ack.png"), full_page=True)
        finally:
            await browser.close()
