"""The web chat contract: /api/chat/session, /api/chat, /api/chat/updates, /healthz, bad input."""

import asyncio
import re
import time
from typing import Any

import aiohttp

from bot import keys
from bot.app import create_app
from bot.channels import web as web_channel
from bot.core.messages import Reply
from bot.core.outbox import ready_channel
from tests.conftest import make_settings
from tests.webchat import new_web_id, public_id, web_id

MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工", "བོད་ཡིག 藏文"]  # + the language option


async def chat(client: Any, text: str, user: str = "alice") -> dict[str, Any]:
    response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_greeting_gets_the_numbered_menu(client: Any) -> None:
    body = await chat(client, "你好")
    assert body["replies"][-1]["options"] == MENU
    assert "认证" in body["replies"][0]["text"]


async def test_option_by_number_and_by_words(client: Any) -> None:
    await chat(client, "你好")
    by_number = await chat(client, "3")
    assert "身份证" in by_number["replies"][0]["text"]
    await chat(client, "主菜单")
    by_words = await chat(client, "需要带什么材料")
    assert by_words["replies"][0]["text"] == by_number["replies"][0]["text"]


async def test_unknown_text_gets_clarifying_question_then_offer_of_a_person(client: Any) -> None:
    first = await chat(client, "啊啊啊啊")
    assert "没太明白" in first["replies"][0]["text"]
    assert first["replies"][-1]["options"] == MENU
    second = await chat(client, "嗯嗯嗯嗯")
    assert "转给工作人员" in second["replies"][0]["text"]
    assert second["replies"][-1]["options"] == ["转人工", "回到主菜单"]
    menu_again = await chat(client, "2")
    assert menu_again["replies"][-1]["options"] == MENU


async def test_page_is_chinese_with_upload(client: Any) -> None:
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert 'lang="zh-CN"' in html and 'type="file"' in html


async def test_health_reports_both_stores(client: Any) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "redis": "up", "database": "up"}


async def test_updates_returns_pushed_replies_once(client: Any) -> None:
    services = client.server.app[keys.SERVICES]
    await services.push("web:bob", [Reply("核验通过", ["好的"])])
    bob = await web_id(client, "bob")
    first = await (await client.get("/api/chat/updates", params={"user_id": bob})).json()
    assert first == {"replies": [{"text": "核验通过", "options": ["好的"]}]}
    second = await (await client.get("/api/chat/updates", params={"user_id": bob})).json()
    assert second == {"replies": []}


async def test_updates_with_wait_hold_the_request_until_a_reply_is_pushed(client: Any, monkeypatch: Any) -> None:
    # The held request does not look for itself within the test: only the bell can wake it.
    monkeypatch.setattr(web_channel, "LOOK_AGAIN_S", 30.0)
    services = client.server.app[keys.SERVICES]
    carol = await web_id(client, "carol")

    async def push_later() -> None:
        await asyncio.sleep(0.6)
        await services.push("web:carol", [Reply("认证成功")])

    started = time.monotonic()
    pushing = asyncio.create_task(push_later())
    response = await client.get("/api/chat/updates", params={"user_id": carol, "wait": "10"})
    held = time.monotonic() - started
    await pushing
    assert (await response.json())["replies"] == [{"text": "认证成功", "options": []}]
    assert 0.5 <= held < 5  # answered when the reply came, not at the end of the wait
    started = time.monotonic()
    empty = await client.get("/api/chat/updates", params={"user_id": carol, "wait": "0.5"})
    assert (await empty.json()) == {"replies": []} and time.monotonic() - started >= 0.5


async def held_updates(client: Any, name: str, wait: float) -> tuple[list[dict[str, Any]], float]:
    """GET /api/chat/updates with ``wait``, a reply pushed 0.3 s later: (replies, seconds held)."""
    services = client.server.app[keys.SERVICES]
    user = await web_id(client, name)

    async def push_later() -> None:
        await asyncio.sleep(0.3)
        await services.push(f"web:{public_id(user)}", [Reply("认证成功")])

    started = time.monotonic()
    pushing = asyncio.create_task(push_later())
    response = await client.get("/api/chat/updates", params={"user_id": user, "wait": str(wait)})
    await pushing
    return (await response.json())["replies"], time.monotonic() - started


async def test_a_held_request_still_gets_its_reply_when_the_bell_misses(client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(web_channel, "LOOK_AGAIN_S", 0.2)
    bell = client.server.app[web_channel.BELL]
    monkeypatch.setattr(bell, "ring", lambda key: None)  # the pub/sub message is lost
    replies, held = await held_updates(client, "dora", wait=10)
    assert replies == [{"text": "认证成功", "options": []}]
    assert held < 5


async def subscribers(redis: Any) -> int:
    """How many connections listen on this database's bell channel."""
    channel = ready_channel(redis)
    return int(dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0))


