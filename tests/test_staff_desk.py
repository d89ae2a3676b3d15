"""Working all day in the staff console: search and filters, pagination and the archive,
manual reviews apart from chat requests, unread markers and the tab-title count,
canned responses (常用语), inline errors, the reminders pages. All through the HTTP API and
pages on a real Redis and database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.core.storage.models import AuditLog, Case, Pensioner
from nlu.entities import with_check_digit
from tests.test_staff_api import add_staff, chat, login, second_client

ID_WANG = with_check_digit("63010219500101001")
ID_LI = with_check_digit("63010219520202002")
NOW = datetime.now(timezone.utc)


async def pensioner(app: web.Application, id_number: str, name: str) -> int:
    async with app[keys.SERVICES].db.session() as session:
        row = Pensioner(id_number=id_number, name=name)
        session.add(row)
        await session.flush()
        return row.id


async def make_case(app: web.Application, user: str, *, reason: str = "user_request", status: str = "waiting",
                    channel: str = "web", pensioner_id: int | None = None, assigned_to: int | None = None,
                    created_at: datetime | None = None) -> int:
    async with app[keys.SERVICES].db.session() as session:
        row = Case(conversation_key=f"{channel}:{user}", channel=channel, user_id=user, reason=reason,
                   status=status, pensioner_id=pensioner_id, assigned_to=assigned_to,
                   created_at=created_at or NOW, transcript=[], evidence={}, proxy={},
                   claimed_at=NOW if status != "waiting" else None,
                   closed_at=NOW if status in ("closed", "cancelled") else None)
        session.add(row)
        await session.flush()
        return row.id


async def search(client: Any, **params: Any) -> tuple[int, Any, Any]:
    response = await client.get("/api/staff/cases", params={k: str(v) for k, v in params.items()})
    return response.status, await response.json(), response.headers


async def audit_rows(app: web.Application, action: str) -> list[AuditLog]:
    async with app[keys.SERVICES].db.session() as session:
        return list(await session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


# ---------------------------------------------------------------- search


async def test_search_by_case_number_full_id_number_and_name_and_it_is_audited_masked(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "boss", "supervisor")
    wang, li = await pensioner(app, ID_WANG, "王桂兰"), await pensioner(app, ID_LI, "李秀英")
    case_wang = await make_case(app, "u1", reason="face_failed", pensioner_id=wang)
    case_li = await make_case(app, "u2", reason="appeal", pensioner_id=li)
    await make_case(app, "u3")
    await login(client, "boss")

    status, found, headers = await search(client, q=ID_WANG)
    assert status == 200 and [c["id"] for c in found] == [case_wang] and headers["X-Total-Count"] == "1"
    assert [c["id"] for c in (await search(client, q=ID_LI.lower()))[1]] == [case_li]  # a lower-case x is fine
    assert [c["id"] for c in (await search(client, q=f"#{case_li}"))[1]] == [case_li]
    assert [c["id"] for c in (await search(client, q=str(case_wang)))[1]] == [case_wang]
    assert [c["id"] for c in (await search(client, q="桂兰"))[1]] == [case_wang]
    assert [c["id"] for c in (await search(client, q="李秀英"))[1]] == [case_li]
    assert (await search(client, q="张三"))[1] == []
    assert (await search(client, q="王"))[1] == []  # one character: the exact name only

    # never a partial ID number: an error, not an empty list or a match
    for partial in (ID_WANG[:10], ID_WANG[:17], ID_WANG[6:], "630102*", ID_WANG[:-1] + "Y"):
        status, body, _ = await search(client, q=partial)
        assert status == 400 and body["error"] == "invalid_query" and "完整" in body["message"], partial

    rows = await audit_rows(app, "case_search")
    assert rows and all(r.actor == "staff:boss" for r in rows)
    text = json.dumps([r.details for r in rows], ensure_ascii=False)
    assert ID_WANG not in text and ID_LI not in text and "桂兰" not in text and "李秀英" not in text
    assert ID_WANG[:6] + "********" + ID_WANG[-4:] in text and "李*英" in text
    assert rows[0].details["results"] == 1

    page = await client.get("/staff/search", params={"q": ID_WANG})
    html = await page.text()
    assert page.status == 200 and f"/staff/cases/{case_wang}" in html and f"/staff/cases/{case_li}\"" not in html
    bad = await client.get("/staff/search", params={"q": ID_WANG[:12]})
    assert bad.status == 400 and "完整" in await bad.text()


async def test_agents_find_only_the_queue_and_their_own_cases(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    wang = await add_staff(app, "wang")
    li = await add_staff(app, "li")
    pid = await pensioner(app, ID_WANG, "王桂兰")
    theirs = await make_case(app, "u1", status="claimed", assigned_to=li, pensioner_id=pid)
    mine = await make_case(app, "u2", status="claimed", assigned_to=wang, pensioner_id=pid)
    waiting = await make_case(app, "u3", pensioner_id=pid)
    await login(client, "wang")
    _, found, _ = await search(client, q=ID_WANG)
    assert sorted(c["id"] for c in found) == sorted([mine, waiting])
    assert (await search(client, q=f"#{theirs}"))[1] == []
    assert (await search(client, agent="li"))[1] == []


async def test_filters_pagination_and_bad_input(client: Any) -> None:
    app = client.server.app
    boss = await add_staff(app, "boss", "supervisor")
    wang = await add_staff(app, "wang")
    old = NOW - timedelta(days=40)
    for i in range(25):
        await make_case(app, f"w{i}", status="closed", channel="wechat", assigned_to=wang, created_at=old)
    for i in range(12):
        await make_case(app, f"t{i}", reason="face_failed", channel="telegram")
    claimed = await make_case(app, "b1", status="claimed", assigned_to=boss, reason="appeal")
    await login(client, "boss")

    everything = await client.get("/api/staff/cases")  # without parameters: the list as before
    listed = await everything.json()
    assert everything.status == 200 and isinstance(listed, list) and len(listed) == 38
    assert "X-Total-Count" not in everything.headers
    assert [c["status"] for c in listed[:12]] == ["waiting"] * 12

    status, page1, headers = await search(client, page=1)
    assert status == 200 and len(page1) == 20 and headers["X-Total-Count"] == "38" and headers["X-Pages"] == "2"
    _, page2, _ = await search(client, page=2)
    assert len(page2) == 18 and not {c["id"] for c in page1} & {c["id"] for c in page2}
    assert (await search(client, page=3))[1] == []

    _, closed, headers = await search(client, status="closed", channel="wechat", page=2)
    assert len(closed) == 5 and headers["X-Total-Count"] == "25"
    assert {c["channel"] for c in closed} == {"wechat"}
    _, reviews, headers = await search(client, kind="review", status="waiting")
    assert headers["X-Total-Count"] == "12" and {c["reason"] for c in reviews} == {"face_failed"}
    assert [c["id"] for c in reviews] == sorted(c["id"] for c in reviews)  # the waiting queue: oldest first
    _, chats, _ = await search(client, kind="chat")
    assert {c["reason"] for c in chats} == {"user_request"}
    assert [c["id"] for c in (await search(client, reason="appeal"))[1]] == [claimed]
    assert (await search(client, agent="wang"))[2]["X-Total-Count"] == "25"
    assert (await search(client, agent="nobody"))[1] == []
    day = (NOW - timedelta(days=40)).astimezone(app[keys.SERVICES].handoff.tz).date()
    assert (await search(client, **{"from": day.isoformat(), "to": day.isoformat()}))[2]["X-Total-Count"] == "25"
    recent = (NOW - timedelta(days=1)).date().isoformat()
    assert (await search(client, **{"from": recent}))[2]["X-Total-Count"] == "13"

    bad = [{"status": "bogus"}, {"reason": "nope"}, {"channel": "WeChat!"}, {"kind": "x"},
           {"from": "2026-13-01"}, {"from": "2026-02-02", "to": "2026-02-01"}, {"page": "0"},
           {"page": "-1"}, {"page": "x"}, {"q": "字" * 65}, {"agent": "a" * 65}]
    for params in bad:
        status, body, _ = await search(client, **params)
        assert status == 400 and body["error"] in ("invalid_query", "invalid_status") and body["message"], params
        assert (await client.get("/staff/search", params=params)).status == 400, params

    archive = await (await client.get("/staff/search", params={"status": "closed", "page": "2"})).text()
    assert "第 2 页，共 2 页" in archive and "上一页" in archive and "下一页" not in archive
    queue = await (await client.get("/staff")).text()
    assert "已结束案件的归档" in queue and "/staff/search?status=closed" in queue


# ---------------------------------------------------------------- queues, unread, counts


async def test_manual_reviews_have_their_own_queue_with_times(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    review = await make_case(app, "u1", reason="face_failed", created_at=NOW - timedelta(minutes=30))
    await chat(client, "alice", "转人工")
    await login(client, "wang")
    reviews = await (await client.get("/staff/fragments/reviews")).text()
    chats = await (await client.get("/staff/fragments/queue")).text()
    assert f"/staff/cases/{review}" in reviews and "刷脸多次失败" in reviews and "30分钟" in reviews
    assert "用户要求转人工" not in reviews
    assert "用户要求转人工" in chats and f"/staff/cases/{review}\"" not in chats
    assert "用户最后发言" in chats and "前</td>" in chats  # alice's last message, from the transcript
    page = await (await client.get("/staff")).text()
    assert page.index("等待人工审核") < page.index("对话请求（")


async def test_unread_marker_and_count_follow_what_the_assignee_saw(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await add_staff(app, "boss", "supervisor")
    await chat(client, "alice", "转人工")
    await chat(client, "bob", "转人工")
    agent = await second_client(aiohttp_client, client)
    await login(agent, "wang")
    counts = await (await agent.get("/api/staff/counts")).json()
    assert counts == {"waiting": 2, "reviews": 0, "unread": 0, "attention": 2}
    first = (await (await agent.get("/api/staff/cases")).json())[0]["id"]
    assert (await agent.post(f"/api/staff/cases/{first}/claim")).status == 200
    await agent.get(f"/staff/cases/{first}")  # seen: the greeting only
    assert (await (await agent.get("/api/staff/counts")).json())["unread"] == 0

    await chat(client, "alice", "我刷脸总是失败")
    counts = await (await agent.get("/api/staff/counts")).json()
    assert counts["unread"] == 1 and counts["attention"] == 2  # one waiting, one unread
    mine = await (await agent.get("/staff/fragments/mine")).text()
    assert "● 未读" in mine and 'class="unread"' in mine
    _, found, _ = await search(agent, q=f"#{first}")
    assert found[0]["unread"] is True and found[0]["last_user_message_at"]

    boss = await second_client(aiohttp_client, client)  # a supervisor looking does not clear it
    await login(boss, "boss")
    await boss.get(f"/staff/cases/{first}")
    assert (await (await agent.get("/api/staff/counts")).json())["unread"] == 1
    assert (await (await boss.get("/api/staff/counts")).json())["unread"] == 0

    await agent.get(f"/staff/cases/{first}/fragments/messages")  # the live refresh on the case page
    assert (await (await agent.get("/api/staff/counts")).json())["unread"] == 0
    assert "● 未读" not in await (await agent.get("/staff/fragments/mine")).text()
    assert (await (await aiohttp_client(client.server)).get("/api/staff/counts")).status == 401
