"""The web chat page in a real Chromium (Playwright, Debian's /usr/bin/chromium).

What an elderly user on a phone does: opens the page, reads the server's greeting, makes the
text larger, hears a message, takes a guided selfie with the (fake) camera fed a real face
photo, and after a reload still sees the conversation. Plus axe-core (vendored) finds no
serious or critical violation; screenshots at 400 px and 1280 px go to test-artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import keys
from bot.core.messages import Reply
from tests.conftest import FACES_DIR, ROOT
from tests.test_staff_browser import CHROMIUM, CHROMIUM_ARGS, ensure_chromium
from tests.webchat import public_id

ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
FACE = FACES_DIR / "obama" / "obama1.jpg"
PHONE = {"width": 400, "height": 820}
# Record what the page asks the browser to say (headless Chromium has no voices to hear).
SPOKEN = """window.__spoken = [];
if (window.speechSynthesis) {
  const original = window.speechSynthesis.speak.bind(window.speechSynthesis);
  window.speechSynthesis.speak = (u) => { window.__spoken.push({text: u.text, lang: u.lang}); original(u); };
}"""


def face_y4m(path: Path, photo: Path, width: int = 640, height: int = 480) -> Path:
    """A short Y4M video (4:2:0) of ``photo``, for Chromium's fake camera."""
    from PIL import Image, ImageOps

    image = ImageOps.fit(Image.open(photo).convert("RGB"), (width, height), centering=(0.5, 0.15))
    y, u, v = image.convert("YCbCr").split()
    half = (width // 2, height // 2)
    frame = b"FRAME\n" + y.tobytes() + u.resize(half).tobytes() + v.resize(half).tobytes()
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 10)
    return path


async def _launch(pw: Any, extra: list[str] | None = None) -> Any:
    return await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS + (extra or []))


def _skip_without_chromium() -> None:
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)