async def test_the_bell_subscribes_again_after_redis_drops_its_connection(client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(web_channel, "LOOK_AGAIN_S", 30.0)
    redis = client.server.app[keys.SERVICES].redis
    for _ in range(100):  # the subscription is made in the background at start-up
        if await subscribers(redis):
            break
        await asyncio.sleep(0.05)
    db = str(redis.connection_pool.connection_kwargs.get("db", 0))
    killed = 0
    for line in (await redis.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).decode().splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("db") == db and fields.get("sub") != "0":
            await redis.execute_command("CLIENT", "KILL", "ID", fields["id"])
            killed += 1
    assert killed >= 1
    for _ in range(100):  # noticed and made again
        if await subscribers(redis):
            break
        await asyncio.sleep(0.05)
    replies, held = await held_updates(client, "emil", wait=10)
    assert replies == [{"text": "认证成功", "options": []}]
    assert held < 5


async def test_updates_wait_out_of_range_is_a_json_400(client: Any) -> None:
    alice = await web_id(client, "alice")
    for wait in ("-1", "26", "soon", "nan"):
        response = await client.get("/api/chat/updates", params={"user_id": alice, "wait": wait})
        assert response.status == 400, wait
        assert (await response.json())["error"] == "invalid_wait"


async def test_bad_input_is_a_json_4xx(client: Any) -> None:
    a = await web_id(client, "a")
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"text": "hi"}', 400, "invalid_user_id"),
        (b'{"user_id": "%s", "text": 5}' % a.encode(), 400, "invalid_text"),
        (b'{"user_id": 7, "text": "hi"}', 400, "invalid_user_id"),
        (b'{"user_id": "a b/c", "text": "hi"}', 400, "invalid_user_id"),
        (b"\xff\xfe", 400, "invalid_json"),
    ]
    for body, status, code in cases:
        response = await client.post("/api/chat", data=body, headers={"Content-Type": "application/json"})
        assert response.status == status, body
        payload = await response.json()
        assert payload["error"] == code, body
        assert payload["message"]


async def test_text_over_2000_characters_is_refused(client: Any) -> None:
    a = await web_id(client, "a")
    response = await client.post("/api/chat", json={"user_id": a, "text": "认" * 2001})
    assert response.status == 400
    assert (await response.json())["error"] == "text_too_long"
    ok = await client.post("/api/chat", json={"user_id": a, "text": "认" * 2000})
    assert ok.status == 200


async def test_api_errors_are_said_in_the_language_the_client_asks_for(client: Any) -> None:
    a = await web_id(client, "a")
    tibetan = await client.post("/api/chat", json={"user_id": a, "text": "认" * 2001},
                                headers={"Accept-Language": "bo"})
    said = await tibetan.json()
    assert tibetan.status == 400 and said["error"] == "text_too_long"
    assert re.search(r"[\u0F40-\u0FBC]", said["message"]) and said["replies"][0]["text"] == said["message"]
    missing = await client.get("/api/chat/nowhere", headers={"Accept-Language": "bo,zh;q=0.8"})
    assert missing.status == 404 and re.search(r"[\u0F40-\u0FBC]", (await missing.json())["message"])
    chinese = await client.post("/api/chat", json={"user_id": a, "text": "认" * 2001},
                                headers={"Accept-Language": "zh-CN,bo;q=0.5"})
    assert "消息太长了" in (await chinese.json())["message"]


