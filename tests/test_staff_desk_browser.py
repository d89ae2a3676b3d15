"""The console's all-day tools in Debian's Chromium (Playwright): search, the count in the tab
title, "/" shortcuts for canned responses, an inline error that keeps the draft.
Screenshots go to ``test-artifacts/`` (gitignored)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from bot.staff.web import AUTH, CANNED
from tests.conftest import ROOT
from tests.test_staff_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, ensure_chromium
from tests.test_staff_desk import ID_WANG, make_case, pensioner

ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.slow


async def _login(browser: Any, base: str, username: str) -> Any:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(20000)
    await page.goto(f"{base}/staff/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/staff")
    return page


async def test_search_title_count_slash_shortcut_and_inline_error(aiohttp_server: Any,
                                                                  app: web.Application) -> None:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await app[AUTH].create_user("wang", PASSWORD, "agent")
    await app[CANNED].seed_defaults()
    pid = await pensioner(app, ID_WANG, "王桂兰")
    review = await make_case(app, "old-user", reason="face_failed", pensioner_id=pid)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            console = await _login(browser, base, "wang")
            await console.wait_for_function("document.title.startsWith('(1) ')")  # the waiting review

            # Search by the full ID number, then a partial one is refused in words.
            await console.fill("#queue-search", ID_WANG)
            await console.press("#queue-search", "Enter")
            await console.wait_for_selector("#search-total >> text=找到 1 个案件")
            assert await console.locator(f"#results a[href='/staff/cases/{review}']").count() == 2
            await console.screenshot(path=str(ARTIFACTS / "staff-search.png"), full_page=True)
            await console.fill("#search-q", ID_WANG[:10])
            await console.click("#search-submit")
            await console.wait_for_selector("text=身份证号请输入完整的18位")
            await console.select_option("#search-kind", "review")
            await console.fill("#search-q", "")
            await console.click("#search-submit")
            await console.wait_for_selector("#search-total >> text=找到 1 个案件")

            # A user asks for a person; the title counts it live; the agent claims it.
            chat = await (await browser.new_context()).new_page()
            chat.set_default_timeout(20000)
            await chat.goto(f"{base}/")
            await chat.wait_for_selector("text=青海养老金资格认证小助手")
            await console.goto(f"{base}/staff")
            await console.wait_for_function("document.title.startsWith('(1) ')")
            await chat.fill("#text", "转人工")
            await chat.press("#text", "Enter")
            await chat.wait_for_selector("text=转接人工服务")
            await console.wait_for_function("document.title.startsWith('(2) ')")  # by the live polling
            assert (await console.title()).endswith("队列 · 人工服务台")
            await console.screenshot(path=str(ARTIFACTS / "staff-title-count.png"), full_page=True)
            await console.locator("#queue a", has_text="#").first.click()
            await console.click("#claim")
            await console.wait_for_selector("text=已认领")
            case_url = console.url.split("?")[0]

            # A message from the user while the agent looks at the queue: unread, counted.
            await console.goto(f"{base}/staff")
            await console.wait_for_function("document.title.startsWith('(1) ')")
            await chat.fill("#text", "我的照片总是不通过")
            await chat.press("#text", "Enter")
            await console.wait_for_selector("#mine >> text=● 未读")
            await console.wait_for_function("document.title.startsWith('(2) ')")
            await console.goto(case_url)
            await console.wait_for_function("document.title.startsWith('(1) ')")  # seen now

            # "/" shortcut: typing /重 offers 重拍; Enter inserts its text in place of "/重".
            await console.click("#reply-text")
            await console.keyboard.type("您好，")
            await console.keyboard.type("/重")
            await console.locator("#canned-suggest li", has_text="/重拍").wait_for()
            await console.screenshot(path=str(ARTIFACTS / "staff-slash-shortcut.png"), full_page=True)
            await console.keyboard.press("Enter")
            value = await console.input_value("#reply-text")
            assert value == "您好，请在光线明亮的地方，正对手机重新拍一张正脸照片发给我。"
            assert await console.locator("#canned-suggest").is_hidden()

            # An inline error: rejecting without a reason. The page and the reply draft stay.
            await console.check("input[name=decision][value=rejected]")
            await console.click("#resolve")
            await console.wait_for_selector("#decision .inline-error >> text=不通过时请写明原因")
            assert console.url.split("?")[0] == case_url and "msg=" not in console.url
            assert await console.input_value("#reply-text") == value
            await console.screenshot(path=str(ARTIFACTS / "staff-inline-error.png"), full_page=True)

            # With the reason it goes through like a normal submit.
            await console.fill("#decision textarea[name=note]", "照片不是本人")
            await console.click("#resolve")
            await console.wait_for_selector("text=案件已结束")
        finally:
            await browser.close()

