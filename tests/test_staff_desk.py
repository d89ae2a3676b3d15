"""Working all day in the staff console: search and filters, pagination and the archive,
manual reviews apart from chat requests, unread markers and the tab-title count,
canned responses (常用语), inline errors, the reminders pages. All through the HTTP API and
pages on a real Redis and database."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.core.storage.models import AuditLog, Case, Pensioner, ReminderDelivery, ReminderSubscription
from bot.staff.canned import DEFAULTS
from bot.staff.web import CANNED
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
                   created_at=created_at or datetime.now(timezone.utc), transcript=[], evidence={}, proxy={},
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
    assert "<td>王桂兰</td>" in html  # the pensioner's name beside the case
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
    review = await make_case(app, "u1", reason="face_failed",
                             created_at=datetime.now(timezone.utc) - timedelta(minutes=30, seconds=5))
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


# ---------------------------------------------------------------- canned responses


async def test_canned_responses_supervisors_edit_agents_read(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "boss", "supervisor")
    await add_staff(app, "wang")
    await login(client, "boss")
    assert await app[CANNED].seed_defaults() == len(DEFAULTS)
    assert await app[CANNED].seed_defaults() == 0
    listed = await (await client.get("/api/staff/canned")).json()
    assert {c["shortcut"] for c in listed} == {s for s, _ in DEFAULTS}

    added = await client.post("/api/staff/canned", json={"shortcut": "/补材料", "text": "请补交<户口本>复印件。"})
    body = await added.json()
    assert added.status == 201 and body["shortcut"] == "补材料"
    dup = await client.post("/api/staff/canned", json={"shortcut": "补材料", "text": "别的"})
    assert dup.status == 409 and (await dup.json())["error"] == "duplicate_shortcut"
    for bad in ({"shortcut": "", "text": "x"}, {"shortcut": "有 空格", "text": "x"}, {"shortcut": "a/b", "text": "x"},
                {"shortcut": "x" * 17, "text": "x"}, {"shortcut": "ok", "text": "  "},
                {"shortcut": "ok", "text": "字" * 501}, {"shortcut": 3, "text": "x"}, {"text": "x"}):
        response = await client.post("/api/staff/canned", json=bad)
        assert response.status == 400 and (await response.json())["message"], bad
    assert (await client.post("/api/staff/canned", data=b"[1]")).status == 400

    changed = await client.put(f"/api/staff/canned/{body['id']}", json={"shortcut": "补件", "text": "请补交材料。"})
    assert changed.status == 200 and (await changed.json())["text"] == "请补交材料。"
    assert (await client.put("/api/staff/canned/99999", json={"shortcut": "x", "text": "y"})).status == 404
    evil = await client.delete(f"/api/staff/canned/{body['id']}", headers={"Origin": "https://evil.example"})
    assert evil.status == 403  # CSRF: a cross-site DELETE is refused like a POST
    wrong = await client.put(f"/api/staff/canned/{body['id']}", json={"shortcut": "x", "text": "y"},
                             headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403

    agent = await second_client(aiohttp_client, client)
    await login(agent, "wang")
    assert len(await (await agent.get("/api/staff/canned")).json()) == len(DEFAULTS) + 1
    for method, path in (("POST", "/api/staff/canned"), ("PUT", f"/api/staff/canned/{body['id']}"),
                         ("DELETE", f"/api/staff/canned/{body['id']}")):
        response = await agent.request(method, path, json={"shortcut": "x", "text": "y"})
        assert response.status == 403, method
    assert (await agent.get("/staff/canned")).status == 403
    assert (await (await aiohttp_client(client.server)).get("/api/staff/canned")).status == 401

    deleted = await client.delete(f"/api/staff/canned/{body['id']}")
    assert deleted.status == 200 and (await client.delete(f"/api/staff/canned/{body['id']}")).status == 404
    actions = [r.action for r in await audit_rows(app, "canned_add")] + \
        [r.action for r in await audit_rows(app, "canned_update")] + [r.action for r in await audit_rows(app, "canned_delete")]
    assert actions == ["canned_add", "canned_update", "canned_delete"]


async def test_canned_page_and_reply_box(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "boss", "supervisor")
    await login(client, "boss")
    token = (await (await client.get("/api/staff/me")).json())["csrf_token"]
    page = await (await client.get("/staff/canned")).text()
    assert "新增常用语" in page and "还没有常用语" in page
    added = await client.post("/staff/canned", data={"csrf": token, "shortcut": "重拍", "text": "请重拍</script>一张"},
                              allow_redirects=False)
    assert added.status == 303
    [row] = await (await client.get("/api/staff/canned")).json()
    edit = await client.post(f"/staff/canned/{row['id']}/update",
                             data={"csrf": token, "shortcut": "重拍", "text": "请在亮处重拍</script>一张"})
    assert edit.status == 200 and "已保存" in await edit.text()
    assert (await client.post(f"/staff/canned/{row['id']}/update", data={"shortcut": "x", "text": "y"})).status == 403
    bad = await client.post("/staff/canned", data={"csrf": token, "shortcut": "", "text": "y"})
    assert bad.status == 400 and "关键字" in await bad.text()

    await chat(client, "alice", "转人工")
    [case] = await (await client.get("/api/staff/cases")).json()
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    html = await (await client.get(f"/staff/cases/{case['id']}")).text()
    assert 'class="quick-reply" title="/重拍"' in html and 'id="canned-suggest"' in html
    data = html.split('<script type="application/json" id="canned-data">')[1].split("</script>")[0]
    assert json.loads(data) == [{"shortcut": "重拍", "text": "请在亮处重拍</script>一张"}]  # escaped, not closed
    deleted = await client.post(f"/staff/canned/{row['id']}/delete", data={"csrf": token})
    assert deleted.status == 200 and "已删除" in await deleted.text()


def test_the_migration_seeds_the_former_quick_replies(tmp_path: Any) -> None:
    import sqlite3

    from bot.core.storage.db import migrate

    path = tmp_path / "fresh.sqlite3"
    migrate(f"sqlite+aiosqlite:///{path}")
    rows = sqlite3.connect(path).execute("SELECT shortcut, text FROM canned_responses ORDER BY id").fetchall()
    assert rows == DEFAULTS


# ---------------------------------------------------------------- inline errors


async def test_case_forms_sent_by_the_script_get_json_errors_and_a_location(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    await login(client, "wang")
    [case] = await (await client.get("/api/staff/cases")).json()
    token = (await (await client.get("/api/staff/me")).json())["csrf_token"]
    inline = {"X-Requested-With": "fetch"}
    base = f"/staff/cases/{case['id']}"
    early = await client.post(f"{base}/reply", data={"csrf": token, "text": "您好"}, headers=inline)
    assert early.status == 409 and (await early.json())["message"] == "这个案件现在不能这样操作（还没认领或已经结束）。"
    claimed = await client.post(f"{base}/claim", data={"csrf": token}, headers=inline)
    assert claimed.status == 200 and await claimed.json() == {"ok": True, "message": "已认领",
                                                              "location": f"{base}?msg=%E5%B7%B2%E8%AE%A4%E9%A2%86"}
    spaces = await client.post(f"{base}/reply", data={"csrf": token, "text": "   "}, headers=inline)
    assert spaces.status == 400 and (await spaces.json()) == {"error": "invalid_text", "message": "内容不能为空。"}
    reject = await client.post(f"{base}/resolve", data={"csrf": token, "decision": "rejected", "note": ""},
                               headers=inline)
    assert reject.status == 400 and "原因" in (await reject.json())["message"]
    forged = await client.post(f"{base}/reply", data={"csrf": "forged", "text": "x"}, headers=inline)
    assert forged.status == 403 and "页面已过期" in (await forged.json())["message"]
    # without the script (no header) the same failure is still a full page
    page = await client.post(f"{base}/reply", data={"csrf": token, "text": "   "})
    assert page.status == 400 and "操作没有成功" in await page.text()


# ---------------------------------------------------------------- reminders in the console (issue 20)


async def reminder_rows(app: web.Application, pensioner_id: int) -> None:
    """One subscription with a sent first reminder and a second one that failed for good."""
    async with app[keys.SERVICES].db.session() as session:
        sub = ReminderSubscription(conversation_key="wechat:oOpenid-13800138000", channel="wechat",
                                   pensioner_id=pensioner_id, role="self")
        session.add(sub)
        await session.flush()
        session.add_all([
            ReminderDelivery(subscription_id=sub.id, due_date=date(2027, 6, 30), kind="first", status="sent",
                             attempts=1, sent_at=NOW),
            ReminderDelivery(subscription_id=sub.id, due_date=date(2027, 6, 30), kind="second",
                             status="send_failed", attempts=4, last_error="errcode 43004 <unsubscribed>")])


async def test_reminders_on_the_case_page_and_the_supervisors_list(aiohttp_client: Any, client: Any) -> None:
    app = client.server.app
    await add_staff(app, "boss", "supervisor")
    await add_staff(app, "wang")
    pid = await pensioner(app, ID_WANG, "王桂兰")
    other = await pensioner(app, ID_LI, "李秀英")
    await reminder_rows(app, pid)
    case_id = await make_case(app, "u1", reason="face_failed", pensioner_id=pid)
    bare = await make_case(app, "u2", pensioner_id=other)

    agent = await second_client(aiohttp_client, client)
    await login(agent, "wang")
    html = await (await agent.get(f"/staff/cases/{case_id}")).text()
    panel = html.split('<div id="reminders">')[1].split("</div>")[0]
    assert "微信" in panel and "本人" in panel and "订阅中" in panel
    assert "第一次提醒" in panel and "已送达" in panel and "2027-06-30" in panel
    assert '<tr class="send-failed"' in panel and "发送失败" in panel and "errcode 43004 &lt;unsubscribed&gt;" in panel
    assert "13800138000" not in panel  # the user key is masked
    other_html = await (await agent.get(f"/staff/cases/{bare}")).text()
    assert "没有人订阅提醒" in other_html.split('<div id="reminders">')[1]
    assert (await agent.get("/staff/reminders")).status == 403

    await login(client, "boss")
    listing = await (await client.get("/staff/reminders")).text()
    assert "共 2 条" in listing and "王*兰" in listing and "王桂兰" not in listing
    failed = await (await client.get("/staff/reminders", params={"status": "send_failed"})).text()
    assert "共 1 条" in failed and "send-failed" in failed and "第一次提醒" not in failed.split("最近的订阅")[0]
    for bad in ({"status": "bogus"}, {"page": "0"}, {"page": "x"}):
        assert (await client.get("/staff/reminders", params=bad)).status == 400
    api = await (await client.get("/api/staff/reminders", params={"status": "send_failed"})).json()
    assert [d["kind"] for d in api["deliveries"]] == ["second"] and api["deliveries_total"] == 1
    assert (await client.get("/api/staff/reminders", params={"status": "nope"})).status == 400


async def test_a_long_queue_shows_its_first_20_and_pages_the_rest(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    ids = [await make_case(app, f"q{i}", created_at=start + timedelta(minutes=i)) for i in range(23)]
    await login(client, "wang")
    queue = await (await client.get("/staff/fragments/queue")).text()
    shown = [i for i in ids if f'data-case="{i}"' in queue]
    assert shown == ids[:20]  # the oldest first
    assert "共 23 个，这里只列出前 20 个" in queue and "/staff/search?status=waiting&amp;kind=chat&amp;page=1" in queue
    rest = await (await client.get("/staff/search", params={"status": "waiting", "kind": "chat", "page": "2"})).text()
    assert [i for i in ids if f'data-case="{i}"' in rest] == ids[20:]
    assert "第 2 页，共 2 页" in rest


def test_case_rows_mark_unread_and_escape_the_name() -> None:
    from bot.staff import render
    from bot.staff.inbox import CasePage

    held = Case(id=12, conversation_key="web:u", channel="web", user_id="u", reason="appeal", status="claimed",
                assigned_to=7, pensioner_id=5, created_at=NOW, transcript=[], proxy={})
    page = CasePage([held], 1, unread={12}, last_user_at={12: NOW}, pensioners={5: "王<桂>兰"})
    html = render.case_rows(page.cases, "空", {7: "li"}, now=NOW.timestamp() + 300, page=page)
    assert '<tr data-case="12" class="unread">' in html and "● 未读" in html
    assert "<td>王&lt;桂&gt;兰</td>" in html and "<td>5分钟前</td>" in html and "<td>li</td>" in html
    quiet = render.case_rows(page.cases, "空", now=NOW.timestamp(), page=CasePage([held], 1))
    assert "未读" not in quiet and "<td>—</td>" in quiet
