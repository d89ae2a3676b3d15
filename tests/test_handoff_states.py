"""Conversation states bot -> waiting -> human -> closed -> bot, through the pipeline."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.core.config import Settings
from bot.core.storage.models import AuditLog, Case, CaseMessage
from bot.records.cases import QUEUE_KEY, HandoffService
from bot.services import Services
from bot.staff.desk import GREETING, StaffDesk
from handlers.middleware import survey_answer
from tests.conftest import StaffedChat, TestBot, make_settings, staff_session

MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工", "བོད་ཡིག 藏文"]  # + the language option


async def case_rows(services: Services) -> list[Case]:
    async with services.db.session() as session:
        return list(await session.scalars(select(Case).order_by(Case.id)))


async def test_handoff_request_puts_the_chat_in_the_queue(testbot: TestBot, services: Services) -> None:
    await testbot.say("你好")
    await testbot.say("转人工")
    assert "转接人工" in testbot.text and "前面没有人在等" in testbot.text and "算了" in testbot.text
    conv = await testbot.conversation()
    assert conv.mode == "waiting" and conv.case_id
    [case] = await case_rows(services)
    assert (case.status, case.reason, case.channel, case.user_id) == ("waiting", "user_request", "test",
                                                                      testbot.user_id)
    assert any(t["text"] == "你好" for t in case.transcript)
    assert await services.redis.zscore(QUEUE_KEY, str(case.id)) is not None


async def test_waiting_user_hears_position_and_messages_are_kept(testbot: TestBot, services: Services) -> None:
    other = TestBot(services)
    await other.say("转人工")
    await testbot.say("转人工")
    assert "前面还有 1 位" in testbot.text
    await testbot.say("我的认证一直不通过")
    assert "排队" in testbot.text and "前面还有 1 位" in testbot.text and "算了" in testbot.text
    conv = await testbot.conversation()
    async with services.db.session() as session:
        texts = list(await session.scalars(select(CaseMessage.text).where(CaseMessage.case_id == conv.case_id)))
    assert texts == ["我的认证一直不通过"]


async def test_cancel_while_waiting_returns_to_the_bot(testbot: TestBot, services: Services) -> None:
    await testbot.say("转人工")
    await testbot.say("算了")
    assert "取消排队" in testbot.text and testbot.options == MENU
    conv = await testbot.conversation()
    assert conv.mode == "bot" and conv.case_id is None
    [case] = await case_rows(services)
    assert case.status == "cancelled" and case.closed_at is not None
    assert await services.redis.zcard(QUEUE_KEY) == 0
    await testbot.say("需要带什么材料")
    assert "身份证" in testbot.text


@pytest.mark.parametrize("said", ["算了吧", "不等了", "不用了 谢谢", "好吧那算了", "我自己弄吧 不要人工了"])
async def test_the_ways_people_give_up_waiting_leave_the_queue(testbot: TestBot, services: Services,
                                                               said: str) -> None:
    await testbot.say("转人工")
    await testbot.say(said)
    assert "取消排队" in testbot.text
    conv = await testbot.conversation()
    assert conv.mode == "bot" and conv.case_id is None
    [case] = await case_rows(services)
    assert case.status == "cancelled"


async def test_a_question_while_waiting_is_not_giving_up(testbot: TestBot, services: Services) -> None:
    await testbot.say("转人工")
    await testbot.say("还要等多久")
    assert (await testbot.conversation()).mode == "waiting"
    await testbot.say("我想问问认证的事 不用了吗 还是要等")  # long: a message for the person
    assert (await testbot.conversation()).mode == "waiting"


async def test_three_misunderstandings_open_a_fallback_case(testbot: TestBot, services: Services) -> None:
    for text in ("啊啊啊啊", "嗯嗯嗯嗯", "哦哦哦哦"):
        await testbot.say(text)
    assert "转接人工" in testbot.text
    [case] = await case_rows(services)
    assert case.reason == "fallback"


async def test_human_mode_relays_and_the_bot_stays_silent(testbot: TestBot, services: Services,
                                                          staffed: StaffedChat) -> None:
    assert (await testbot.conversation()).mode == "human"
    pushed = await testbot.pushed()
    assert "工作人员" in pushed[0].text
    assert await testbot.say("怎么认证") == []
    await staffed.reply("请把身份证号发给我")
    assert [r.text for r in await testbot.pushed()] == ["工作人员：请把身份证号发给我"]
    async with services.db.session() as session:
        rows = list(await session.scalars(select(CaseMessage).where(CaseMessage.case_id == staffed.case_id)
                                          .order_by(CaseMessage.id)))
    assert [(m.author, m.text) for m in rows] == [("staff", GREETING), ("user", "怎么认证"),
                                                  ("staff", "请把身份证号发给我")]  # the greeting is kept


async def test_closing_asks_if_resolved_and_records_the_answer(testbot: TestBot, services: Services,
                                                               staffed: StaffedChat) -> None:
    await testbot.pushed()
    await staffed.resolve("已电话说明")
    pushed = await testbot.pushed()
    assert pushed[-1].text.startswith("这次帮到您了吗") and pushed[-1].options == ["帮到了", "帮到一部分", "没帮到"]
    conv = await testbot.conversation()
    assert conv.mode == "closed" and conv.case_id is None
    await testbot.say("1")
    assert "谢谢" in testbot.text and testbot.options == MENU
    assert (await testbot.conversation()).mode == "bot"
    async with services.db.session() as session:
        feedback = await session.scalar(select(CaseMessage).where(CaseMessage.author == "feedback"))
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "handoff_feedback"))
    assert feedback is not None and feedback.case_id == staffed.case_id and feedback.text == "解决了"
    assert audit is not None and audit.details["resolved"] is True
    await testbot.say("3")  # the menu is live again: numbers work
    assert "身份证" in testbot.text


async def test_not_resolved_answer_offers_a_person_again(testbot: TestBot, services: Services,
                                                         staffed: StaffedChat) -> None:
    await staffed.resolve()
    await testbot.say("还没解决")
    assert "转人工" in testbot.text and testbot.options == MENU
    async with services.db.session() as session:
        feedback = await session.scalar(select(CaseMessage.text).where(CaseMessage.author == "feedback"))
    assert feedback == "没解决"


async def test_after_closure_other_questions_go_to_the_bot(testbot: TestBot, services: Services,
                                                           staffed: StaffedChat) -> None:
    await staffed.resolve()
    await testbot.say("需要带什么材料")
    assert "身份证" in testbot.text
    async with services.db.session() as session:
        assert await session.scalar(select(CaseMessage).where(CaseMessage.author == "feedback")) is None


async def test_returning_user_after_closure_starts_with_the_bot(testbot: TestBot, services: Services,
                                                                staffed: StaffedChat) -> None:
    await staffed.resolve()
    ttl = await services.redis.ttl(f"conv:{testbot.key}")
    assert 0 < ttl <= services.settings.conversation.idle_timeout_s  # closed chats expire like bot chats
    await services.conversations.delete(testbot.key)  # the idle timeout passed
    await testbot.say("你好")
    assert testbot.options == MENU and "欢迎回来" in testbot.text
    assert (await testbot.conversation()).mode == "bot"


async def test_hand_back_returns_control_with_a_live_menu(testbot: TestBot, services: Services,
                                                          staffed: StaffedChat) -> None:
    await testbot.pushed()
    case = await staffed.hand_back()
    assert case.status == "closed" and case.decision == "handed_back"
    pushed = await testbot.pushed()
    assert "交还给小助手" in pushed[0].text and pushed[0].options == MENU
    assert (await testbot.conversation()).mode == "bot"
    await testbot.say("3")
    assert "身份证" in testbot.text


async def test_staff_pull_takes_over_a_bot_chat(testbot: TestBot, services: Services) -> None:
    staff = await staff_session(services)
    desk = StaffDesk(services)
    await testbot.say("怎么认证")
    recent = [key for key, _ in await services.handoff.recent()]
    assert testbot.key in recent
    case = await desk.pull(staff, testbot.key)
    assert (case.reason, case.status, case.assigned_to) == ("staff_pull", "claimed", staff.staff_id)
    assert any(t["text"] == "怎么认证" for t in case.transcript)
    assert "工作人员" in (await testbot.pushed())[0].text
    assert await testbot.say("好的谢谢") == []
    assert (await testbot.conversation()).mode == "human"


def test_survey_answers() -> None:
    assert survey_answer("1") is True and survey_answer("解决了。") is True
    assert survey_answer("2") is False and survey_answer("还没解决") is False
    assert survey_answer("怎么认证") is None


def test_next_opening_is_told_out_of_hours(tmp_path: Any, clean_backends: Any) -> None:
    settings: Settings = make_settings(tmp_path, clean_backends)
    handoff = HandoffService(settings, None, None)  # type: ignore[arg-type]
    tz = ZoneInfo("Asia/Shanghai")
    saturday = datetime(2026, 11, 28, 20, 0, tzinfo=tz)
    assert not handoff.in_office_hours(saturday)
    assert handoff.next_opening(saturday) == datetime(2026, 11, 30, 9, 0, tzinfo=tz)
    assert handoff.back_text(saturday) == "工作人员11月30日（周一）09:00上班"
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=tz)
    assert handoff.next_opening(friday_evening).day == 30
    monday_early = datetime(2026, 11, 30, 7, 0, tzinfo=tz)
    assert handoff.next_opening(monday_early) == datetime(2026, 11, 30, 9, 0, tzinfo=tz)
    tuesday_noon = datetime(2026, 12, 1, 12, 0, tzinfo=tz)
    assert handoff.in_office_hours(tuesday_noon) and handoff.next_opening(tuesday_noon) == tuesday_noon


async def test_dialogs_leave_evidence_and_proxy_details_for_the_case(testbot: TestBot, services: Services) -> None:
    pensioner = await services.registry.register("630102195003150020", "张桂兰")
    conv = await services.conversations.load(testbot.key)
    conv.memory.update({"pensioner_id": pensioner.id,
                        "handoff_evidence": {"attempts": 3, "quality_codes": ["face_too_small"]},
                        "handoff_proxy": {"relationship": "子女"}})
    conv.log("user", "帮我妈妈刷脸", 40)
    case_id = await services.handoff.escalate(conv, "face_failed")
    await services.conversations.save(conv)
    async with services.db.session() as session:
        case = await session.get(Case, case_id)
    assert case is not None and case.reason == "face_failed" and case.pensioner_id == pensioner.id
    assert case.evidence == {"attempts": 3, "quality_codes": ["face_too_small"]}
    assert case.proxy == {"relationship": "子女"} and case.transcript[0]["text"] == "帮我妈妈刷脸"
    assert "handoff_evidence" not in conv.memory
    await testbot.say("还要等多久")
    assert "排队" in testbot.text


def test_case_photos_are_deleted_after_retention(tmp_path: Path) -> None:
    import os
    import time as _time

    from bot.records.cases import purge_case_photos

    folder = tmp_path / "case_photos" / "7"
    folder.mkdir(parents=True)
    old, new = folder / "a", folder / "b"
    old = old.with_suffix(".img")
    new = new.with_suffix(".img")
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    month_ago = _time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    assert purge_case_photos(tmp_path, retention_days=30) == 1
    assert not old.exists() and new.exists()
    assert purge_case_photos(tmp_path, retention_days=0) == 1  # no retention: nothing is kept