@pytest.mark.slow
async def test_elderly_user_on_a_phone(aiohttp_server: Any, app: web.Application, tmp_path: Path) -> None:
    _skip_without_chromium()
    if not FACE.is_file():
        pytest.skip(f"face photo missing: {FACE} (set FACES_DIR)")
    from playwright.async_api import async_playwright

    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    video = face_y4m(tmp_path / "face.y4m", FACE)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await _launch(pw, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                     f"--use-file-for-fake-video-capture={video}"])
        try:
            context = await browser.new_context(viewport=PHONE, permissions=["camera"])
            await context.add_init_script(SPOKEN)
            page = await context.new_page()
            page.set_default_timeout(20000)
            await page.goto(base + "/")
            await page.wait_for_selector("body[data-ready='1']")
            # The greeting comes from the server and is not shown as the user's own message.
            await page.wait_for_selector(".msg.bot >> text=青海养老金资格认证小助手")
            assert await page.locator(".msg.me").count() == 0, "no phantom message"
            # Five choices plus the language switch (issue 19), shown in both scripts.
            assert await page.locator(".msg.bot .options button").count() == 6
            assert await page.locator(".msg.bot .options button >> text=藏文").count() == 1

            # Larger text, remembered.
            before = await page.evaluate("getComputedStyle(document.querySelector('.msg')).fontSize")
            await page.click("#size")
            assert await page.inner_text("#size") == "字号：大字"
            after = await page.evaluate("getComputedStyle(document.querySelector('.msg')).fontSize")
            assert float(after[:-2]) > float(before[:-2])
            # Touch targets at least 48 px.
            sizes = await page.evaluate("""[...document.querySelectorAll('button:not([hidden])')]
                .filter(b => b.offsetParent).map(b => [b.textContent, b.getBoundingClientRect().height,
                                                        b.getBoundingClientRect().width])""")
            assert sizes and all(h >= 48 and w >= 48 for _, h, w in sizes), sizes

            # Hear a message: the 🔊 button reads it in zh-CN.
            await page.locator(".msg.bot .say").first.click()
            spoken = await page.evaluate("window.__spoken")
            assert spoken and "认证" in spoken[0]["text"] and spoken[0]["lang"] == "zh-CN"
            await page.click("#autoread")
            assert await page.get_attribute("#autoread", "aria-pressed") == "true"

            # An option by keyboard only: Tab to it, Enter.
            await page.locator(".msg.bot .options button", has_text="需要带什么材料").focus()
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".msg.me >> text=需要带什么材料")
            await page.wait_for_selector(".msg.bot >> text=身份证")
            assert any("身份证" in s["text"] for s in await page.evaluate("window.__spoken")), "read aloud"

            await page.screenshot(path=str(ARTIFACTS / "web-chat-400.png"), full_page=True)

            # The guided selfie with the (fake) front camera.
            await page.click("#camera-open")
            await page.wait_for_selector("#camera:not([hidden])")
            await page.wait_for_function("document.getElementById('camera').dataset.brightness")
            hint = await page.inner_text("#hint")
            assert hint and hint != "正在打开相机…"
            await page.screenshot(path=str(ARTIFACTS / "web-chat-camera-400.png"))
            async with page.expect_request(lambda r: r.url.endswith("/api/chat") and r.method == "POST"
                                           and "multipart/form-data" in (r.headers.get("content-type") or "")
                                           ) as sent:
                await page.click("#shoot")
            request = await sent.value
            response = await request.response()
            assert response is not None and response.status == 200
            await page.wait_for_selector(".msg.me >> text=[照片]")
            # The server got the photo in this user's chat (the id is the page's HttpOnly cookie).
            [cookie] = [c for c in await context.cookies() if c["name"] == "chat_id"]
            assert cookie["httpOnly"]
            conversation = await app[keys.SERVICES].conversations.load(f"web:{public_id(cookie['value'])}")
            assert any(t["role"] == "user" and t["text"] == "[照片]" for t in conversation.transcript)
            assert await page.locator("#camera").is_hidden()
            shown = await page.locator(".msg").count()

            # After a reload: the same conversation, options included, text size kept.
            await page.reload()
            await page.wait_for_selector("body[data-ready='1']")
            await page.wait_for_selector(".msg.me >> text=需要带什么材料")
            assert await page.locator(".msg").count() == shown
            assert await page.locator(".msg.me", has_text="你好").count() == 0
            assert await page.locator(".msg.bot .options button").count() >= 5
            assert await page.inner_text("#size") == "字号：大字"

            # Accessibility: axe-core, WCAG 2.1 A/AA rules.
            await page.add_script_tag(path=str(AXE))
            result = await page.evaluate("""async () => {
                const r = await axe.run(document, {runOnly: {type: 'tag',
                    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
                return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}));
            }""")
            bad = [v for v in result if v["impact"] in ("serious", "critical")]
            assert not bad, json.dumps(bad)

            wide = await browser.new_context(viewport={"width": 1280, "height": 900})
            desk = await wide.new_page()
            await desk.goto(base + "/")
            await desk.wait_for_selector("body[data-ready='1']")
            await desk.wait_for_selector(".msg.bot")
            await desk.screenshot(path=str(ARTIFACTS / "web-chat-1280.png"), full_page=True)
        finally:
            await browser.close()
    assert (ARTIFACTS / "web-chat-400.png").stat().st_size > 0


@pytest.mark.slow
async def test_no_speech_no_camera_permission(aiohttp_server: Any, app: web.Application) -> None:
    _skip_without_chromium()
    from playwright.async_api import async_playwright

    server = await aiohttp_server(app)
    async with async_playwright() as pw:
        browser = await _launch(pw)
        try:
            context = await browser.new_context(viewport=PHONE)
            await context.add_init_script("delete window.speechSynthesis; delete window.SpeechSynthesisUtterance;"
                                          "navigator.mediaDevices.getUserMedia = () => Promise.reject("
                                          "new DOMException('denied', 'NotAllowedError'));")
            page = await context.new_page()
            page.set_default_timeout(20000)
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.wait_for_selector(".msg.bot >> text=青海养老金资格认证小助手")
            assert await page.locator(".say").count() == 0, "no 🔊 where the browser cannot speak"
            assert await page.locator("#autoread").is_hidden()
            await page.click("#camera-open")
            await page.wait_for_selector(".msg.note >> text=没有得到使用相机的允许")
            assert await page.locator("#camera").is_hidden()
            assert await page.locator("#pick").is_visible(), "the file picker stays as the fallback"
            # A staff reply in Tibetan arrives by polling and is marked lang="bo".
            [cookie] = [c for c in await context.cookies() if c["name"] == "chat_id"]
            await app[keys.SERVICES].push(f"web:{public_id(cookie['value'])}",
                                          [Reply("བཀྲ་ཤིས་བདེ་ལེགས། 您好")])
            await page.wait_for_selector(".msg.bot[lang='bo'] >> text=བཀྲ་ཤིས་བདེ་ལེགས")
            assert await page.locator(".msg.bot[lang='zh-CN']").count() >= 1
        finally:
            await browser.close()


