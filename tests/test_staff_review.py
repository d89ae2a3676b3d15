"""Manual review and staff accounts: photos, channel scoping, two-person approval, lockout,
sessions after a password change, the user's answers while a person has the chat."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from bot import keys
from bot.core.storage.models import AuditLog, CertificationAttempt, FaceTemplate, Pensioner
from bot.records.attempts import photo_store
from bot.staff.auth import LockedOut, LoginFailed
from bot.staff.web import AUTH
from tests.test_staff_api import PASSWORD, add_staff, cases, chat, login, updates


async def test_lockout_is_per_exact_username_and_address_and_expires(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "agent2")
    auth = app[AUTH]
    for _ in range(5):  # someone else types the name in capitals, from their own machine
        with pytest.raises(LoginFailed):
            await auth.authenticate("AGENT2", "wrong-password!", "10.0.0.9")
    user = await auth.authenticate("agent2", PASSWORD, "10.0.0.9")
    assert user.username == "agent2"
    for _ in range(5):
        with pytest.raises(LoginFailed):
            await auth.authenticate("agent2", "wrong-password!", "10.0.0.9")
    with pytest.raises(LockedOut) as locked:
        await auth.authenticate("agent2", PASSWORD, "10.0.0.9")
    assert "15分钟" in locked.value.user_message  # says how long
    assert (await auth.authenticate("agent2", PASSWORD, "10.0.0.7")).username == "agent2"  # other address


async def test_a_password_change_ends_that_users_sessions(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await login(client, "wang")
    assert (await client.get("/api/staff/cases")).status == 200
    await app[AUTH].set_password("wang", "another-long-secret-7")
    assert (await client.get("/api/staff/cases")).status == 401
    await login(client, "wang", "another-long-secret-7")
    assert (await client.get("/api/staff/cases")).status == 200


@pytest.mark.parametrize("password", ["12345678", "123456789012", "aaaaaaaaaaaaaaa", "wang-password-x"])
async def test_weak_passwords_are_refused(client: Any, password: str) -> None:
    from bot.core.errors import BadRequest

    with pytest.raises(BadRequest):
        await client.server.app[AUTH].create_user("wang", password, "agent")


async def _review_case(client: Any, distance: float, decision: str, user: str = "alice") -> tuple[int, int]:
    """A pensioner with an enrolled photo and one attempt with a stored selfie, and an open case."""
    import numpy as np

    app = client.server.app
    services = app[keys.SERVICES]
    pensioner = await services.registry.register("630102195003150020", "张桂兰")
    photos = photo_store(services.settings)
    ref_path, expires = photos.save("enrolment", np.full((40, 40, 3), 120, dtype=np.uint8))
    selfie_path, _ = photos.save("attempts", np.full((40, 40, 3), 60, dtype=np.uint8))
    now = datetime.now(timezone.utc)
    async with services.db.session() as session:
        session.add(FaceTemplate(pensioner_id=pensioner.id, model="Dlib", embedding=[0.0], photo_path=ref_path,
                                 photo_expires_at=expires))
        attempt = CertificationAttempt(pensioner_id=pensioner.id, channel="web", chat_user=user,
                                       decision=decision, distance=distance, threshold=0.08,
                                       photo_path=selfie_path, photo_expires_at=now + timedelta(days=3))
        # the same user id on another channel: not this case's attempt
        stranger = CertificationAttempt(channel="wechat", chat_user=user, decision="failed", distance=0.3,
                                        threshold=0.08, photo_path=selfie_path,
                                        photo_expires_at=now + timedelta(days=3))
        session.add_all([attempt, stranger])
    conv = await services.conversations.load(f"web:{user}")
    case_id = await services.handoff.escalate(conv, "face_failed", pensioner_id=pensioner.id)
    await services.conversations.save(conv)
    return case_id, attempt.id


async def test_review_shows_both_photos_and_scopes_attempts_to_the_channel(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    case_id, attempt_id = await _review_case(client, 0.05, "passed")
    await login(client, "wang")
    await client.post(f"/api/staff/cases/{case_id}/claim")
    detail = await (await client.get(f"/api/staff/cases/{case_id}")).json()
    assert [a["id"] for a in detail["attempts"]] == [attempt_id]  # not the wechat one
    assert detail["reference_photo"] == f"/staff/cases/{case_id}/reference-photo"
    selfie = await client.get(f"/staff/cases/{case_id}/photos/{attempt_id}")
    assert selfie.status == 200 and selfie.content_type == "image/jpeg"  # written under faces/attempts/
    reference = await client.get(detail["reference_photo"])
    assert reference.status == 200 and reference.content_type == "image/jpeg"
    page = await (await client.get(f"/staff/cases/{case_id}")).text()
    assert "和登记照片很像" in page and "reference-photo" in page and "越小越像" in page
    assert "enrolment/" not in page and "attempts/" not in page


async def test_approval_against_the_evidence_needs_another_supervisors_signoff(client: Any,
                                                                               aiohttp_client: Any) -> None:
    app = client.server.app
    services = app[keys.SERVICES]
    await add_staff(app, "wang")
    await add_staff(app, "boss", "supervisor")
    case_id, _ = await _review_case(client, 0.18, "failed")
    await login(client, "wang")
    await client.post(f"/api/staff/cases/{case_id}/claim")
    await updates(client, "alice")
    url = f"/api/staff/cases/{case_id}"
    no_reason = await client.post(f"{url}/resolve", json={"decision": "approved"})
    assert no_reason.status == 400 and (await no_reason.json())["error"] == "reason_required"
    asked = await client.post(f"{url}/resolve", json={"decision": "approved", "note": "视频里看是本人"})
    assert asked.status == 202 and (await asked.json())["status"] == "signoff"
    async with services.db.session() as session:
        row = await session.scalar(select(Pensioner))
    assert row is not None and row.certified_at is None  # nothing took effect yet
    assert "复核" in (await updates(client, "alice"))[0]["text"]
    assert (await client.post(f"{url}/signoff", json={"approve": True, "note": "好"})).status == 403
    boss = await aiohttp_client(client.server)
    await login(boss, "boss")
    no_note = await boss.post(f"{url}/signoff", json={"approve": True})
    assert no_note.status == 400
    ok = await boss.post(f"{url}/signoff", json={"approve": True, "note": "已电话核实"})
    assert ok.status == 200 and (await ok.json())["decision"] == "approved"
    async with services.db.session() as session:
        row = await session.scalar(select(Pensioner))
        entry = await session.scalar(select(AuditLog).where(AuditLog.action == "case_approved"))
    assert row is not None and row.certified_at is not None
    assert entry is not None and entry.actor == "staff:boss" and entry.details["requested_by"] == "staff:wang"


async def test_a_contradicting_decision_needs_acknowledgement(client: Any) -> None:
    app = client.server.app
    services = app[keys.SERVICES]
    await add_staff(app, "wang", "supervisor")
    first, _ = await _review_case(client, 0.05, "passed", user="alice")
    conv = await services.conversations.load("web:bob")
    second = await services.handoff.escalate(conv, "appeal", pensioner_id=(await cases_pensioner(services)))
    await services.conversations.save(conv)
    await login(client, "wang")
    for case_id in (first, second):
        await client.post(f"/api/staff/cases/{case_id}/claim")
    refused = await client.post(f"/api/staff/cases/{second}/resolve",
                                json={"decision": "rejected", "note": "不是本人"})
    assert refused.status == 409 and (await refused.json())["error"] == "other_cases"
    page = await (await client.get(f"/staff/cases/{second}")).text()
    assert f'href="/staff/cases/{first}"' in page and "其他案件" in page
    done = await client.post(f"/api/staff/cases/{second}/resolve",
                             json={"decision": "rejected", "note": "不是本人", "acknowledge_other_cases": True})
    assert done.status == 200
    assert [c["id"] for c in await cases(client)]


async def cases_pensioner(services: Any) -> int:
    async with services.db.session() as session:
        pensioner_id = await session.scalar(select(Pensioner.id))
    assert pensioner_id is not None
    return int(pensioner_id)


async def test_the_user_is_answered_while_a_person_has_the_chat(client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    again = await chat(client, "alice", "转人工")
    assert "已经在排队" in again[0]["text"]
    [case] = await cases_after_login(client)
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    person = await chat(client, "alice", "转人工")
    assert "就是在和工作人员对话" in person[0]["text"]
    menu = await chat(client, "alice", "主菜单")
    assert "算了" in menu[0]["text"]
    ask = await chat(client, "alice", "算了")
    assert "要结束" in ask[0]["text"] and ask[0]["options"]
    keep = await chat(client, "alice", "继续")
    assert "继续" in keep[0]["text"]
    await chat(client, "alice", "算了")
    ended = await chat(client, "alice", "1")
    assert "已经结束" in ended[0]["text"]
    [row] = await cases(client)
    assert row["status"] == "cancelled"


async def test_acknowledgement_once_per_interval_and_no_minutes_out_of_hours(aiohttp_client: Any, tmp_path: Any,
                                                                             clean_backends: Any) -> None:
    from zoneinfo import ZoneInfo

    from bot.app import create_app
    from tests.conftest import make_settings

    today = datetime.now(ZoneInfo("Asia/Shanghai")).weekday()
    other_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today + 2) % 7]
    app = create_app(make_settings(tmp_path, clean_backends, **{"staff.office_hours": f"{other_day} 09:00-17:30",
                                                                "staff.ack_interval_s": 1}))
    client = await aiohttp_client(app)
    first = (await chat(client, "alice", "转人工"))[0]["text"]
    assert "不是工作时间" in first and "分钟" not in first
    await add_staff(app, "wang")
    [case] = await cases_after_login(client)
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    await asyncio.sleep(1.1)
    ack = await chat(client, "alice", "有人吗")
    assert "转给工作人员" in ack[0]["text"] and "分钟" not in ack[0]["text"]
    assert await chat(client, "alice", "我等着") == []  # not repeated within the interval
    await asyncio.sleep(1.1)
    assert "转给工作人员" in (await chat(client, "alice", "还在吗"))[0]["text"]


async def cases_after_login(client: Any) -> list[dict[str, Any]]:
    await login(client, "wang")
    return await cases(client)


async def test_audit_screen_lists_decisions_per_staff_for_supervisors(client: Any, aiohttp_client: Any) -> None:
    app = client.server.app
    await add_staff(app, "wang")
    await add_staff(app, "boss", "supervisor")
    await chat(client, "alice", "转人工")
    [case] = await cases_after_login(client)
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    await client.post(f"/api/staff/cases/{case['id']}/resolve", json={"decision": "resolved", "note": "已解答"})
    assert (await client.get("/api/staff/audit")).status == 403
    boss = await aiohttp_client(client.server)
    await login(boss, "boss")
    body = await (await boss.get("/api/staff/audit", params={"staff": "wang"})).json()
    assert [e["action"] for e in body["entries"]] == ["case_resolved", "claim_case"]
    assert (await (await boss.get("/api/staff/audit", params={"staff": "boss"})).json())["entries"] == []
    page = await (await boss.get("/staff/audit", params={"staff": "wang"})).text()
    assert "已解决" in page and "已解答" in page and f'href="/staff/cases/{case["id"]}"' in page


async def test_a_failed_delivery_is_red_and_can_be_resent(client: Any) -> None:
    app = client.server.app
    services = app[keys.SERVICES]
    await add_staff(app, "wang")
    await chat(client, "alice", "转人工")
    [case] = await cases_after_login(client)
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    await updates(client, "alice")
    await services.db.audit("channel:web", "send_failed", target="web:alice", error="timeout",
                            text="工作人员：请再拍一张", attempts=3)
    page = await (await client.get(f"/staff/cases/{case['id']}")).text()
    assert 'class="send-failed"' in page and f"/staff/cases/{case['id']}/resend" in page
    async with services.db.session() as session:
        failure = await session.scalar(select(AuditLog.id).where(AuditLog.action == "send_failed"))
    me = await (await client.get("/api/staff/me")).json()
    sent = await client.post(f"/staff/cases/{case['id']}/resend", data={"csrf": me["csrf_token"],
                                                                        "failure": str(failure)})
    assert sent.status == 200 and "已重发" in await sent.text()
    assert [r["text"] for r in await updates(client, "alice")] == ["工作人员：请再拍一张"]
    wrong = await client.post(f"/staff/cases/{case['id']}/resend", data={"csrf": me["csrf_token"], "failure": "x"})
    assert wrong.status == 400


async def test_inactive_staff_cases_are_offered_for_reassignment(client: Any, aiohttp_client: Any) -> None:
    app = client.server.app
    agent_id = await add_staff(app, "wang")
    await add_staff(app, "boss", "supervisor")
    await chat(client, "alice", "转人工")
    [case] = await cases_after_login(client)
    await client.post(f"/api/staff/cases/{case['id']}/claim")
    await app[AUTH].set_active(agent_id, False)
    boss = await aiohttp_client(client.server)
    await login(boss, "boss")
    mine = await (await boss.get("/staff/fragments/mine")).text()
    assert "已停用，请重新分配" in mine
    page = await (await boss.get(f"/staff/cases/{case['id']}")).text()
    assert '<option value="boss">' in page and '<option value="wang">' not in page
