"""The selfie certification dialog end to end: chat -> Redis job -> worker -> pushed verdict.

A real arq worker (in-process, burst mode) runs the real model on real photos; the
verdict goes through the results stream and the server-side consumer to the outbox.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from sqlalchemy import select

from bot import keys
from bot.core.messages import InboundMessage
from bot.core.storage.models import AuditLog, Case, CertificationAttempt, CertificationEvent, Pensioner
from bot.face_service import FaceService
from bot.records.attempts import cleanup_expired, photo_store
from bot.records.events import subject_of
from bot.services import Services
from face import variants
from face.enrol import enrol
from nlu.entities import with_check_digit
from tests.conftest import Backends, TestBot, make_settings
from tests.face_support import (
    ID_OBAMA,
    IDENTITY_ONLY,
    engine,
    enrol_obama,
    needs_model,
    needs_photos,
    photo,
    photo_bytes,
    run_worker,
    verdict,
)
from tests.webchat import web_id

pytestmark = [needs_model, needs_photos]
ID_UNENROLLED = with_check_digit("63210219480802003")


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Backends) -> Any:
    """These tests check identity alone: no pose challenge (tests/test_liveness.py has it)."""
    return make_settings(tmp_path, clean_backends, **IDENTITY_ONLY)


@pytest.fixture
async def enrolled(services: Services) -> int:
    pensioner_id = await enrol_obama(services)
    await services.registry.register(ID_UNENROLLED, "马福海")
    return pensioner_id


async def to_selfie_step(bot: TestBot, id_number: str = ID_OBAMA, name: str = "欧巴马") -> None:
    await bot.say(event="menu:certify_now")
    assert "身份证" in bot.text
    await bot.say(id_number)
    assert "姓名" in bot.text
    await bot.say(name)


async def test_happy_path_certifies_and_tells_next_due_date(testbot: TestBot, face: FaceService,
                                                            enrolled: int) -> None:
    await to_selfie_step(testbot)
    assert "正脸照片" in testbot.text and "光线" in testbot.text
    await testbot.say(image=photo_bytes("obama/obama2.jpg"))
    assert "正在核验" in testbot.text
    # While the worker decides, more messages change nothing and queue nothing.
    await testbot.say(image=photo_bytes("obama/obama3.jpg"))
    await testbot.say("好了吗")
    assert "正在核验" in testbot.text
    assert await testbot.services.redis.zcard("face:queue") == 1
    pushed = await verdict(testbot, face)
    assert pushed and "认证成功" in pushed[0].text
    due = (datetime.now(UTC) + timedelta(days=365)).date()
    assert f"{due.year}年{due.month}月{due.day}日" in pushed[0].text
    pensioner = await testbot.services.registry.get(enrolled)
    assert pensioner is not None and pensioner.certified_at is not None
    assert pensioner.certified_by == "face:test"
    conv = await testbot.conversation()
    # certify is over; only the reminder question (issue 20) waits for an answer
    assert [f.dialog for f in conv.stack] == ["reminders"]
    async with testbot.services.db.session() as session:
        attempts = list(await session.scalars(select(CertificationAttempt)))
        audit = list(await session.scalars(select(AuditLog).where(AuditLog.action == "face_attempt")))
    assert [a.decision for a in attempts] == ["passed"]
    assert attempts[0].distance is not None and attempts[0].distance <= attempts[0].threshold
    assert attempts[0].proxy is False and attempts[0].photo_hash
    assert len(audit) == 1
    details = audit[0].details
    assert details["decision"] == "passed" and details["channel"] == "test"
    assert details["proxy"] is False and details["quality_codes"] == []
    assert details["id_number"] == ID_OBAMA[:6] + "********" + ID_OBAMA[-4:]
    assert ID_OBAMA not in str(details) and "photo" not in str(details)
    # The dashboard's step records (issue 22): the region code, a pseudonym, no identity.
    async with testbot.services.db.session() as session:
        events = list(await session.scalars(select(CertificationEvent).order_by(CertificationEvent.id)))
    assert [e.kind for e in events] == ["started", "id_given", "selfie_sent", "passed", "approved"]
    assert [e.prefecture for e in events] == [None, "6301", "6301", "6301", "6301"]
    assert {e.subject for e in events} == {subject_of(testbot.key)} and not any(e.proxy for e in events)


async def test_invalid_id_number_is_called_invalid(testbot: TestBot, face: FaceService,
                                                   enrolled: int) -> None:
    await testbot.say(event="menu:certify_now")
    wrong = ID_OBAMA[:17] + ("1" if ID_OBAMA[17] != "1" else "2")
    await testbot.say(wrong)
    assert "不对" in testbot.text
    await testbot.say(ID_OBAMA)
    assert "姓名" in testbot.text


async def test_wrong_name_reveals_nothing_and_is_limited(testbot: TestBot, face: FaceService,
                                                         enrolled: int) -> None:
    await to_selfie_step(testbot, name="王小明")
    mismatch_text = testbot.text
    assert "对不上" in mismatch_text and "欧巴马" not in mismatch_text
    # An unknown ID gets exactly the same answer.
    await testbot.say(with_check_digit("63010219700101009"))
    await testbot.say("王小明")
    assert testbot.text == mismatch_text
    await testbot.say(ID_OBAMA)
    await testbot.say("王小明")
    assert "工作人员" in testbot.text and testbot.options[0] == "请工作人员核对"


async def test_not_enrolled_gets_the_explanation_not_a_failure(testbot: TestBot, face: FaceService,
                                                               enrolled: int) -> None:
    await to_selfie_step(testbot, ID_UNENROLLED, "马福海")
    assert "建模" in testbot.text and "经办机构" in testbot.text
    assert "失败" in testbot.text  # "这不是认证失败"
    assert (await testbot.conversation()).frame is None


async def test_non_image_and_bad_photo_get_advice_and_a_retry(testbot: TestBot, face: FaceService,
                                                              enrolled: int) -> None:
    await to_selfie_step(testbot)
    await testbot.say(image=b"%PDF-1.4\n%fake pdf renamed to .jpg\n")
    assert "不是照片" in testbot.text  # answered at once, nothing queued
    dark = variants.encode(variants.darken(photo("obama/obama2.jpg"), 0.3))
    await testbot.say(image=dark)
    pushed = await verdict(testbot, face)
    text = "\n".join(r.text for r in pushed)
    assert "光线太暗" in text and "还可以试 2 次" in text
    conv = await testbot.conversation()
    assert conv.frame is not None and conv.frame.state == "selfie"
    await testbot.say(image=photo_bytes("obama/obama3.jpg"))
    pushed = await verdict(testbot, face)
    assert "认证成功" in pushed[0].text


async def test_three_failures_stop_selfies_and_escalate_with_evidence(
        testbot: TestBot, face: FaceService, enrolled: int) -> None:
    await to_selfie_step(testbot)
    impostor = photo_bytes("biden/biden2.jpg")
    for attempt in (1, 2, 3):
        await testbot.say(image=impostor)
        assert "正在核验" in testbot.text
        pushed = await verdict(testbot, face)
        text = "\n".join(r.text for r in pushed)
        assert "对不上" in text
        if attempt < 3:
            assert f"还可以试 {3 - attempt} 次" in text
    assert "不要再拍" in text and pushed[-1].options[0] == "申请人工审核"
    # Another selfie is not taken any more.
    await testbot.say(image=impostor)
    assert "正在核验" not in testbot.text
    await testbot.say("1")
    conv = await testbot.conversation()
    assert conv.mode == "waiting" and conv.case_id is not None
    async with testbot.services.db.session() as session:
        case = await session.get(Case, conv.case_id)
        attempts = list(await session.scalars(select(CertificationAttempt)))
    assert case is not None and case.reason == "face_failed" and case.pensioner_id == enrolled
    evidence = case.evidence
    assert [a["decision"] for a in evidence["attempts"]] == ["failed"] * 3
    assert all(a["distance"] > a["threshold"] for a in evidence["attempts"])
    photos_dir = testbot.services.settings.storage.data_dir / "faces"
    for item in evidence["attempts"]:
        assert item["photo"] and (photos_dir / item["photo"]).is_file()
    assert len(attempts) == 3


async def test_web_chat_upload_gets_verifying_then_pushed_verdict(client: Any, enrolled_web: int
                                                                  ) -> None:
    user = "face-web-1"
    services = client.server.app[keys.SERVICES]
    # The dialog starts from the menu (certify_now); the rest goes through the web API.
    await services.handle(InboundMessage("web", user, "m0", event="menu:certify_now"))
    for text in (ID_OBAMA, "欧巴马"):
        response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
        assert response.status == 200
    form = FormData()
    form.add_field("user_id", await web_id(client, user))
    form.add_field("image", photo_bytes("obama/obama2.jpg"), filename="selfie.jpg",
                   content_type="image/jpeg")
    response = await client.post("/api/chat", data=form)
    body = await response.json()
    assert response.status == 200 and "正在核验" in body["replies"][-1]["text"]
    await run_worker(services)  # the app's own consumer task delivers the verdict
    replies: list[dict[str, Any]] = []
    for _ in range(100):
        update = await client.get("/api/chat/updates", params={"user_id": await web_id(client, user)})
        replies += (await update.json())["replies"]
        if replies:
            break
        await asyncio.sleep(0.1)
    assert replies and "认证成功" in replies[0]["text"]


@pytest.fixture
async def enrolled_web(client: Any) -> int:
    from bot import keys

    services = client.server.app[keys.SERVICES]
    result = await enrol(services.db, engine(), photo_store(services.settings), ID_OBAMA, "欧巴马",
                         photo_bytes("obama/obama1.jpg"))
    assert result.pensioner_id is not None
    return result.pensioner_id


async def test_expired_photos_are_deleted(services: Services, enrolled: int, tmp_path: Path) -> None:
    store = photo_store(services.settings)
    async with services.db.session() as session:
        pensioner = await session.scalar(select(Pensioner).where(Pensioner.id_number == ID_OBAMA))
        assert pensioner is not None
    old_path, _ = store.save("attempts", photo("obama/obama2.jpg"))
    new_path, new_expiry = store.save("attempts", photo("obama/obama3.jpg"))
    assert old_path and new_path
    async with services.db.session() as session:
        session.add(CertificationAttempt(pensioner_id=enrolled, channel="web", chat_user="u",
                                         decision="failed", photo_path=old_path,
                                         photo_expires_at=datetime.now(UTC) - timedelta(days=1)))
        session.add(CertificationAttempt(pensioner_id=enrolled, channel="web", chat_user="u",
                                         decision="failed", photo_path=new_path,
                                         photo_expires_at=new_expiry))
    removed = await cleanup_expired(services.db, store)
    assert removed == 1
    assert not store.path(old_path).exists() and store.path(new_path).exists()
    async with services.db.session() as session:
        paths = sorted(str(a.photo_path) for a in await session.scalars(select(CertificationAttempt)))
    assert paths == sorted(["None", new_path])


async def test_a_job_that_keeps_failing_is_retried_then_the_user_is_asked_again(
        testbot: TestBot, face: FaceService, enrolled: int) -> None:
    from arq.worker import Retry

    from face.jobs import MAX_TRIES, start_deps, stop_deps, verify_selfie

    await to_selfie_step(testbot)
    await testbot.say(image=photo_bytes("obama/obama2.jpg"))
    conv = await testbot.conversation()
    assert conv.frame is not None
    broken = {"request_id": conv.frame.slots["request_id"], "conversation_key": testbot.key,
              "dialog": "certify", "pensioner_id": enrolled, "channel": "test",
              "chat_user": testbot.user_id, "photo": None}  # bytes(None) raises in the worker
    deps = await start_deps(testbot.services.settings, testbot.services.redis, engine())
    try:
        with pytest.raises(Retry):
            await verify_selfie({"deps": deps, "job_try": 1}, broken)
        result = await verify_selfie({"deps": deps, "job_try": MAX_TRIES}, broken)
    finally:
        await stop_deps(deps)
    assert result["decision"] == "error"
    assert await face.process_pending(block_ms=100) == 1
    pushed = await testbot.pushed()
    assert "重新发送" in pushed[0].text
    conv = await testbot.conversation()
    assert conv.frame is not None and conv.frame.state == "selfie"
    async with testbot.services.db.session() as session:
        assert list(await session.scalars(select(CertificationAttempt))) == []