@pytest.mark.slow
async def test_the_camera_says_when_it_is_too_dark(aiohttp_server: Any, app: web.Application,
                                                   tmp_path: Path) -> None:
    _skip_without_chromium()
    if not FACE.is_file():
        pytest.skip(f"face photo missing: {FACE} (set FACES_DIR)")
    from PIL import Image
    from playwright.async_api import async_playwright

    dark = tmp_path / "dark.png"
    Image.open(FACE).convert("RGB").point(lambda v: v // 8).save(dark)  # the face at dusk
    video = face_y4m(tmp_path / "dark.y4m", dark)
    server = await aiohttp_server(app)
    async with async_playwright() as pw:
        browser = await _launch(pw, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                     f"--use-file-for-fake-video-capture={video}"])
        try:
            page = await (await browser.new_context(viewport=PHONE, permissions=["camera"])).new_page()
            page.set_default_timeout(20000)
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.wait_for_selector("body[data-ready='1']")
            await page.click("#camera-open")
            await page.wait_for_selector("#hint >> text=光线太暗")
            assert int(await page.get_attribute("#camera", "data-brightness") or "255") < 60
            await page.keyboard.press("Escape")  # the keyboard closes it and stops the camera
            assert await page.locator("#camera").is_hidden()
        finally:
            await browser.close()


@pytest.mark.slow
async def test_the_page_speaks_tibetan_after_the_chat_does(aiohttp_server: Any, app: web.Application) -> None:
    """Buttons, placeholder and title follow the chat's language, also after a reload."""
    _skip_without_chromium()
    from playwright.async_api import async_playwright

    from bot.channels.web_page import page_texts
    from bot.core.i18n import render, tr

    bo, zh = page_texts()["bo"], page_texts()["zh"]
    server = await aiohttp_server(app)
    async with async_playwright() as pw:
        browser = await _launch(pw)
        try:
            page = await (await browser.new_context(viewport=PHONE)).new_page()
            page.set_default_timeout(20000)
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.wait_for_selector("body[data-ready='1']")
            send = page.locator("#send button[type=submit]")
            assert await send.inner_text() == zh["send"] == "发送"
            await page.click(".msg.bot .options button >> text=藏文")
            await page.wait_for_selector(f"#send button[type=submit] >> text={bo['send']}")
            assert await page.get_attribute("html", "lang") == "bo"
            assert await page.get_attribute("#text", "placeholder") == bo["placeholder"]
            assert await page.get_attribute("#send", "aria-label") == bo["send_form"]
            assert await page.inner_text("#camera-open") == "📷 " + bo["camera_open"]
            assert await page.title() == bo["title"]
            assert await page.inner_text("#size-now") == bo["size_0"]
            await page.click("#size")
            assert await page.inner_text("#size-now") == bo["size_1"]
            await page.reload()
            await page.wait_for_selector("body[data-ready='1']")
            assert await send.inner_text() == bo["send"], "the history's language after a reload"
            # an empty photo file: the API's 400 is said in Tibetan too
            await page.set_input_files("#photo", {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": b""})
            empty = render(tr("照片是空的，请重新上传。"), "bo")
            await page.wait_for_selector(f".msg.bot >> text={empty}")
            assert "照片是空的" not in await page.locator(".msg.bot").last.inner_text()
            await page.fill("#text", "中文")  # back to Chinese
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#send button[type=submit] >> text=发送")
            assert await page.get_attribute("html", "lang") == "zh-CN"
        finally:
            await browser.close()


async def test_history_is_served_only_to_its_owner(client: Any) -> None:
    from tests.webchat import new_web_id

    owner = await new_web_id(client)
    greeting = await client.post("/api/chat", json={"event": "start"})
    assert greeting.status == 200
    await client.post("/api/chat", json={"text": "需要带什么材料 63010219500315002X"})
    messages = (await (await client.get("/api/chat/history")).json())["messages"]
    assert [m["role"] for m in messages][:2] == ["bot", "user"], "the greeting is not the user's"
    assert messages[0]["options"], "pending options come back"
    assert messages[1]["text"] == "需要带什么材料 630102********002X", "ID numbers are kept masked"
    client.session.cookie_jar.clear()
    for user_id in (owner.rpartition(".")[0], "someone"):
        response = await client.get("/api/chat/history", params={"user_id": user_id})
        assert response.status == 403
    assert (await client.get("/api/chat/history", params={"user_id": owner})).status == 200
