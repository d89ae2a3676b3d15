"""The web chat page: its own texts (buttons, camera hints, network notes) from the catalogs.

``bot/static/chat.html`` holds no user-facing text. Its elements name a key
(``data-t="send"``, ``data-t-placeholder``, ``data-t-aria``); the page is served with
those filled in Chinese and with every language's texts in a JSON block, so the script
switches the page to Tibetan when the chat's replies are in Tibetan (after "བོད་ཡིག 藏文")
and back, without another request.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson

from bot.core.i18n import LANGUAGES, ZH, render, tr

TEMPLATE = Path(__file__).resolve().parents[1] / "static" / "chat.html"

# key -> text; the keys are what chat.html and its script name.
PAGE_TEXTS: dict[str, str] = {
    "title": tr("养老金资格认证小助手"),
    "size": tr("字号："),
    "size_0": tr("标准"),
    "size_1": tr("大字"),
    "size_2": tr("特大"),
    "autoread_on": tr("自动朗读：开"),
    "autoread_off": tr("自动朗读：关"),
    "send_form": tr("发消息"),
    "input": tr("输入消息"),
    "placeholder": tr("在这里输入，或点上面的按钮"),
    "send": tr("发送"),
    "camera_open": tr("拍照认证"),
    "pick": tr("选照片"),
    "camera_title": tr("把脸放进椭圆框里"),
    "camera_opening": tr("正在打开相机…"),
    "shoot": tr("拍照"),
    "cancel": tr("取消"),
    "read": tr("朗读"),
    "read_aria": tr("朗读这条消息"),
    "photo_sent": tr("[照片]"),
    "net_retry": tr("网络不太好，请稍后再试。"),
    "net_reload": tr("网络不太好，请稍后刷新页面。"),
    "photo_failed": tr("照片没发出去，请再试一次。"),
    "shoot_failed": tr("拍照没成功，请再试一次。"),
    "too_dark": tr("光线太暗了，请到亮一点的地方，或打开灯"),
    "too_bright": tr("太亮了，请避开强光或窗户"),
    "light_ok": tr("光线可以。请正对镜头，把脸放进椭圆框里，然后点「拍照」"),
    "face_in_oval": tr("请正对镜头，把脸放进椭圆框里"),
    "no_face": tr("没看到脸，请正对镜头"),
    "closer": tr("请靠近一点"),
    "centre": tr("请把脸移到椭圆框中间，正对镜头"),
    "good": tr("很好，请点「拍照」"),
    "no_camera": tr("这个浏览器不能直接打开相机。请点「选照片」，拍一张或选一张正脸照片。"),
    "camera_denied": tr("没有得到使用相机的允许。请在浏览器设置里允许本网站使用相机，或点「选照片」选一张正脸照片。"),
    "camera_failed": tr("相机打不开。请点「选照片」，拍一张或选一张正脸照片。"),
    "camera_not_ready": tr("相机还没准备好，请稍等"),
}
_KEY = re.compile(r"\{\{t:([a-z0-9_]+)\}\}")


def page_texts() -> dict[str, dict[str, str]]:
    """Every language's page texts: ``{"zh": {key: text}, "bo": {...}}``."""
    return {language: {key: render(text, language) for key, text in PAGE_TEXTS.items()}
            for language in LANGUAGES}


def render_page(template: str) -> bytes:
    """The page: ``{{t:key}}`` in Chinese (HTML-escaped), ``{{texts}}`` as JSON for the script."""
    texts = page_texts()

    def fill(match: re.Match[str]) -> str:
        return html.escape(texts[ZH][match.group(1)])

    # JSON inside <script>: "<" escaped so no text can close the element.
    block = orjson.dumps(texts).decode().replace("<", "\\u003c")
    return _KEY.sub(fill, template).replace("{{texts}}", block).encode()


def load_page() -> bytes:
    """Read and fill the page once (start-up); a key the template names must exist."""
    return render_page(TEMPLATE.read_text(encoding="utf-8"))
