"""Signed WeChat text messages for the chat load benchmark (plaintext mode).

The server under test runs with ``WECHAT_TOKEN=benchtoken``; every request carries a
fresh signature, timestamp, nonce and MsgId, exactly as WeChat's servers send them.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import aiohttp

TOKEN = "benchtoken"


def _xml(openid: str, text: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{str(uuid.uuid4().int)[:19]}</MsgId></xml>")


async def send_wechat(session: aiohttp.ClientSession, port: int, user: str, step: int, text: str) -> str | None:
    """POST one signed message: the passive reply (or ``success``), None for an error."""
    timestamp = str(int(time.time()))
    nonce = uuid.uuid4().hex[:10]
    signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
    params = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": f"o{user}"}
    async with session.post(f"http://127.0.0.1:{port}/wechat", params=params,
                            data=_xml(f"o{user}", text).encode(),
                            headers={"Content-Type": "text/xml"}) as response:
        body = await response.text()
        return body if response.status == 200 and body else None
