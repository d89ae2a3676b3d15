"""The family proxy flow (代他人认证) through the fake channel.

The selfie tests run a real arq face worker with the real model on real photos (reference
embeddings computed once per session and stored as templates); the identity, limit and
rate-limit tests need no model (their pensioners get a stored template directly).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.storage.models import (
    AuditLog,
    Case,
    CertificationAttempt,
    CertificationEvent,
    Pensioner,
    ProxyLink,
)
from bot.face_service import FaceService
from bot.records.attempts import AttemptRecord, find_reused_photo, hamming, record_attempt, save_template
from bot.services import Services
from dialogs.family import (
    CONSENT,
    MANAGE,
    REMIND_NO,
    REMIND_YES,
    family,
    mask_name,
    relationship_of,
)
from nlu.entities import with_check_digit
from tests.conftest import Backends, TestBot, make_settings
from tests.face_support import (
    ID_OBAMA,
    IDENTITY_ONLY,
    embedding,
    joined,
    needs_model,
    needs_photos,
    photo_bytes,
    verdict,
)

ID_UNENROLLED = with_check_digit("63210219480802003")
PEOPLE = [(with_check_digit(f"63010219500101{i}00"), name)
          for i, name in enumerate(["张桂兰", "马福海", "李德明", "王秀英", "赵玉珍"], 1)]
FAKE_EMBEDDING = [0.01] * 128  # enough for "enrolled" when no selfie is verified


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Backends) -> Any:
    """These tests check identity alone: no pose challenge (tests/test_liveness.py has it)."""
    return make_settings(tmp_path, clean_backends, **IDENTITY_ONLY)


async def register(services: Services, id_number: str, name: str,
                   embedding: list[float] | None = None) -> int:
    pensioner = await services.registry.register(id_number, name)
    if embedding is not None:
        await save_template(services.db, pensioner.id, list(embedding), "Dlib", None, None)
    return int(pensioner.id)


@pytest.fixture
async def obama(services: Services) -> int:
    """Obama enrolled from obama1.jpg (embedding computed once per test session)."""
    return await register(services, ID_OBAMA, "欧巴马", list(embedding("obama/obama1.jpg")))


def photo(name: str) -> bytes:
    return photo_bytes(name)


def reencoded(name: str) -> bytes:
    """The same photo recompressed and resized (what a re-sent chat photo looks like)."""
    from PIL import Image

    image = Image.open(io.BytesIO(photo(name))).convert("RGB")
    image = image.resize((image.width * 8 // 10, image.height * 8 // 10))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


async def to_consent(bot: TestBot, id_number: str, name: str, relationship: str = "1") -> None:
    await bot.say(event="menu:family_certification")
    assert "什么人" in bot.text and bot.options[:4] == ["子女", "配偶", "其他亲属", "其他"]
    await bot.say(relationship)
    assert "身份证" in bot.text
    await bot.say(id_number)
    assert "姓名" in bot.text
    await bot.say(name)


async def to_selfie(bot: TestBot, id_number: str = ID_OBAMA, name: str = "欧巴马",
                    relationship: str = "1") -> None:
    await to_consent(bot, id_number, name, relationship)
    assert "老人本人必须在场" in bot.text and bot.options[0] == CONSENT
    await bot.say("1")
    assert "已经记下老人本人同意" in bot.text and "老人的正脸照片" in bot.text


async def audit(services: Services, action: str) -> list[AuditLog]:
    async with services.db.session() as session:
        return list(await session.scalars(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


async def links(services: Services) -> list[ProxyLink]:
    async with services.db.session() as session:
        return list(await session.scalars(select(ProxyLink).order_by(ProxyLink.id)))


async def attempts(services: Services) -> list[CertificationAttempt]:
    async with services.db.session() as session:
        return list(await session.scalars(
            select(CertificationAttempt).order_by(CertificationAttempt.id)))


# ---------------------------------------------------------------- with the real model


@needs_model
@needs_photos
async def test_happy_proxy_certification_with_reminder_opt_in(testbot: TestBot, face: FaceService,
                                                              obama: int) -> None:
    await to_selfie(testbot)
    [link] = await links(testbot.services)
    assert link.relationship == "子女" and link.consent_channel == "test"
    assert link.consent_at is not None and link.proxy_key == testbot.key
    assert link.year == datetime.now(UTC).year and link.reminder_opt_in is False
    await testbot.say(image=photo("obama/obama2.jpg"))
    assert "正在核验" in testbot.text
    pushed = await verdict(testbot, face)
    text = joined(pushed)
    pensioner = await testbot.services.registry.get(obama)
    assert pensioner is not None and pensioner.next_due is not None
    due = pensioner.next_due
    assert "认证成功" in text and f"{due.year}年{due.month}月{due.day}日" in text
    assert pushed[-1].options == [REMIND_YES, REMIND_NO]
    assert pensioner.certified_by == "face:test:proxy"
    await testbot.say("1")
    assert "提醒您" in testbot.text
    [link] = await links(testbot.services)
    assert link.reminder_opt_in is True
    # The attempt is a proxy attempt with the relationship and the proxy's chat identity.
    [attempt] = await attempts(testbot.services)
    assert attempt.decision == "passed" and attempt.proxy is True
    assert attempt.relationship == "子女"
    assert (attempt.channel, attempt.chat_user) == ("test", testbot.user_id)
    [face_audit] = await audit(testbot.services, "face_attempt")
    assert face_audit.details["proxy_key"] == testbot.key and face_audit.details["proxy"] is True
    for action in ("family_started", "family_identity_confirmed", "family_consent",
                   "proxy_certified", "family_reminder"):
        entries = await audit(testbot.services, action)
        assert entries and entries[-1].details["proxy_key"] == testbot.key, action
    consent = (await audit(testbot.services, "family_consent"))[0].details
    assert consent["consent_channel"] == "test" and consent["relationship"] == "子女"
    # The proxy's own status is unaffected: their chat is not tied to the pensioner.
    conv = await testbot.conversation()
    assert "pensioner_id" not in conv.memory and conv.frame is None
    # The dashboard's step records (issue 22): family steps are proxy steps; region 6301.
    async with testbot.services.db.session() as session:
        events = list(await session.scalars(select(CertificationEvent).order_by(CertificationEvent.id)))
    assert [e.kind for e in events] == ["started", "id_given", "selfie_sent", "passed", "approved"]
    assert all(e.proxy for e in events) and events[-1].prefecture == "6301"


@needs_model
@needs_photos
async def test_the_proxys_own_face_is_refused_as_not_the_pensioner(
        testbot: TestBot, face: FaceService, obama: int) -> None:
    await to_selfie(testbot)
    await testbot.say(image=photo("biden/biden1.jpg"))  # the family member's own selfie
    pushed = await verdict(testbot, face)
    text = joined(pushed)
    assert "请拍老人本人" in text and "还可以试 2 次" in text
    pensioner = await testbot.services.registry.get(obama)
    assert pensioner is not None and pensioner.certified_at is None
    [attempt] = await attempts(testbot.services)
    assert attempt.decision == "failed" and attempt.proxy is True


@needs_model
@needs_photos
async def test_a_reused_photo_is_flagged_for_review_not_accepted(
        services: Services, face: FaceService, obama: int) -> None:
    first = TestBot(services)
    await to_selfie(first)
    await first.say(image=photo("obama/obama2.jpg"))
    assert "认证成功" in joined(await verdict(first, face))
    await first.say(REMIND_NO)
    assert "不提醒" in first.text
    assert (await links(services))[0].reminder_opt_in is False
    before = (await services.registry.get(obama))
    assert before is not None
    # Someone else sends the same photo again (recompressed, resized) for the same pensioner.
    second = TestBot(services)
    await to_selfie(second, relationship="配偶")
    await second.say(image=reencoded("obama/obama2.jpg"))
    text = joined(await verdict(second, face))
    assert "以前已经用过" in text and "认证成功" not in text
    after = await services.registry.get(obama)
    assert after is not None and after.certified_at == before.certified_at
    conv = await second.conversation()
    assert conv.mode == "waiting" and conv.case_id is not None
    async with services.db.session() as session:
        case = await session.get(Case, conv.case_id)
    assert case is not None and case.reason == "photo_reused" and case.pensioner_id == obama
    assert case.proxy["relationship"] == "配偶" and case.proxy["proxy_key"] == second.key
    assert case.proxy["consent_at"]
    decisions = [a.decision for a in await attempts(services)]
    assert decisions == ["passed", "flagged"]
    [reused] = await audit(services, "photo_reused")
    assert reused.details["decision"] == "flagged" and reused.details["proxy_key"] == second.key
    assert await audit(services, "photo_reused_review")


@needs_model
@needs_photos
async def test_three_failures_open_a_case_with_the_proxy_details(
        testbot: TestBot, face: FaceService, obama: int) -> None:
    await to_selfie(testbot, relationship="其他亲属")
    for _ in range(3):
        await testbot.say(image=photo("biden/biden2.jpg"))
        assert "正在核验" in testbot.text
        pushed = await verdict(testbot, face)
        assert "请拍老人本人" in joined(pushed)
    assert "不要再拍" in joined(pushed) and pushed[-1].options[0] == "申请人工审核"
    await testbot.say("1")
    conv = await testbot.conversation()
    assert conv.mode == "waiting" and conv.case_id is not None
    async with testbot.services.db.session() as session:
        case = await session.get(Case, conv.case_id)
    assert case is not None and case.reason == "face_failed" and case.pensioner_id == obama
    [link] = await links(testbot.services)
    assert case.proxy["relationship"] == "其他亲属" and case.proxy["proxy_key"] == testbot.key
    assert case.proxy["consent_channel"] == "test" and case.proxy["link_id"] == link.id
    assert link.consent_at is not None and case.proxy["consent_at"]
    assert datetime.fromisoformat(case.proxy["consent_at"]) == link.consent_at
    evidence = case.evidence["attempts"]
    assert [(a["decision"], a["proxy"], a["relationship"]) for a in evidence] == [
        ("failed", True, "其他亲属")] * 3
    assert "老人本人必须在场" in "\n".join(t["text"] for t in case.transcript)


# ---------------------------------------------------------------- identity, limits, privacy


async def test_wrong_name_reveals_nothing_and_retries_are_limited(testbot: TestBot) -> None:
    await register(testbot.services, PEOPLE[0][0], PEOPLE[0][1], FAKE_EMBEDDING)
    await to_consent(testbot, PEOPLE[0][0], "王小明")
    mismatch = testbot.text
    assert "对不上" in mismatch and "张" not in mismatch and "身份证" in mismatch
    # An unknown ID number gets exactly the same answer.
    await testbot.say(with_check_digit("63010219700101009"))
    await testbot.say("王小明")
    assert testbot.text == mismatch
    await testbot.say(PEOPLE[0][0])
    await testbot.say("王小明")
    assert "工作人员" in testbot.text and testbot.options[0] == "请工作人员核对"
    assert not await links(testbot.services)
    assert [e.details["tries"] for e in await audit(testbot.services, "family_identity_mismatch")] == [1, 2, 3]
    # An invalid checksum is called invalid.
    await testbot.say(event="menu:family_certification")
    await testbot.say("2")
    await testbot.say(PEOPLE[0][0][:17] + ("1" if PEOPLE[0][0][17] != "1" else "2"))
    assert "不对" in testbot.text


async def test_unenrolled_parent_gets_the_explanation(testbot: TestBot) -> None:
    await register(testbot.services, ID_UNENROLLED, "马福海")
    await to_consent(testbot, ID_UNENROLLED, "马福海")
    assert "建模" in testbot.text and "不是认证失败" in testbot.text
    assert (await testbot.conversation()).frame is None
    assert not await links(testbot.services)
    assert await audit(testbot.services, "family_not_enrolled")


async def test_per_identity_limit_and_removing_a_linked_pensioner(testbot: TestBot) -> None:
    services = testbot.services
    services.settings.rate_limit.messages_per_minute = 500  # many steps in one minute
    ids = [await register(services, id_number, name, FAKE_EMBEDDING) for id_number, name in PEOPLE]
    for id_number, name in PEOPLE[:3]:
        await to_selfie(testbot, id_number, name)
    assert len(await links(services)) == 3
    # Acting again for a linked pensioner is fine.
    await to_selfie(testbot, *PEOPLE[0])
    assert len(await links(services)) == 3
    await to_consent(testbot, *PEOPLE[3])
    assert "最多替 3 位老人" in testbot.text and testbot.options[0] == MANAGE
    assert await audit(services, "family_limit_reached")
    await testbot.say("1")
    assert "张*兰" in testbot.text and "马*海" in testbot.text and "李*明" in testbot.text
    assert "张桂兰" not in testbot.text and testbot.options[0] == "移除 张*兰"
    await testbot.say("2")  # 马*海
    assert "确定以后不再替 马*海" in testbot.text
    await testbot.say("1")
    assert "已经移除 马*海" in testbot.text
    [unlink] = await audit(services, "family_unlink")
    assert unlink.target == f"pensioner:{ids[1]}" and unlink.details["proxy_key"] == testbot.key
    await to_selfie(testbot, *PEOPLE[3])  # the freed slot
    # Removing someone this identity already sent a selfie for does not free the slot.
    await record_attempt(services.db, AttemptRecord(
        pensioner_id=ids[2], channel="test", chat_user=testbot.user_id, proxy=True,
        relationship="子女", quality_codes=[], distance=0.2, threshold=0.08, decision="failed"))
    await testbot.say(event="menu:family_certification")
    await testbot.say(MANAGE)
    assert "王*英" in testbot.text and "马*海" not in testbot.text
    await testbot.say("移除 李*明")
    await testbot.say("确定移除")
    await to_consent(testbot, *PEOPLE[4])
    assert "最多替 3 位老人" in testbot.text
    # Another chat identity is not affected by this one's limit.
    other = TestBot(services)
    await to_consent(other, *PEOPLE[4])
    assert other.options[0] == CONSENT


async def test_id_lookups_are_rate_limited_per_identity_and_globally(services: Services) -> None:
    await register(services, PEOPLE[0][0], PEOPLE[0][1], FAKE_EMBEDDING)
    services.settings.rate_limit.id_lookups_per_hour = 2
    services.settings.family.max_name_attempts = 10
    bot = TestBot(services)
    await to_consent(bot, PEOPLE[0][0], "王小明")
    await bot.say(PEOPLE[0][0])
    await bot.say("王小明")
    assert "对不上" in bot.text
    await bot.say(PEOPLE[0][0])
    await bot.say(PEOPLE[0][1])  # even the right name: no lookup allowed any more
    assert "查询次数太多" in bot.text and "老人本人必须在场" not in bot.text
    assert await audit(services, "family_lookup_limited")
    # Per ID number (issue 15): wrong names from many chats protect that ID only; throwaway
    # chats guessing names cannot lock everyone else out.
    services.settings.rate_limit.id_lookups_per_hour = 100
    services.settings.rate_limit.name_failures_per_id_per_hour = 3
    for _ in range(3):
        guesser = TestBot(services)
        await to_consent(guesser, PEOPLE[0][0], "王小明")
    another = TestBot(services)
    await to_consent(another, *PEOPLE[0])
    assert "查询次数太多" in another.text
    await register(services, PEOPLE[1][0], PEOPLE[1][1], FAKE_EMBEDDING)
    someone_else = TestBot(services)
    await to_consent(someone_else, *PEOPLE[1])
    assert "查询次数太多" not in someone_else.text


async def test_entry_by_phrase_menu_and_wechat_key(services: Services) -> None:
    bot = TestBot(services)
    await bot.say("你好")
    assert "帮家人认证" in bot.options
    await bot.say(str(bot.options.index("帮家人认证") + 1))
    assert "什么人" in bot.text
    phrase = TestBot(services)
    await phrase.say("替我妈认证")  # the relationship is already in the request
    assert "您是老人的子女" in phrase.text and "身份证" in phrase.text
    wechat = TestBot(services, channel="wechat")
    await wechat.say(event="menu:family_certification")
    assert "什么人" in wechat.text
    await wechat.say("我是他女儿")
    assert "身份证" in wechat.text
    assert (await wechat.conversation()).frame.slots["relationship"] == "子女"


def test_relationship_words_and_masked_names() -> None:
    assert relationship_of("替我妈认证") == "子女"
    assert relationship_of("帮老父亲办养老认证") == "子女"
    assert relationship_of("我是她儿子") == "子女"
    assert relationship_of("给老伴弄一下") == "配偶"
    assert relationship_of("我是他孙女") == "其他亲属"
    assert relationship_of("邻居") == "其他"
    assert relationship_of("你好") is None
    from bot.core.understanding import Entity

    assert relationship_of("x", [Entity("relationship", "配偶", 0, 1)]) == "配偶"
    assert [mask_name(n) for n in ("张桂兰", "张三", "欧阳秀英")] == ["张*兰", "张*", "欧**英"]


async def test_reused_photo_rule(services: Services) -> None:
    """Flag: the same photo (within a few bits) that passed, or sent for someone else."""
    a = await register(services, *PEOPLE[0])
    b = await register(services, *PEOPLE[1])
    base = "f0e1d2c3b4a59687"
    near = f"{int(base, 16) ^ 0b101:016x}"  # 2 bits off
    far = f"{int(base, 16) ^ 0xFFFFFF:016x}"
    assert hamming(base, near) == 2 and hamming(base, far) == 24

    async def add(pensioner: int, decision: str, photo_hash: str) -> int:
        return await record_attempt(services.db, AttemptRecord(
            pensioner_id=pensioner, channel="test", chat_user="u", proxy=True, relationship="子女",
            quality_codes=[], distance=0.3, threshold=0.08, decision=decision,
            photo_hash=photo_hash))

    failed = await add(a, "failed", base)
    assert await find_reused_photo(services.db, near, a) is None  # a retry of a failed photo
    found = await find_reused_photo(services.db, near, b)  # the same photo for someone else
    assert found is not None and found.id == failed
    passed = await add(a, "passed", far)
    found = await find_reused_photo(services.db, far, a)
    assert found is not None and found.id == passed
    assert await find_reused_photo(services.db, far, a, exclude_attempt=passed) is None


async def test_opted_in_family_members_are_reminded_once_before_the_due_date(
        services: Services) -> None:
    from datetime import timedelta

    from bot.family_reminders import send_due_reminders

    today = datetime.now(UTC).date()
    soon, later = today + timedelta(days=10), today + timedelta(days=200)
    ids = [await register(services, id_number, name) for id_number, name in PEOPLE[:3]]
    bots = [TestBot(services) for _ in range(3)]
    async with services.db.session() as session:
        for pensioner_id, due in zip(ids, (soon, soon, later), strict=True):
            pensioner = await session.get(Pensioner, pensioner_id)
            assert pensioner is not None
            pensioner.next_due = due
        for bot, pensioner_id, opt_in in zip(bots, ids, (True, False, True), strict=True):
            session.add(ProxyLink(proxy_key=bot.key, pensioner_id=pensioner_id, relationship="子女",
                                  year=today.year, reminder_opt_in=opt_in))
    assert await send_due_reminders(services, today) == 1
    [reminder] = await bots[0].pushed()
    assert "张*兰" in reminder.text and f"{soon.month}月{soon.day}日" in reminder.text
    assert not await bots[1].pushed() and not await bots[2].pushed()  # opted out / not yet due
    assert await send_due_reminders(services, today) == 0  # once per due date
    assert not await bots[0].pushed()
    [sent] = await audit(services, "family_reminder_sent")
    assert sent.details["proxy_key"] == bots[0].key
    assert await send_due_reminders(services, later - timedelta(days=5)) == 1
    assert await bots[2].pushed()


def test_diagram_is_up_to_date() -> None:
    text = (Path(__file__).resolve().parent.parent / "dialogs" / "family.md").read_text(encoding="utf-8")
    assert family.to_mermaid() in text

