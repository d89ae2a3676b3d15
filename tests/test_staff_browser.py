"""End to end in a real browser: Playwright driving Debian's Chromium (no browser download).

A user asks for a person on the web chat page; a staff member, already logged in to the
console, sees the case appear live, claims it and replies; the reply shows up on the
user's chat page (which polls /api/chat/updates).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.staff.web import AUTH

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "secret-pass-1"


def ensure_chromium() -> str | None:
    """Install Debian's chromium when missing; the reason to skip, or None when it is there."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "chromium is not installed and apt-get is not usable here (needs root)"
    try:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900,
                       check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get install chromium failed: {exc}"
    return None if CHROMIUM.exists() else "apt-get could not install chromium (no package source?)"


@pytest.mark.slow
async def test_staff_claims_and_replies_and_the_user_sees_it(aiohttp_server: Any, app: web.Application) -> None:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await app[AUTH].create_user("wang", PASSWORD, "agent")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            console = await (await browser.new_context()).new_page()
            console.set_default_timeout(20000)
            await console.goto(f"{base}/staff/login")
            await console.fill("#username", "wang")
            await console.fill("#password", PASSWORD)
            await console.click("#login")
            await console.wait_for_url(f"{base}/staff")
            await console.wait_for_selector("text=现在没有排队的案件")

            chat = await (await browser.new_context()).new_page()
            chat.set_default_timeout(20000)
            await chat.goto(f"{base}/")
            await chat.wait_for_selector("text=青海养老金资格认证小助手")
            await chat.fill("#text", "转人工")
            await chat.press("#text", "Enter")
            await chat.wait_for_selector("text=转接人工服务")

            # The queue updates by itself (the console polls the Redis event stream).
            link = console.locator("#queue a", has_text="#")
            await link.first.wait_for()
            await link.first.click()
            await console.wait_for_selector("text=用户要求转人工")
            await console.click("#claim")
            await console.wait_for_selector("text=已认领")
            await chat.wait_for_selector("text=接下来由我为您服务")

            await chat.fill("#text", "我刷脸总是失败")
            await chat.press("#text", "Enter")
            await console.wait_for_selector("#messages >> text=我刷脸总是失败")  # live on the case page

            text = "您好，我是小王。请在亮一点的地方再拍一张正脸照片。"
            await console.fill("#reply-text", text)
            await console.click("#send-reply")
            await console.wait_for_selector("text=已发送")
            await chat.wait_for_selector(f"text=工作人员：{text}")
        finally:
            await browser.close()
