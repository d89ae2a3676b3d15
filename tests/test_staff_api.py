"""The staff console API: sessions, CSRF, lockout, roles, claim races, relay, decisions, restart."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.core.messages import InboundMessage, Reply
from bot.core.storage.models import AuditLog, Case, CaseMessage, CertificationAttempt, FaceTemplate, Pensioner
from bot.records.cases import QUEUE_KEY
from bot.staff.desk import GREETING
from bot.staff.web import AUTH, COOKIE
from tests.conftest import ROOT, make_settings
from tests.webchat import web_id

PASSWORD = "secret-pass-1"
MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工", "བོད་ཡིག 藏文"]  # + the language option


async def add_staff(app: web.Application, username: str, role: str = "agent") -> int:
    user = await app[AUTH].create_user(username, PASSWORD, role)
    return user.id


async def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    response = await client.post("/staff/login", data={"username": username, "password": password},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/staff"
    return response


async def chat(client: Any, user: str, text: str) -> list[dict[str, Any]]:
    response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
    assert response.status == 200, await response.text()
    return list((await response.json())["replies"])


async def updates(client: Any, user: str) -> list[dict[str, Any]]:
    response = await client.get("/api/chat/updates", params={"user_id": await web_id(client, user)})
    assert response.status == 200
    return list((await response.json())["replies"])


async def cases(client: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/staff/cases")
    assert response.status == 200, await response.text()
    return list(await response.json())


async def audit_actions(app: web.Application, actor: str) -> list[str]:
    async with app[keys.SERVICES].db.session() as session:
        return list(await session.scalars(select(AuditLog.action).where(AuditLog.actor == actor)
                                          .order_by(AuditLog.id)))


async def second_client(aiohttp_client: Any, client: Any) -> Any:
    """Another browser on the same server (its own cookie jar)."""
    return await aiohttp_client(client.server)


# ---------------------------------------------------------------- sessions


async def test_without_a_session_the_api_is_401_json(client: Any) -> None:
    for method, path in [("GET", "/api/staff/cases"), ("POST", "/api/staff/cases/1/claim"),
                         ("POST", "/api/staff/cases/1/messages"), ("POST", "/api/staff/cases/1/resolve"),
                         ("GET", "/api/staff/events")]:
        response = await client.request(method, path, json={"text": "x"})
        assert response.status == 401, path
        body = await response.json()
        assert body["error"] == "unauthorized" and body["message"]
    page = await client.get("/staff", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/staff/login"
    form = await client.post("/staff/cases/1/claim", data={"csrf": "x"}, allow_redirects=False)
    assert form.status == 401


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(client: Any) -> None:
    await add_staff(client.server.app, "wang")
    bad = await client.post("/staff/login", data={"username": "wang", "password": "nope-nope"})
    assert bad.status == 401 and "用户名或密码不对" in await bad.text()
    response = await login(client, "wang")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie
    assert await cases(client) == []
    page = await client.get("/staff")
    html = await page.text()
    assert page.status == 200 and 'lang="zh-CN"' in html and "排队中的案件" in html
    me = await (await client.get("/api/staff/me")).json()
    logout = await client.post("/staff/logout", data={"csrf": me["csrf_token"]}, allow_redirects=False)
    assert logout.status == 303
    assert (await client.get("/api/staff/cases")).status == 401
    assert await audit_actions(client.server.app, "staff:wang") == ["login_failed", "login", "logout"]


async def test_secure_cookies_follow_the_config(aiohttp_client: Any, tmp_path: Path, clean_backends: Any) -> None:
    app = create_app(make_settings(tmp_path, clean_backends, **{"staff.secure_cookies": True}))
    client = await aiohttp_client(app)
    await add_staff(app, "wang")
    response = await client.post("/staff/login", data={"username": "wang", "password": PASSWORD},
                                 allow_redirects=False)
    assert "Secure" in response.headers["Set-Cookie"]


async def test_json_login_returns_the_csrf_token(client: Any) -> None:
    await add_staff(client.server.app, "wang")
    response = await client.post("/staff/login", data={"username": "wang", "password": PASSWORD},
                                 headers={"Accept": "application/json"})
    body = await response.json()
    assert response.status == 200 and body["username"] == "wang" and body["role"] == "agent"
    assert len(body["csrf_token"]) > 20
    bad = await client.post("/staff/login", data={"username": "wang"}, headers={"Accept": "application/json"})
    assert bad.status == 400 and (await bad.json())["error"] == "missing_credentials"


async def test_lockout_after_repeated_failures(aiohttp_client: Any, tmp_path: Path, clean_backends: Any) -> None:
    app = create_app(make_settings(tmp_path, clean_backends,
                                   **{"staff.max_failed_logins": 3, "staff.lockout_s": 2}))
    client = await aiohttp_client(app)
    await add_staff(app, "wang")
    for _ in range(3):
        response = await client.post("/staff/login", data={"username": "wang", "password": "wrong-pass"})
        assert response.status == 401
    locked = await client.post("/staff/login", data={"username": "wang", "password": PASSWORD},
                               allow_redirects=False)
    assert locked.status == 429 and "锁定" in await locked.text()
    assert COOKIE not in locked.cookies
    # unknown names lock the same way, so the answer says nothing about who exists
    for _ in range(3):
        assert (await client.post("/staff/login", data={"username": "ghost", "password": "x"})).status == 401
    assert (await client.post("/staff/login", data={"username": "ghost", "password": "x"})).status == 429
    await asyncio.sleep(2.2)
    await login(client, "wang")
    actions = await audit_actions(app, "staff:wang")
    assert actions.count("login_failed") == 3 and "login_locked" in actions and actions[-1] == "login"


# ---------------------------------------------------------------- CSRF


async def test_csrf_refusals(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    [case] = await _login_and_cases(client, "wang")
    case_id = case["id"]
    # a page form without (or with a wrong) token
    for data in ({}, {"csrf": "forged"}):
        response = await client.post(f"/staff/cases/{case_id}/claim", data=data)
        assert response.status == 403 and "页面已过期" in await response.text()
    # an API call from another site, or with a wrong token
    evil = await client.post(f"/api/staff/cases/{case_id}/claim", headers={"Origin": "https://evil.example"})
    assert evil.status == 403 and (await evil.json())["error"] == "forbidden"
    cross = await client.post(f"/api/staff/cases/{case_id}/claim", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    wrong = await client.post(f"/api/staff/cases/{case_id}/claim", headers={"X-CSRF-Token": "nope"})
    assert wrong.status == 403
    login_elsewhere = await client.post("/staff/login", data={"username": "wang", "password": PASSWORD},
                                        headers={"Origin": "https://evil.example"})
    assert login_elsewhere.status == 403
    assert (await cases(client))[0]["status"] == "waiting"
    token = (await (await client.get("/api/staff/me")).json())["csrf_token"]
    ok = await client.post(f"/api/staff/cases/{case_id}/claim",
                           headers={"X-CSRF-Token": token, "Origin": f"http://{client.server.host}:{client.server.port}"})
    assert ok.status == 200 and (await ok.json())["status"] == "claimed"


async def _login_and_cases(client: Any, username: str) -> list[dict[str, Any]]:
    await login(client, username)
    return await cases(client)


# ---------------------------------------------------------------- the whole flow on web


async def test_web_relay_both_ways_and_every_state_change(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "你好")
    replies = await chat(client, "alice", "转人工")
    assert "转接人工" in replies[0]["text"]
    [case] = await _login_and_cases(client, "wang")
    assert set(case) >= {"id", "user_id", "reason", "status", "channel", "created_at"}
    assert (case["user_id"], case["reason"], case["status"], case["channel"]) == ("alice", "user_request",
                                                                               "waiting", "web")
    datetime.fromisoformat(case["created_at"])
    case_id = case["id"]

    waiting = await chat(client, "alice", "还要等多久")
    assert "排队" in waiting[0]["text"]

    claimed = await client.post(f"/api/staff/cases/{case_id}/claim")
    assert claimed.status == 200 and (await claimed.json())["status"] == "claimed"
    assert await app[keys.SERVICES].redis.zcard(QUEUE_KEY) == 0
    greeting = await updates(client, "alice")
    assert "工作人员" in greeting[0]["text"]

    # user -> staff: the bot stays silent, staff see it
    assert await chat(client, "alice", "我刷脸三次都没过") == []
    detail = await (await client.get(f"/api/staff/cases/{case_id}")).json()
    assert [(m["author"], m["text"]) for m in detail["messages"]] == [("user", "还要等多久"), ("staff", GREETING),
                                                                      ("user", "我刷脸三次都没过")]
    assert any(t["text"] == "你好" for t in detail["transcript"])

    # staff -> user through the web channel
    sent = await client.post(f"/api/staff/cases/{case_id}/messages", json={"text": "请在亮一点的地方再拍一张"})
    assert sent.status == 201
    assert [r["text"] for r in await updates(client, "alice")] == ["工作人员：请在亮一点的地方再拍一张"]

    note = await client.post(f"/api/staff/cases/{case_id}/notes", json={"text": "老人视力不好"})
    assert note.status == 201
    assert await updates(client, "alice") == []  # notes never reach the user

    resolved = await client.post(f"/api/staff/cases/{case_id}/resolve", json={"decision": "resolved", "note": ""})
    body = await resolved.json()
    assert resolved.status == 200 and body["status"] == "closed" and body["decision"] == "resolved"
    closing = await updates(client, "alice")
    assert closing[-1]["text"].startswith("这次帮到您了吗") and closing[-1]["options"] == ["帮到了", "帮到一部分", "没帮到"]
    again = await client.post(f"/api/staff/cases/{case_id}/messages", json={"text": "还在吗"})
    assert again.status == 409

    thanks = await chat(client, "alice", "1")
    assert "谢谢" in thanks[0]["text"] and thanks[-1]["options"] == MENU
    after = await chat(client, "alice", "需要带什么材料")
    assert "身份证" in after[0]["text"]
    actions = await audit_actions(app, "staff:wang")
    assert actions == ["login", "claim_case", "view_case", "staff_message", "case_note", "case_resolved"]


async def test_claim_race_has_one_winner(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await add_staff(app, "li")
    await chat(client, "alice", "转人工")
    other = await second_client(aiohttp_client, client)
    await login(client, "wang")
    await login(other, "li")
    [case] = await cases(client)
    first, second = await asyncio.gather(client.post(f"/api/staff/cases/{case['id']}/claim"),
                                         other.post(f"/api/staff/cases/{case['id']}/claim"))
    assert sorted([first.status, second.status]) == [200, 409]
    loser = first if first.status == 409 else second
    assert (await loser.json())["error"] == "conflict"
    async with app[keys.SERVICES].db.session() as session:
        row = await session.get(Case, case["id"])
    assert row is not None and row.status == "claimed"
    greetings = await updates(client, "alice")
    assert len(greetings) == 1  # the user is greeted once, by the winner


async def test_many_staff_racing_on_many_cases(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    clients = [client] + [await second_client(aiohttp_client, client) for _ in range(3)]
    for i, c in enumerate(clients):
        await add_staff(app, f"s{i}")
        await login(c, f"s{i}")
    for user in ("u1", "u2"):
        await chat(client, user, "转人工")
    ids = [c["id"] for c in await cases(client)]
    results = await asyncio.gather(*[c.post(f"/api/staff/cases/{i}/claim") for i in ids for c in clients])
    statuses = [r.status for r in results]
    assert statuses.count(200) == 2 and statuses.count(409) == 6


async def test_approved_records_certification_by_staff(client: Any) -> None:
    app = client.server.app
    services = app[keys.SERVICES]
    await add_staff(app, "wang")
    pensioner = await services.registry.register("630102195003150020", "张桂兰", region="西宁")
    async with services.db.session() as session:  # the evidence supports an approval: no sign-off
        session.add(FaceTemplate(pensioner_id=pensioner.id, model="Dlib", embedding=[0.0]))
        session.add(CertificationAttempt(pensioner_id=pensioner.id, channel="web", chat_user="alice",
                                         decision="passed", distance=0.04, threshold=0.08))
    conv = await services.conversations.load("web:alice")
    await services.handoff.escalate(conv, "appeal", pensioner_id=pensioner.id,
                                    evidence={"attempts": 3, "quality_codes": ["too_dark"]})
    await services.conversations.save(conv)
    [case] = await _login_and_cases(client, "wang")
    assert case["reason"] == "appeal"
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    await updates(client, "alice")
    detail = await (await client.get(f"/api/staff/cases/{case['id']}")).json()
    assert detail["pensioner"]["name"] == "张桂兰" and detail["pensioner"]["id_number"].startswith("630102****")
    assert detail["evidence"] == {"attempts": 3, "quality_codes": ["too_dark"]}
    response = await client.post(f"/api/staff/cases/{case['id']}/resolve",
                                 json={"decision": "approved", "note": "视频核实本人"})
    assert response.status == 200
    async with services.db.session() as session:
        row = await session.get(Pensioner, pensioner.id)
    assert row is not None and row.certified_by == "staff:wang" and row.next_due is not None
    pushed = await updates(client, "alice")
    assert "审核通过" in pushed[0]["text"]
    assert f"{row.next_due.year}年{row.next_due.month}月{row.next_due.day}日" in pushed[0]["text"]
    async with services.db.session() as session:
        entry = await session.scalar(select(AuditLog).where(AuditLog.action == "case_approved"))
    assert entry is not None and entry.actor == "staff:wang" and entry.details["next_due"]


async def test_approved_needs_a_pensioner_and_rejected_needs_a_reason(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    [case] = await _login_and_cases(client, "wang")
    url = f"/api/staff/cases/{case['id']}"
    await client.post(f"{url}/claim")
    no_pensioner = await client.post(f"{url}/resolve", json={"decision": "approved"})
    assert no_pensioner.status == 409
    no_reason = await client.post(f"{url}/resolve", json={"decision": "rejected", "note": "  "})
    assert no_reason.status == 400 and (await no_reason.json())["error"] == "reason_required"
    await updates(client, "alice")
    rejected = await client.post(f"{url}/resolve", json={"decision": "rejected",
                                                         "note": "照片不是本人，请本人到社区办理"})
    assert rejected.status == 200
    pushed = await updates(client, "alice")
    assert "没有通过" in pushed[0]["text"] and "照片不是本人，请本人到社区办理" in pushed[0]["text"]
    again = await client.post(f"{url}/resolve", json={"decision": "resolved"})
    assert again.status == 409


async def test_bad_input_is_a_json_4xx(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    [case] = await _login_and_cases(client, "wang")
    url = f"/api/staff/cases/{case['id']}"
    await client.post(f"{url}/claim")
    checks: Sequence[tuple[str, Any, int]] = [
        (f"{url}/messages", b"{not json", 400),
        (f"{url}/messages", b"[1]", 400),
        (f"{url}/messages", b'{"text": ""}', 400),
        (f"{url}/messages", b'{"text": 5}', 400),
        (f"{url}/messages", ('{"text": "%s"}' % ("字" * 2001)).encode(), 400),
        (f"{url}/resolve", b'{"decision": "maybe"}', 400),
        (f"{url}/resolve", b'{"decision": "resolved", "note": 7}', 400),
        ("/api/staff/cases/99999/claim", b"", 404),
        ("/api/staff/cases/abc/claim", b"", 404),
        ("/api/staff/pull", b'{"conversation_key": "no spaces allowed"}', 400),
        ("/api/staff/pull", b'{"conversation_key": "web:nobody"}', 404),
    ]
    for path, body, status in checks:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        assert response.status == status, (path, body)
        payload = await response.json()
        assert payload["error"] and payload["message"], (path, body)
    assert (await client.get("/api/staff/cases", params={"status": "weird"})).status == 400
    assert (await client.get("/api/staff/events", params={"after": "x"})).status == 400


# ---------------------------------------------------------------- roles


async def test_agents_see_only_the_queue_and_their_own_cases(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await add_staff(app, "li")
    await add_staff(app, "boss", role="supervisor")
    li = await second_client(aiohttp_client, client)
    boss = await second_client(aiohttp_client, client)
    await login(client, "wang")
    await login(li, "li")
    await login(boss, "boss")
    await chat(client, "alice", "转人工")
    await chat(client, "bob", "转人工")
    alice_case, bob_case = (c["id"] for c in await cases(client))
    assert (await client.post(f"/api/staff/cases/{alice_case}/claim")).status == 200

    assert [c["id"] for c in await cases(li)] == [bob_case]
    assert (await li.get(f"/api/staff/cases/{alice_case}")).status == 403
    assert (await li.post(f"/api/staff/cases/{alice_case}/messages", json={"text": "hi"})).status == 403
    assert (await li.post(f"/api/staff/cases/{alice_case}/resolve", json={"decision": "resolved"})).status == 403
    assert (await li.get(f"/staff/cases/{alice_case}")).status == 403
    assert (await li.post(f"/api/staff/cases/{bob_case}/assign", json={"username": "li"})).status == 403
    users_page = await li.get("/staff/users")
    assert users_page.status == 403 and "只有主管" in await users_page.text()

    assert sorted(c["id"] for c in await cases(boss)) == sorted([alice_case, bob_case])
    moved = await boss.post(f"/api/staff/cases/{alice_case}/assign", json={"username": "li"})
    assert moved.status == 200
    assert (await li.post(f"/api/staff/cases/{alice_case}/messages", json={"text": "我来接手"})).status == 201
    assert (await client.post(f"/api/staff/cases/{alice_case}/messages", json={"text": "x"})).status == 403
    assigned = await boss.post(f"/api/staff/cases/{bob_case}/assign", json={"username": "wang"})
    assert (await assigned.json())["status"] == "claimed"
    assert (await boss.post(f"/api/staff/cases/{bob_case}/messages", json={"text": "主管在看"})).status == 201
    page = await boss.get("/staff/users")
    assert page.status == 200 and "wang" in await page.text()
    assert "assign_case" in await audit_actions(app, "staff:boss")


async def test_supervisor_manages_staff_through_the_page(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "boss", role="supervisor")
    await login(client, "boss")
    token = (await (await client.get("/api/staff/me")).json())["csrf_token"]
    added = await client.post("/staff/users", data={"csrf": token, "username": "zhao", "password": PASSWORD,
                                                    "role": "agent"}, allow_redirects=False)
    assert added.status == 303
    zhao = await second_client(aiohttp_client, client)
    await login(zhao, "zhao")
    users = {u.username: u for u in await app[AUTH].users()}
    off = await client.post(f"/staff/users/{users['zhao'].id}/deactivate", data={"csrf": token},
                            allow_redirects=False)
    assert off.status == 303
    assert (await zhao.get("/api/staff/cases")).status == 401  # sessions of a deactivated user end
    assert "staff_add" in await audit_actions(app, "staff:boss")


# ---------------------------------------------------------------- other channels, pull, evidence


async def test_relay_on_another_channel_through_its_registered_sender(client: Any) -> None:
    """WeChat relay: the channels branch registers the real customer-service sender; here a
    registered test sender stands in for it (same Outbox contract)."""
    app = client.server.app
    services = app[keys.SERVICES]
    sent: list[tuple[str, list[str]]] = []

    async def wechat_sender(key: str, replies: Sequence[Reply]) -> None:
        sent.append((key, [r.text for r in replies]))

    services.outbox.register("wechat", wechat_sender)
    turn = await services.handle(InboundMessage("wechat", "oOpenId123", "m1", text="转人工"))
    assert "转接人工" in turn.replies[0].text
    await add_staff(app, "wang")
    [case] = await _login_and_cases(client, "wang")
    assert case["channel"] == "wechat" and case["user_id"] == "oOpenId123"
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    relayed = await services.handle(InboundMessage("wechat", "oOpenId123", "m2", text="我在这儿"))
    assert relayed.replies == []
    await client.post(f"/api/staff/cases/{case['id']}/messages", json={"text": "您好"})
    assert sent[0][0] == "wechat:oOpenId123" and "工作人员" in sent[0][1][0]
    assert sent[1] == ("wechat:oOpenId123", ["工作人员：您好"])
    detail = await (await client.get(f"/api/staff/cases/{case['id']}")).json()
    assert [m["text"] for m in detail["messages"]][:2] == [GREETING, "我在这儿"]


async def test_staff_pull_from_the_live_list(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await login(client, "wang")
    await chat(client, "carol", "怎么认证")
    recent = await (await client.get("/api/staff/recent")).json()
    assert recent[0]["conversation_key"] == "web:carol" and recent[0]["mode"] == "bot"
    page = await client.get("/staff")
    assert "接入" in await page.text()
    pulled = await client.post("/api/staff/pull", json={"conversation_key": "web:carol"})
    body = await pulled.json()
    assert pulled.status == 201 and body["reason"] == "staff_pull" and body["status"] == "claimed"
    assert "工作人员" in (await updates(client, "carol"))[0]["text"]
    assert await chat(client, "carol", "好的") == []
    again = await client.post("/api/staff/pull", json={"conversation_key": "web:carol"})
    assert again.status == 409
    assert "pull_chat" in await audit_actions(app, "staff:wang")


async def test_face_photos_only_for_staff_and_within_retention(aiohttp_client: Any, client: Any) -> None:
    from PIL import Image

    app = client.server.app
    services = app[keys.SERVICES]
    await add_staff(app, "wang")
    photo_dir = services.settings.storage.data_dir / "photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(buffer, "JPEG")
    (photo_dir / "a.jpg").write_bytes(buffer.getvalue())
    now = datetime.now(timezone.utc)
    await chat(client, "alice", "转人工")
    async with services.db.session() as session:
        fresh = CertificationAttempt(channel="web", chat_user="web:alice", decision="failed", distance=0.21,
                                     threshold=0.07, quality_codes=["too_dark"], photo_path="photos/a.jpg",
                                     photo_expires_at=now + timedelta(days=3))
        old = CertificationAttempt(channel="web", chat_user="web:alice", decision="failed",
                                   photo_path="photos/a.jpg", photo_expires_at=now - timedelta(days=1))
        stranger = CertificationAttempt(channel="web", chat_user="web:mallory", decision="failed",
                                        photo_path="photos/a.jpg", photo_expires_at=now + timedelta(days=3))
        session.add_all([fresh, old, stranger])
    [case] = await _login_and_cases(client, "wang")
    base = f"/staff/cases/{case['id']}/photos"
    ok = await client.get(f"{base}/{fresh.id}")
    assert ok.status == 200 and ok.content_type == "image/jpeg" and await ok.read() == buffer.getvalue()
    assert "no-store" in ok.headers["Cache-Control"]
    assert (await client.get(f"{base}/{old.id}")).status == 404
    assert (await client.get(f"{base}/{stranger.id}")).status == 404
    anonymous = await aiohttp_client(client.server)
    assert (await anonymous.get(f"{base}/{fresh.id}", allow_redirects=False)).status == 303
    assert (await anonymous.get(f"/static{base}/{fresh.id}")).status == 404
    page = await (await client.get(f"/staff/cases/{case['id']}")).text()
    assert f"{base}/{fresh.id}" in page and "太暗" in page and "too_dark" not in page and "已过保存期限" in page
    detail = await (await client.get(f"/api/staff/cases/{case['id']}")).json()
    assert [a["photo"] is not None for a in detail["attempts"]].count(True) == 1
    assert "view_photo" in await audit_actions(app, "staff:wang")


async def test_events_stream_and_pages_render(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await login(client, "wang")
    start = await (await client.get("/api/staff/events", params={"after": "0-0"})).json()
    await chat(client, "alice", "转人工")
    events = await (await client.get("/api/staff/events", params={"after": start["last"]})).json()
    assert [e["kind"] for e in events["events"]] == ["case_waiting"]
    [case] = await cases(client)
    for part in ("mine", "done", "recent"):
        assert (await client.get(f"/staff/fragments/{part}")).status == 200
    assert "web" in await (await client.get("/staff/fragments/recent")).text()
    queue = await (await client.get("/staff/fragments/queue")).text()
    assert f'/staff/cases/{case["id"]}' in queue and "用户要求转人工" in queue and "网页" in queue
    case_page = await (await client.get(f"/staff/cases/{case['id']}")).text()
    assert "认领" in case_page and 'name="csrf"' in case_page and "转人工" in case_page


# ---------------------------------------------------------------- office hours, restart, CLI


async def test_out_of_office_users_are_told_when_staff_are_back(aiohttp_client: Any, tmp_path: Path,
                                                                clean_backends: Any) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).weekday()
    other_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today + 2) % 7]
    app = create_app(make_settings(tmp_path, clean_backends,
                                   **{"staff.office_hours": f"{other_day} 09:00-17:30"}))
    client = await aiohttp_client(app)
    replies = await chat(client, "alice", "转人工")
    text = replies[0]["text"]
    assert "不是工作时间" in text and "09:00上班" in text
    waiting = await chat(client, "alice", "有人吗")
    assert "09:00上班" in waiting[0]["text"]
    async with app[keys.SERVICES].db.session() as session:
        case = await session.scalar(select(Case))
    assert case is not None and case.status == "waiting"


async def test_restart_keeps_the_queue(aiohttp_client: Any, tmp_path: Path, clean_backends: Any) -> None:
    settings = make_settings(tmp_path, clean_backends)
    first = await aiohttp_client(create_app(settings))
    await add_staff(first.server.app, "wang")
    await chat(first, "alice", "转人工")
    await chat(first, "bob", "转人工")
    await first.close()

    second = await aiohttp_client(create_app(settings))
    waiting = await _login_and_cases(second, "wang")
    assert [(c["user_id"], c["status"]) for c in waiting] == [("alice", "waiting"), ("bob", "waiting")]
    assert "前面还有 1 位" in (await chat(second, "bob", "还要多久"))[0]["text"]
    await second.close()

    # Even a Redis that lost the queue gets it back from the database on start.
    import redis as sync_redis

    sync_redis.Redis.from_url(clean_backends.redis_url).delete(QUEUE_KEY)
    third = await aiohttp_client(create_app(settings))
    assert await third.server.app[keys.SERVICES].redis.zcard(QUEUE_KEY) == 2
    await login(third, "wang")
    assert (await third.post(f"/api/staff/cases/{waiting[0]['id']}/claim")).status == 200
    assert "工作人员" in (await updates(third, "alice"))[0]["text"]


@pytest.mark.slow
def test_cli_adds_staff_with_password_from_stdin(tmp_path: Path, clean_backends: Any,
                                                 monkeypatch: Any) -> None:
    env = {"REDIS_URL": clean_backends.redis_url, "DATABASE_URL": clean_backends.database_url,
           "BOT_DATA_DIR": str(tmp_path / "var")}
    command = [sys.executable, "-m", "bot", "staff", "add", "zhang", "--role", "supervisor"]
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "zhang" in done.stdout

    from bot.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["staff", "add", "zhang"]) == 1  # taken
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["staff", "add", "li"]) == 1  # weak password
    assert main(["staff", "list"]) == 0

    async def check() -> None:
        from bot.core.storage.db import Database
        from bot.core.storage.redis import make_client
        from bot.staff.auth import StaffAuth

        db = Database(clean_backends.database_url)
        redis = make_client(clean_backends.redis_url, 2)
        try:
            auth = StaffAuth(make_settings(tmp_path, clean_backends), db, redis)
            user = await auth.authenticate("zhang", PASSWORD)
            assert user.role == "supervisor" and user.password_hash.startswith("$argon2")
        finally:
            await redis.aclose()
            await db.dispose()

    asyncio.run(check())


async def test_user_messages_while_human_are_stored_before_staff_read_them(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    [case] = await _login_and_cases(client, "wang")
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    for text in ("第一句", "第二句", "第三句"):
        assert await chat(client, "alice", text) == []
    messages = await (await client.get(f"/api/staff/cases/{case['id']}/messages", params={"after": 0})).json()
    assert [m["text"] for m in messages] == [GREETING, "第一句", "第二句", "第三句"]
    last = messages[1]["id"]
    newer = await (await client.get(f"/api/staff/cases/{case['id']}/messages", params={"after": last})).json()
    assert [m["text"] for m in newer] == ["第二句", "第三句"]
    async with app[keys.SERVICES].db.session() as session:
        count = len(list(await session.scalars(select(CaseMessage).where(CaseMessage.case_id == case["id"]))))
    assert count == 4


async def test_photos_sent_to_staff_are_kept_and_shown_only_to_staff(aiohttp_client: Any, client: Any) -> None:
    import aiohttp
    from PIL import Image

    app = client.server.app
    await add_staff(app, "wang")
    await add_staff(app, "li")
    await chat(client, "alice", "转人工")
    [case] = await _login_and_cases(client, "wang")
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 60, 30)).save(buffer, "JPEG")
    form = aiohttp.FormData()
    form.add_field("user_id", await web_id(client, "alice"))
    form.add_field("image", buffer.getvalue(), filename="me.jpg", content_type="image/jpeg")
    response = await client.post("/api/chat", data=form)
    assert response.status == 200 and (await response.json())["replies"] == []
    [greeting, message] = await (await client.get(f"/api/staff/cases/{case['id']}/messages")).json()
    assert greeting["text"] == GREETING
    assert message["text"].startswith("[照片 ") and message["text"].endswith(".img]")
    name = message["text"][4:-1]
    url = f"/staff/cases/{case['id']}/files/{name}"
    assert url in await (await client.get(f"/staff/cases/{case['id']}")).text()
    served = await client.get(url)
    assert served.status == 200  # re-encoded without metadata (issue 15), same picture
    assert Image.open(io.BytesIO(await served.read())).size == (8, 8)
    assert served.content_type == "image/jpeg"
    li = await second_client(aiohttp_client, client)
    await login(li, "li")
    assert (await li.get(url)).status == 403
    anonymous = await aiohttp_client(client.server)
    assert (await anonymous.get(url, allow_redirects=False)).status == 303
    assert (await client.get(f"/staff/cases/{case['id']}/files/{'0' * 32}.img")).status == 404
    assert (await client.get(f"/staff/cases/{case['id']}/files/..%2F..%2Fbot.sqlite3")).status == 404
    stored = app[keys.SERVICES].handoff.case_photo_dir(case["id"]) / name
    long_ago = stored.stat().st_mtime - (app[keys.SETTINGS].face.photo_retention_days + 1) * 86400
    os.utime(stored, (long_ago, long_ago))
    assert (await client.get(url)).status == 404  # past retention: no longer served


async def test_two_server_processes_share_one_queue(aiohttp_client: Any, tmp_path: Path, clean_backends: Any) -> None:
    """Two app instances (as two server processes would be) on the same Redis and database."""
    settings = make_settings(tmp_path, clean_backends)
    front = await aiohttp_client(create_app(settings))
    back = await aiohttp_client(create_app(settings))
    await add_staff(back.server.app, "wang")
    await chat(front, "alice", "转人工")
    [case] = await _login_and_cases(back, "wang")
    assert case["user_id"] == "alice"
    assert (await back.post(f"/api/staff/cases/{case['id']}/claim")).status == 200
    assert await chat(front, "alice", "你好，在吗") == []
    messages = await (await back.get(f"/api/staff/cases/{case['id']}/messages")).json()
    assert messages[-1]["text"] == "你好，在吗"
    await back.post(f"/api/staff/cases/{case['id']}/messages", json={"text": "在的"})
    assert [r["text"] for r in await updates(front, "alice")][-1] == "工作人员：在的"