async def test_body_over_limit_is_413(client: Any) -> None:
    big = b'{"user_id": "%s", "text": "' % (await web_id(client, "a")).encode() + b"x" * (11 * 1024 * 1024) + b'"}'
    response = await client.post("/api/chat", data=big, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"]


async def test_multipart_without_image_is_400(client: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("user_id", await web_id(client, "a"))
    response = await client.post("/api/chat", data=form)
    assert response.status == 400
    assert (await response.json())["error"] == "missing_image"


async def test_control_characters_are_stripped_and_emoji_accepted(client: Any) -> None:
    body = await chat(client, "你好\x00\x07😀")
    assert body["replies"][-1]["options"] == MENU


async def test_numbers_pick_the_options_of_a_knowledge_answer(client: Any) -> None:
    body = await chat(client, "能用指纹认证吗")  # an answer outside any dialog, with options
    options = body["replies"][-1]["options"]
    assert options
    by_number = await chat(client, "1")
    await chat(client, "主菜单")
    await chat(client, "能用指纹认证吗")
    by_words = await chat(client, options[0])
    assert by_number["replies"][0]["text"] == by_words["replies"][0]["text"]
    assert "没太明白" not in by_number["replies"][0]["text"]


# --- Identity: only ids the server issued (issue 15, finding 1) ---

async def test_session_issues_an_opaque_id_in_an_httponly_samesite_cookie(client: Any) -> None:
    response = await client.post("/api/chat/session")
    assert response.status == 200
    user_id = (await response.json())["user_id"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"chat_id={user_id};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/api/chat" in cookie
    # The cookie alone identifies the chat; calling again keeps the same id.
    assert (await (await client.post("/api/chat/session")).json())["user_id"] == user_id
    async with aiohttp.ClientSession() as browser:  # another browser gets another id
        assert await new_web_id(browser, str(client.make_url("/api/chat/session"))) != user_id
    by_cookie = await client.post("/api/chat", json={"text": "你好"})
    assert by_cookie.status == 200 and (await by_cookie.json())["replies"][-1]["options"] == MENU


async def test_ids_the_server_did_not_issue_are_refused(client: Any) -> None:
    real = await new_web_id(client)
    forged = [
        "alice",                                   # what any client could make up
        public_id(real),                           # the public part shown to staff
        public_id(real) + ".AAAAAAAAAAAAAAAAAAAAAAAA",  # a guessed signature
        real[:-1] + ("A" if real[-1] != "A" else "B"),
    ]
    for user_id in forged:
        for response in (
            await client.post("/api/chat", json={"user_id": user_id, "text": "你好"}),
            await client.get("/api/chat/updates", params={"user_id": user_id}),
        ):
            assert response.status == 403, user_id
            body = await response.json()
            assert body["error"] == "unknown_user" and "刷新" in body["message"]
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"chat_id": "alice"})
    assert (await client.post("/api/chat", json={"text": "你好"})).status == 403


async def test_nobody_reads_or_takes_another_users_updates(client: Any) -> None:
    services = client.server.app[keys.SERVICES]
    victim = await new_web_id(client)
    client.session.cookie_jar.clear()
    await services.push(f"web:{public_id(victim)}", [Reply("工作人员：请再拍一张", [])])
    # Today's main answered this with the victim's reply and removed it from their queue.
    for snoop in (public_id(victim), f"web:{public_id(victim)}"):
        response = await client.get("/api/chat/updates", params={"user_id": snoop})
        assert response.status in (400, 403)
    response = await client.get("/api/chat/updates", params={"user_id": victim})
    assert (await response.json())["replies"] == [{"text": "工作人员：请再拍一张", "options": []}]


async def test_nobody_posts_as_another_user(client: Any) -> None:
    services = client.server.app[keys.SERVICES]
    victim = await new_web_id(client)
    client.session.cookie_jar.clear()
    await (await client.post("/api/chat", json={"user_id": victim, "text": "啊啊啊啊"})).json()
    response = await client.post("/api/chat", json={"user_id": public_id(victim), "text": "转人工"})
    assert response.status == 403
    conversation = await services.conversations.load(f"web:{public_id(victim)}")
    assert conversation.mode == "bot" and conversation.turns == 1
    assert [t["text"] for t in conversation.transcript if t["role"] == "user"] == ["啊啊啊啊"]


async def test_the_signing_secret_is_shared_and_configurable(aiohttp_client: Any, settings: Any,
                                                            tmp_path: Any, clean_backends: Any) -> None:
    from bot.app import create_app
    from tests.conftest import make_settings

    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))  # another process: the secret kept in Redis
    issued = await new_web_id(one)
    ok = await two.post("/api/chat", json={"user_id": issued, "text": "你好"})
    assert ok.status == 200
    configured = make_settings(tmp_path, clean_backends, **{"web_chat.session_secret": "s" * 32})
    three = await aiohttp_client(create_app(configured))
    refused = await three.post("/api/chat", json={"user_id": issued, "text": "你好"})
    assert refused.status == 403


async def test_history_is_kept_with_the_turn_and_a_redelivery_adds_nothing(client: Any) -> None:
    """The page history is written in the turn's closing Redis batch: the user's text masked,
    every reply; a re-sent message (same message_id) answers again without a second copy."""
    user = await web_id(client, "hana")
    sent = {"user_id": user, "text": "需要带什么材料 63010219500315002X", "message_id": "m-1"}
    first = await client.post("/api/chat", json=sent)
    again = await client.post("/api/chat", json=sent)
    assert first.status == again.status == 200
    await chat(client, "谢谢", user="hana")
    response = await client.get("/api/chat/history", params={"user_id": user})
    messages = (await response.json())["messages"]
    users = [m["text"] for m in messages if m["role"] == "user"]
    assert users == ["需要带什么材料 630102********002X", "谢谢"]
    answer = (await first.json())["replies"]
    assert messages[1:1 + len(answer)] == [{"role": "bot", **reply} for reply in answer]


async def test_a_photo_over_the_limit_is_told_the_configured_limit(aiohttp_client: Any, tmp_path: Any,
                                                                   clean_backends: Any) -> None:
    settings = make_settings(tmp_path, clean_backends, **{"server.max_body_bytes": 2 * 1024 * 1024})
    client = await aiohttp_client(create_app(settings))
    form = aiohttp.FormData()
    form.add_field("user_id", await web_id(client, "a"))
    form.add_field("image", b"\xff\xd8" + b"\x00" * (3 * 1024 * 1024), filename="big.jpg",
                   content_type="image/jpeg")
    response = await client.post("/api/chat", data=form)
    assert response.status == 413
    message = (await response.json())["message"]
    assert "2MB" in message and "10MB" not in message
