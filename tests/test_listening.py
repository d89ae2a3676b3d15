"""Listening to what people already said (issue 16), through the fake channel.

One test per row of the issue's two tables, plus the entity rules they rest on. The demo
pensioners are seeded (张桂兰 certified, 马福海 overdue, 李德明 never certified).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.storage.models import AuditLog, Case, HomeVisitRequest, Pensioner
from bot.records.attempts import save_template
from bot.records.pensioners import next_due_after, seed_demo
from bot.services import Services
from nlu import entities
from nlu.reading import read
from nlu.rules import emoji_as_words
from tests.conftest import TestBot

ZHANG = "63010219500315002X"  # certified 200 days ago
MA = "632102194808020019"  # overdue
LI = "632802195511200038"  # never certified


@pytest.fixture
async def demo(services: Services) -> list[Pensioner]:
    return await seed_demo(services.registry)


async def frame_of(bot: TestBot) -> tuple[str | None, str | None]:
    frame = (await bot.conversation()).frame
    return (frame.dialog, frame.state) if frame else (None, None)


async def mode_of(bot: TestBot) -> str:
    return str((await bot.conversation()).mode)


async def enrol(services: Services, id_number: str) -> int:
    async with services.db.session() as session:
        pensioner = await session.scalar(select(Pensioner).where(Pensioner.id_number == id_number))
        assert pensioner is not None
        pensioner_id = int(pensioner.id)
    await save_template(services.db, pensioner_id, [0.1] * 128, "Dlib", None, None)
    return pensioner_id


async def audit_actions(services: Services) -> list[str]:
    async with services.db.session() as session:
        return list(await session.scalars(select(AuditLog.action)))


# ---------------------------------------------------------------- entities


def test_ids_written_with_spaces_full_width_lower_x_or_spoken() -> None:
    for text in ("630102 19500315 002x", "６３０１０２１９５００３１５００２Ｘ",
                 "六三零一零二一九五零零三一五零零二叉", "身份证 6301-0219-5003-1500-2X"):
        assert [e.value for e in entities.extract(text) if e.type == "id_number"] == [ZHANG], text
    assert [e.value for e in entities.extract("电话幺三八零九七一二三四五") if e.type == "phone"] \
        == ["13809712345"]


def test_names_including_tibetan_hui_tu_and_mongolian() -> None:
    for text, name in (("她叫王秀英，卧床三年了", "王秀英"), ("老人叫才让卓玛", "才让卓玛"),
                       ("我爸马福海认证过没有", "马福海"), ("名字叫扎西", "扎西"),
                       ("老人姓名是多杰", "多杰"), ("他叫巴特尔", "巴特尔")):
        assert entities.extract_name(text) == name, text
    for word in ("卧床", "提交", "对，提交", "瘫痪卧床", "不想弄了", "转人工", "修改"):
        assert not entities.plausible_name(word), word


def test_addresses_stop_before_the_reason() -> None:
    assert entities.extract_address("互助县威远镇小庄村 瘫痪卧床") == "互助县威远镇小庄村"
    assert entities.extract_address("住在西宁市城东区八一路12号3单元201") == "西宁市城东区八一路12号3单元201"


def test_negations_and_hedges_read_right() -> None:
    assert read("我妈不会用手机").slots["smartphone"] is False
    assert read("手机不太会").slots["smartphone"] is False
    assert read("会一点").slots["smartphone"] is True
    assert read("不会用手机也没人帮 出门也难").slots == {
        "smartphone": False, "family_help": False, "leave_home": False}
    assert read("有人说交200块钱可以帮我认证").money
    assert read("我是藏族，汉字看不太懂").reading_trouble


# ---------------------------------------------------------------- table 1


async def test_own_id_number_is_not_asked_again(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"我的身份证号是{LI}")
    assert "请发一下老人的身份证号" not in testbot.text
    if "查询认证状态" in testbot.options:  # asked what to do with it: the number is kept
        await testbot.say("1")
    assert "姓名" in testbot.text


async def test_family_request_with_name_and_id_uses_both(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"我爸叫马福海，身份证{MA}，他能不能在你这认证")
    assert "身份证号" not in testbot.text.replace("收到老人的身份证号", "")
    assert "建模" in testbot.text  # identity checked; this demo pensioner has no face model
    assert "family_identity_confirmed" in await audit_actions(testbot.services)


async def test_status_query_with_id_and_name_answers_at_once(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"查认证状态 {ZHANG} 张桂兰")
    assert "完成了认证" in testbot.text and "请发一下" not in testbot.text


@pytest.mark.parametrize("question", ["上门认证是谁来", "上门认证要多久？", "能不能上门"])
async def test_a_question_about_home_visits_is_answered_before_any_form(testbot: TestBot,
                                                                       question: str) -> None:
    await testbot.say(question)
    assert "工作人员到家里" in testbot.text and "姓名" not in testbot.text
    assert await frame_of(testbot) == (None, None)
    assert testbot.options[0] == "申请上门认证"
    await testbot.say("1")  # the offer begins the form
    assert await frame_of(testbot) == ("home_visit", "form") and "姓名" in testbot.text


async def test_after_the_answer_asking_for_it_in_words_begins_the_form(testbot: TestBot) -> None:
    await testbot.say("上门认证是谁来")
    await testbot.say("那我申请一个")
    assert await frame_of(testbot) == ("home_visit", "form")


async def test_after_the_answer_declining_it_is_not_taken_for_an_appeal(testbot: TestBot) -> None:
    await testbot.say("上门认证是谁来")
    await testbot.say("不申请")
    assert (await frame_of(testbot))[0] != "home_visit"
    assert "申诉" not in testbot.text and "转人工" in testbot.options


async def test_a_question_that_tells_about_the_person_is_answered_and_the_form_begins(
        testbot: TestBot) -> None:
    await testbot.say("我妈卧床了，能上门认证吗？")
    assert "工作人员到家里" in testbot.text
    assert await frame_of(testbot) == ("home_visit", "form") and "姓名" in testbot.text


async def test_asking_how_to_apply_for_a_home_visit_begins_the_form(testbot: TestBot) -> None:
    await testbot.say("上门认证怎么申请")
    assert await frame_of(testbot) == ("home_visit", "form")


async def test_home_visit_keeps_name_and_reason_from_the_first_message(testbot: TestBot,
                                                                      demo: Any) -> None:
    await testbot.say("我想给我妈申请上门认证，她叫王秀英，卧床三年了")
    assert await frame_of(testbot) == ("home_visit", "form")
    assert "王秀英" in testbot.text and "先请告诉我老人的姓名" not in testbot.text
    await testbot.say("630102195201010036")  # not in the registry: does not block
    await testbot.say("西宁市城中区南大街18号")
    await testbot.say("13809712345")
    assert "出不了门" not in testbot.text
    assert "姓名：王秀英" in testbot.text and "原因：卧床三年了" in testbot.text


async def test_phone_skill_told_in_passing_is_not_asked(testbot: TestBot) -> None:
    await testbot.say("我妈妈78岁了，不会用手机，怎么认证")
    await testbot.say("帮我选方法")
    if "国外" in testbot.text:
        await testbot.say("不是")
    assert "自己会用智能手机吗" not in testbot.text
    assert "家里有没有人" in testbot.text


async def test_named_app_starts_its_walkthrough(testbot: TestBot) -> None:
    await testbot.say("教我用青海人社通认证")
    assert (await frame_of(testbot))[0] == "app_qinghai"


async def test_named_phone_skips_the_phone_question(testbot: TestBot) -> None:
    await testbot.say("苹果手机怎么下载青海人社通")
    assert await frame_of(testbot) == ("app_qinghai", "download")
    assert "App Store" in testbot.text


async def test_greeting_and_question_gets_the_answer(testbot: TestBot) -> None:
    await testbot.say("喂你好我想问一下那个养老金认证是咋个认证的")
    assert "请回复数字选择：" not in testbot.text
    assert (await frame_of(testbot))[0] == "choose_method"


async def test_question_and_a_person_goes_to_a_person(testbot: TestBot) -> None:
    await testbot.say("我妈刷脸三次都失败了，我要找人工")
    assert await mode_of(testbot) == "waiting" and "人工服务" in testbot.text


async def test_staff_contact_inside_the_home_visit_form(testbot: TestBot) -> None:
    await testbot.say(event="menu:method_home_visit")
    await testbot.say("太麻烦了，你让工作人员联系我吧")
    assert await mode_of(testbot) == "waiting" and "身份证号" not in testbot.text


async def test_bad_checksum_is_told_as_a_mistyped_digit(testbot: TestBot) -> None:
    await testbot.say("身份证号632123195501011234")
    assert "输错了一位" in testbot.text and "信息不一致" not in testbot.text


async def test_trouble_reading_chinese_is_not_poor_light(testbot: TestBot) -> None:
    await testbot.say("我是藏族，汉字看不太懂")
    assert "光线" not in testbot.text and "转人工" in testbot.options


async def test_money_remark_in_failure_diagnosis_is_not_yes(testbot: TestBot) -> None:
    await testbot.say(event="menu:cert_failed")
    await testbot.say("有人说交200块钱可以帮我认证")
    assert "好的。还有什么" not in testbot.text
    assert await frame_of(testbot) == ("cert_failed", "ask")
    assert "我们接着刚才的步骤" in testbot.text


async def test_appeal_question_gets_the_answer(testbot: TestBot) -> None:
    await testbot.say("认证不通过可以申诉吗")
    assert "可以申诉" in testbot.text and "申请人工审核（申诉）" in testbot.options
    await testbot.say("1")
    assert await mode_of(testbot) == "waiting"


# ---------------------------------------------------------------- table 2


async def test_reason_answer_is_not_a_name(testbot: TestBot, demo: Any) -> None:
    await testbot.say(event="menu:method_home_visit")
    for answer in ("李德明", LI, "互助县威远镇小庄村", "13809712345", "瘫痪 卧床"):
        await testbot.say(answer)
    assert "姓名：李德明" in testbot.text and "住址：互助县威远镇小庄村" in testbot.text
    assert "原因：瘫痪 卧床" in testbot.text


async def test_edited_name_is_validated_and_checked_against_the_id(testbot: TestBot,
                                                                  demo: Any) -> None:
    await testbot.say(event="menu:method_home_visit")
    await testbot.say(f"李德明 {LI} 住在湟中区鲁沙尔镇和平村 电话13709712345 中风了下不了床")
    assert "请核对一下" in testbot.text
    await testbot.say("要改一下")
    await testbot.say("姓名")
    await testbot.say("卧床")
    assert "请只发老人的姓名" in testbot.text
    await testbot.say("对，提交")
    assert "登记编号" not in testbot.text
    await testbot.say("王秀英")  # does not match the registered name of this ID
    assert "对不上" in testbot.text and "请核对一下：" not in testbot.text
    await testbot.say("李德明")
    await testbot.say("1")
    assert "登记编号" in testbot.text
    async with testbot.services.db.session() as session:
        stored = await session.scalar(select(HomeVisitRequest))
        assert stored is not None and stored.pensioner_name == "李德明"


async def test_certified_pensioner_is_told_so_before_any_new_attempt(testbot: TestBot,
                                                                     demo: Any) -> None:
    await enrol(testbot.services, ZHANG)
    await testbot.say(event="menu:certify_now")
    await testbot.say(ZHANG)
    await testbot.say("张桂兰")
    assert "已经认证成功" in testbot.text and "下次在" in testbot.text
    assert "今天已经试了" not in testbot.text and (await frame_of(testbot))[0] != "certify"
    family = TestBot(testbot.services)
    await family.say("帮我妈认证")
    await family.say(f"{ZHANG} 张桂兰")
    assert "已经认证成功" in family.text


async def test_not_enrolled_question_in_the_selfie_step_keeps_the_step(testbot: TestBot,
                                                                       demo: Any) -> None:
    await enrol(testbot.services, LI)
    await testbot.say(event="menu:certify_now")
    await testbot.say(LI)
    await testbot.say("李德明")
    assert await frame_of(testbot) == ("certify", "selfie")
    await testbot.say("手机上说我未建模 咋整")
    assert await frame_of(testbot) == ("certify", "selfie")
    assert "已经有这位老人的人脸模型" in testbot.text


async def test_elderly_dialect_question_is_understood(testbot: TestBot) -> None:
    await testbot.say("俺今年七十八了 手机不会用 这个认证咋整嘛")
    assert "没太明白" not in testbot.text
    assert (await frame_of(testbot))[0] == "choose_method"


async def test_no_phone_no_help_cannot_go_out_leads_to_a_home_visit(testbot: TestBot) -> None:
    await testbot.say("不会用手机也没人帮 出门也难")
    assert "没听明白" not in testbot.text and "没太明白" not in testbot.text
    await testbot.say("不在国外")
    assert "上门认证" in testbot.text and await frame_of(testbot) == ("choose_method", "rec_home_visit")


async def test_finished_questionnaire_is_not_restarted(testbot: TestBot) -> None:
    await testbot.say(event="menu:choose_method")
    for answer in ("帮我选方法", "不是", "不会用", "没有", "能出门"):
        await testbot.say(answer)
    assert "邮储银行" in testbot.text
    await testbot.say("俺住在互助县 去哪个地方办")
    assert "第1个问题" not in testbot.text and "我们接着刚才的步骤" not in testbot.text
    await testbot.say("要带什么材料")
    assert "我们接着刚才的步骤" not in testbot.text


async def test_photo_then_certify_starts_the_selfie_flow(testbot: TestBot) -> None:
    await testbot.say(image=b"\x89PNG not really")
    await testbot.say("我要办认证")
    assert await frame_of(testbot) == ("certify", "start")


@pytest.mark.parametrize("words", ["不想弄了", "不弄了 退出"])
async def test_giving_up_at_the_name_step_uses_no_try(testbot: TestBot, demo: Any,
                                                      words: str) -> None:
    await testbot.say(event="menu:certify_now")
    await testbot.say(LI)
    await testbot.say(words)
    assert await frame_of(testbot) == ("main_menu", "choose")
    assert "对不上" not in testbot.text
    assert "certify_identity_mismatch" not in await audit_actions(testbot.services)


async def test_new_id_at_the_name_step_replaces_the_old_one(testbot: TestBot, demo: Any) -> None:
    await testbot.say(event="menu:status_query")
    await testbot.say(MA)
    await testbot.say(ZHANG)
    assert "换成" in testbot.text and "请只发老人的姓名" not in testbot.text
    await testbot.say("张桂兰")
    assert "完成了认证" in testbot.text


async def test_spoken_chinese_numerals_id(testbot: TestBot, demo: Any) -> None:
    await testbot.say(event="menu:status_query")
    await testbot.say("六三二一零二一九四八零八零二零零一九")
    assert "需要18位" not in testbot.text and "姓名" in testbot.text
    await testbot.say("马福海")
    assert "过期" in testbot.text


async def test_whom_to_ask_after_the_options(testbot: TestBot) -> None:
    await testbot.say(event="menu:missed_deadline")
    await testbot.say("停发的钱能补吗")
    await testbot.say("怎么补认证")
    await testbot.say("该找谁")
    assert "没听明白" not in testbot.text and "12333" in testbot.text


async def test_login_trouble_stays_in_the_walkthrough(testbot: TestBot) -> None:
    await testbot.say(event="menu:app_download")
    await testbot.say("安卓")
    await testbot.say("下载好了")
    await testbot.say("登录不上 验证码收不到")
    assert await frame_of(testbot) == ("app_qinghai", "open")
    assert "验证码" in testbot.text and "打不开" not in testbot.text


async def test_status_dates_are_beijing_time(testbot: TestBot) -> None:
    # 18:45 UTC on Dec 1 is 02:45 in Beijing on Dec 2.
    certified = datetime(2026, 12, 1, 18, 45, tzinfo=UTC)
    async with testbot.services.db.session() as session:
        session.add(Pensioner(id_number=LI, name="李德明", status="active", certified_at=certified,
                              next_due=next_due_after(certified)))
    await testbot.say(event="menu:status_query")
    await testbot.say(LI)
    await testbot.say("李德明")
    assert "2026年12月2日 完成了认证" in testbot.text


async def test_consent_notice_in_plain_words_and_no_third_step(testbot: TestBot,
                                                              demo: Any) -> None:
    await enrol(testbot.services, LI)
    await testbot.say("帮家人认证")
    await testbot.say("1")
    await testbot.say(LI)
    await testbot.say("李德明")
    await testbot.say("1")  # 本人已同意并在场
    assert "北京时间" in testbot.text
    assert "web" not in testbot.text and "test" not in testbot.text and "第三步" not in testbot.text
    assert await frame_of(testbot) == ("certify", "selfie")


async def test_status_without_face_model_offers_no_selfie(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"查认证状态 {LI} 李德明")
    assert "在这里刷脸认证" not in testbot.options
    await enrol(testbot.services, LI)
    other = TestBot(testbot.services)
    await other.say(f"查认证状态 {LI} 李德明")
    assert "在这里刷脸认证" in other.options




async def test_not_understood_question_is_said_more_simply(testbot: TestBot) -> None:
    await testbot.say(event="menu:choose_method")
    await testbot.say("帮我选方法")
    await testbot.say("没看懂")
    assert "外国" in testbot.text and "回复 1" in testbot.text
    assert await frame_of(testbot) == ("choose_method", "q_abroad")
    await testbot.say(event="menu:status_query")
    await testbot.say("说简单点")
    assert "18个数字" in testbot.text and await frame_of(testbot) == ("status_query", "ask_id")


async def test_still_failing_after_a_fix_leads_to_help(testbot: TestBot) -> None:
    await testbot.say(event="menu:cert_failed")
    await testbot.say("1")
    await testbot.say("还是不行")
    await testbot.say("还是不行")
    assert await frame_of(testbot) == ("cert_failed", "offer_help")
    assert "申请人工审核（申诉）" in testbot.options


async def test_family_word_and_certify_here_is_family_not_status(testbot: TestBot,
                                                                demo: Any) -> None:
    await testbot.say(f"我爸爸马福海身份证{MA}想在这里认证")
    assert "family_identity_confirmed" in await audit_actions(testbot.services)
    other = TestBot(testbot.services)
    await other.say(f"我爸马福海认证过没有 身份证{MA}")
    assert "过期" in other.text


# ---------------------------------------------------------------- when they last certified


@pytest.mark.parametrize("text, months, overdue", [
    ("我妈去年3月认证的 今年忘了", 21, True),
    ("2025年5月认证的", 19, True),
    ("上次认证是2025年11月", 13, True),
    ("半年前在社区认证过", 6, False),
    ("一年多没认证了", 13, True),
    ("两年没认证了", 24, True),
    ("上个月刚认证", 1, False),
    ("三个月以前认证过", 3, False),
    ("去年十月份认证的", 14, True),
    ("去年认证的", 1, None),  # which month is unknown
])
def test_last_certified_is_read_as_months_ago(text: str, months: int, overdue: bool | None) -> None:
    found = entities.extract_last_certified(text, today=date(2026, 12, 4))
    assert found is not None, text
    assert (found.months, found.overdue) == (months, overdue), text


def test_last_certified_needs_a_past_certification() -> None:
    today = date(2026, 12, 4)
    for text in ("明年认证的时候提醒我", "今年还没认证", "俺今年七十八了 手机不会用 这个认证咋整嘛",
                 "我妈卧床三年了", "认证失败了", "上个月没认证"):
        assert entities.extract_last_certified(text, today=today) is None, text
    assert read("一年多没认证了", today=today).slots["last_certified"]["overdue"] is True


async def test_a_failed_attempt_is_not_when_they_last_certified(testbot: TestBot) -> None:
    today = date(2026, 12, 4)
    for text in ("上个月人社通刷脸一直失败 说我不是本人", "昨天认证没通过", "前天刷脸不成功"):
        assert entities.extract_last_certified(text, today=today) is None, text
    await testbot.say("上个月人社通刷脸一直失败 说我不是本人")
    assert "上次认证" not in testbot.text and "不是本人" in testbot.text
    assert (await testbot.conversation()).frame.dialog == "cert_failed"


async def test_last_certified_over_a_year_ago_is_the_missed_deadline(testbot: TestBot) -> None:
    await testbot.say("我爸2024年8月认证过一次 后来就没弄了 现在还能认证不")
    assert "您说上次认证是2024年8月" in testbot.text and "超过12个月" in testbot.text
    assert "补发" in testbot.text
    assert (await frame_of(testbot))[0] == "missed_deadline"


async def test_recent_certification_is_confirmed_not_asked(testbot: TestBot) -> None:
    await testbot.say("三个月前刚在社区认证过 今年还用认证吗")
    assert "您说上次认证是三个月前" in testbot.text and "12个月内有效" in testbot.text
    assert (await frame_of(testbot))[0] is None
    other = TestBot(testbot.services)
    await other.say("去年认证过的 还要弄吗")
    assert "记不清" in other.text and "查认证状态" in other.options


async def test_last_certified_inside_the_questionnaire_leads_to_the_missed_deadline(
        testbot: TestBot) -> None:
    await testbot.say(event="menu:choose_method")
    await testbot.say("帮我选方法")
    await testbot.say("对了 俺都两年没认证了")
    assert "超过12个月" in testbot.text and (await frame_of(testbot))[0] == "missed_deadline"


# ---------------------------------------------------------------- held-out first-pass causes


async def test_opening_name_is_used_after_the_id_number(testbot: TestBot, demo: Any) -> None:
    await testbot.say("我叫张桂兰 帮我看看认证过了没")
    assert (await frame_of(testbot))[0] == "status_query"
    await testbot.say(ZHANG)
    assert "完成了认证" in testbot.text and "请再发一下老人的姓名" not in testbot.text


def test_a_family_members_own_name_is_not_the_pensioners() -> None:
    assert "name" not in read("我叫李明 帮我妈查一下认证").slots
    assert read("帮我奶奶查一下 名字张桂兰").slots["name"] == "张桂兰"


async def test_correction_at_the_home_visit_summary_replaces_the_value(testbot: TestBot,
                                                                      demo: Any) -> None:
    await testbot.say(event="menu:method_home_visit")
    await testbot.say(f"李德明 {LI} 住在大通县桥头镇向阳路5号 电话13809711111 腿脚不好")
    assert "请核对一下" in testbot.text
    await testbot.say("手机号写错了，应该是13909713333")
    assert "电话：13909713333" in testbot.text and "13809711111" not in testbot.text
    assert await frame_of(testbot) == ("home_visit", "confirm")


async def test_home_visit_reason_stops_before_the_request(testbot: TestBot) -> None:
    await testbot.say("我奶奶叫才让卓玛 起不来床 你们能不能派人上门给她认证")
    assert await frame_of(testbot) == ("home_visit", "form")
    assert read("她起不来床 能不能派人上门").slots["reason"] == "起不来床"


async def test_stopping_with_a_remark_stops_the_form(testbot: TestBot) -> None:
    await testbot.say(event="menu:method_home_visit")
    await testbot.say("不申请了，过两天我带她去社保局")
    assert (await frame_of(testbot))[0] in (None, "main_menu") and "没有提交" in testbot.text
    await testbot.say(event="menu:method_home_visit")
    await testbot.say("李德明")
    await testbot.say("算了算了 过几天我自己去社保局")
    assert (await frame_of(testbot))[0] in (None, "main_menu") and "不会提交" in testbot.text


async def test_option_word_next_to_a_person_request_goes_to_a_person(testbot: TestBot) -> None:
    await testbot.say(event="menu:cert_failed")
    await testbot.say("1")
    await testbot.say("还是不行 你们找个人给我打电话")
    assert await mode_of(testbot) == "waiting"


async def test_phone_type_inside_a_walkthrough_stays_in_it(testbot: TestBot) -> None:
    await testbot.say("掌上12333怎么认证")
    assert (await frame_of(testbot))[0] == "app_12333"
    await testbot.say("我是华为")
    assert (await frame_of(testbot))[0] == "app_12333" and "第1步" in testbot.text


async def test_bad_check_digit_next_to_a_request_starts_it(testbot: TestBot) -> None:
    await testbot.say("帮我查一下认证状态 632802195511200039")
    assert "输错了一位" in testbot.text
    assert (await frame_of(testbot))[0] == "status_query"


async def test_asking_for_a_reminder_is_answered(testbot: TestBot) -> None:
    await testbot.say("认证快到期的时候能不能提醒俺一下")
    assert "提醒" in testbot.text and "我没太明白" not in testbot.text


async def test_changed_answer_after_the_recommendation_re_runs_the_questions(
        testbot: TestBot) -> None:
    await testbot.say(event="menu:choose_method")
    for answer in ("帮我选方法", "在国内", "会用"):
        await testbot.say(answer)
    assert "您想用哪个" in testbot.text
    await testbot.say("说错了 他其实不大会用 也没人帮他")
    assert "重新帮您挑" in testbot.text and "没听明白" not in testbot.text
    assert await frame_of(testbot) == ("choose_method", "q_leave_home")


def test_qinghai_places_and_dialect_are_read() -> None:
    assert read("一直住在互助 没出去过").slots["abroad"] is False
    assert "abroad" not in read("我爸在国外 我在国内").slots
    assert read("俺不会弄手机").slots["smartphone"] is False
    assert read("都是孙子帮我弄").slots["family_help"] is True


# ---------------------------------------------------------------- the tables again, other wordings


async def test_small_print_is_neither_reading_trouble_nor_light(testbot: TestBot) -> None:
    await testbot.say("屏幕上的字太小了 眼睛看不清")
    assert "字调大" in testbot.text and "汉字看不太懂" not in testbot.text and "光线" not in testbot.text


async def test_a_cause_word_that_is_ruled_out_is_not_the_cause(testbot: TestBot) -> None:
    await testbot.say("认证失败了")
    await testbot.say("网络挺好的 灯也开着 就是过不去")
    assert "网络的问题" not in testbot.text
    assert await frame_of(testbot) == ("cert_failed", "ask")


async def test_success_told_at_the_cause_question_ends_well(testbot: TestBot) -> None:
    await testbot.say("认证失败了")
    await testbot.say("哦 刚才又试了一下 通过了")
    assert "太好了" in testbot.text and (await frame_of(testbot))[0] in (None, "main_menu")


async def test_home_visit_request_with_every_detail_is_not_a_status_query(testbot: TestBot,
                                                                          demo: Any) -> None:
    await testbot.say(f"给我爸申请上门认证 马福海 {MA} 家在乐都区碾伯镇 电话13997120000 偏瘫")
    assert await frame_of(testbot) == ("home_visit", "confirm")
    assert "姓名：马福海" in testbot.text and "原因：偏瘫" in testbot.text


async def test_situation_and_how_is_choosing_a_method(testbot: TestBot) -> None:
    await testbot.say("孩子们都在外地 家里就我一个 阿么认证呢")
    assert (await frame_of(testbot))[0] == "choose_method" and "外省" not in testbot.text


async def test_a_child_asking_for_a_parent_abroad_hears_the_parent_must_do_it(testbot: TestBot) -> None:
    await testbot.say("我爸在国外 我在国内能不能替他认证")
    assert "不能替他刷脸" in testbot.text and "中国领事" in testbot.text
    assert await frame_of(testbot) == ("app_consular", "download")


async def test_someone_abroad_asking_for_themselves_gets_no_family_note(testbot: TestBot) -> None:
    await testbot.say("我住在国外，用中国领事怎么认证")
    assert "不能替他刷脸" not in testbot.text
    assert await frame_of(testbot) == ("app_consular", "download")


async def test_remind_me_and_certify_for_my_mother_begins_the_family_flow(testbot: TestBot) -> None:
    await testbot.say("明年认证的时候提醒我 帮我妈认证")
    assert "提醒" in testbot.text and "身份证" in testbot.text
    assert (await frame_of(testbot))[0] == "family"


@pytest.mark.parametrize("text", ["我妈今年认证了吗", "我爸去年认证了吗", "我去年认证过没有"])
def test_asking_whether_they_certified_is_not_saying_when(text: str) -> None:
    assert entities.extract_last_certified(text) is None


async def test_a_question_whether_mother_certified_this_year_is_not_taken_as_a_date(testbot: TestBot) -> None:
    await testbot.say("我妈今年认证了吗")
    assert "您说上次认证是" not in testbot.text


@pytest.mark.parametrize("said", [f"身份证{LI} 李德明 帮我认证一下", f"我叫李德明 身份证号{LI} 今年还没认证 现在认证"])
async def test_asking_to_certify_with_id_and_name_certifies_not_a_status_lookup(testbot: TestBot, demo: Any,
                                                                               said: str) -> None:
    await testbot.say(said)
    assert "认证记录" not in testbot.text and "姓名" not in testbot.text
    assert "人脸模型" in testbot.text  # identity checked; this demo pensioner has no face model


async def test_asking_to_certify_with_id_asks_only_the_name(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"我要认证 身份证{MA}")
    assert await frame_of(testbot) == ("certify", "ask_name")


async def test_asking_whether_certified_with_id_still_looks_it_up(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"身份证{MA} 马福海 认证了没有")
    assert "完成了认证" in testbot.text


@pytest.mark.parametrize("then", ["那我现在认证", "我要刷脸"])
async def test_certifying_after_a_status_query_uses_the_checked_id_and_name(testbot: TestBot, demo: Any,
                                                                            then: str) -> None:
    await testbot.say(f"我身份证{MA} 我叫马福海 先帮我查查认证了没")
    assert "完成了认证" in testbot.text
    await testbot.say(then)
    assert "刚才查过" in testbot.text and "请输入" not in testbot.text
    assert "人脸模型" in testbot.text  # identity checked again; this demo pensioner has no face model


async def test_introducing_oneself_with_the_id_is_not_asked_the_name_again(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"我是马福海 {MA} 查认证")
    assert "完成了认证" in testbot.text and "姓名" not in testbot.text


async def test_a_second_status_question_uses_the_checked_name(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"我是张桂兰 {ZHANG}")
    assert "完成了认证" in testbot.text
    await testbot.say("我认证了没")
    assert "完成了认证" in testbot.text and "姓名" not in testbot.text


async def test_a_name_before_the_id_number_is_kept_for_the_name_question(testbot: TestBot, demo: Any) -> None:
    await testbot.say("我要刷脸认证")
    await testbot.say("我叫马福海")
    assert "马福海" in testbot.text and "身份证号码" in testbot.text
    await testbot.say(MA)
    assert "姓名" not in testbot.text and "人脸模型" in testbot.text


# ---------------------------------------------------------------- plain answers, side questions


async def test_a_family_member_of_a_bedridden_parent_hears_both_ways_and_is_not_asked_again(
        testbot: TestBot) -> None:
    await testbot.say("我爸85了 在床上起不来 怎么认证")
    assert "帮老人刷脸" in testbot.text and "上门认证" in testbot.text
    assert testbot.options[:2] == ["帮家人认证", "申请上门认证"]
    await testbot.say("1")  # certifying for him at home: the relationship is known
    assert "您是老人的子女" in testbot.text and "身份证号" in testbot.text
    assert (await testbot.conversation()).frame.state == "ask_id"

    spoken = TestBot(testbot.services)  # a voice message, with its fillers
    await spoken.say("嗯 那个 我想问一下 就是 那个养老金认证 我爸他 腿脚不好 去不了社保局 咋办")
    assert spoken.options[:2] == ["帮家人认证", "申请上门认证"]

    other = TestBot(testbot.services)
    await other.say("我妈瘫在床上 咋认证")
    await other.say("申请上门认证")  # a visit: why she cannot come is not asked again
    assert "原因：瘫在床上" in other.text and "姓名" in other.text


async def test_a_family_member_away_from_a_parent_nobody_helps_is_shown_a_method(testbot: TestBot) -> None:
    await testbot.say("我爸不会用手机 我在西宁上班 他在湟中老家 没人帮他")
    conv = await testbot.conversation()
    assert conv.frame.dialog == "choose_method" and conv.frame.state == "q_leave_home"
    assert "家里没人能帮忙" in testbot.text and "第1个问题：老人能出门" in testbot.text
    await testbot.say("出不了门")
    assert "上门认证" in testbot.text


async def test_a_name_after_a_greeting_is_heard(testbot: TestBot) -> None:
    assert read("你好我是张桂兰 身份证63010219500315002X 我今年认证了吗").slots["name"] == "张桂兰"


async def test_certifying_a_relative_said_after_a_greeting_starts_the_family_flow(testbot: TestBot) -> None:
    await testbot.say("你好 我想给我妈认证")  # the rest after the greeting is listened to as well
    assert "您是老人的子女" in testbot.text
    assert (await testbot.conversation()).frame.state == "ask_id"
    other = TestBot(testbot.services)
    await other.say("我女儿帮我认证 怎么弄")  # the daughter helps: the pensioner asks, not the family flow
    assert (await other.conversation()).frame.dialog != "family"


async def test_a_pension_that_did_not_arrive_and_whether_certification_is_why(testbot: TestBot) -> None:
    await testbot.say("我的养老金这个月没到账")
    assert "暂停发放" in testbot.text and "查认证状态" in testbot.options
    await testbot.say("是不是没认证的原因")  # "是不是" is not "不是" (no)
    assert "暂停发放" in testbot.text and "您想办哪件事" not in testbot.text
    await testbot.say("养老金怎么停了")  # a death entry ranks first but may not answer
    assert "暂停发放" in testbot.text and "没太明白" not in testbot.text


async def test_a_situation_told_at_the_first_screen_starts_the_questions(testbot: TestBot) -> None:
    await testbot.say("怎么认证")
    await testbot.say("我不会用智能手机")  # instead of "帮我选方法"
    assert "没听明白" not in testbot.text and "第1个问题" in testbot.text
    await testbot.say("不在")
    # the phone question is skipped, and the next one asked is the second
    assert "不会用手机" in testbot.text and "第2个问题：家里有没有人" in testbot.text


async def test_short_plain_answers_lead_through_choosing_a_method(testbot: TestBot) -> None:
    await testbot.say("怎么认证")
    await testbot.say("帮我选方法")
    await testbot.say("不在")  # not abroad (not the out-of-province answer)
    assert "第2个问题" in testbot.text and "外省" not in testbot.text
    await testbot.say("不会")
    assert "第3个问题" in testbot.text and "照片" not in testbot.text
    await testbot.say("家里有人")
    assert "请家人帮忙" in testbot.text


async def test_no_one_to_help_and_cannot_go_out_said_plainly_lead_to_a_home_visit(testbot: TestBot) -> None:
    for said in ("怎么认证", "1", "不在国外", "不太会", "家里就我们老两口", "去不了"):
        await testbot.say(said)
    assert "上门认证" in testbot.text and await frame_of(testbot) == ("choose_method", "rec_home_visit")


async def test_asking_whether_a_person_answers_is_answered_not_queued(testbot: TestBot) -> None:
    for said in ("你是真人吗", "你是人工吗", "是不是机器人在回我"):
        await testbot.say(said)
        assert "不是真人" in testbot.text and await mode_of(testbot) == "bot"
    await testbot.say("我要找真人")
    assert await mode_of(testbot) == "waiting"


async def test_a_forgotten_id_number_is_told_where_to_find_it_and_the_form_goes_on(testbot: TestBot) -> None:
    await testbot.say("我忘了身份证号")
    assert "户口本" in testbot.text and "改一下信息" not in testbot.text
    await testbot.say("我要刷脸认证")
    await testbot.say("她身份证号我不记得了")
    assert "户口本" in testbot.text and "我们接着刚才的步骤" in testbot.text
    assert (await frame_of(testbot))[0] == "certify"


async def test_a_busy_hotline_gets_advice_not_the_app_guide(testbot: TestBot) -> None:
    for said in ("12333打不通咋办", "12333老是占线", "打12333没人接"):
        await testbot.say(said)
        assert "占线" in testbot.text and await frame_of(testbot) == (None, None)


async def test_money_after_a_death_is_answered_after_condolences(testbot: TestBot) -> None:
    await testbot.say("我妈上个月去世了")
    assert "节哀" in testbot.text
    await testbot.say("那她的钱要退吗")
    assert "退回" in testbot.text and "没太明白" not in testbot.text


async def test_a_reminder_for_next_year_is_explained_with_the_ways_to_begin(testbot: TestBot) -> None:
    await testbot.say("明年提醒我认证")
    assert "可以提醒" in testbot.text and "在这里刷脸认证" in testbot.options


async def test_certify_right_after_a_status_result_certifies_that_pensioner(testbot: TestBot, demo: Any) -> None:
    await testbot.say(f"{MA} 马福海 认证了吗")
    assert "过期" in testbot.text
    await testbot.say("帮我认证")
    assert "刚才查过" in testbot.text and "人脸模型" in testbot.text


def test_how_long_an_illness_lasted_is_not_when_they_last_certified() -> None:
    assert entities.extract_last_certified("我爸瘫在床上好几年了 想申请上门认证") is None
    assert entities.extract_last_certified("老人卧床三年了 要认证") is None
    found = entities.extract_last_certified("一年多了都没认证")
    assert found is not None and found.overdue
    found = entities.extract_last_certified("认证都两年了")
    assert found is not None and found.months == 24


async def test_a_home_visit_message_with_several_answers_is_read_back(testbot: TestBot) -> None:
    await testbot.say("我爸瘫在床上好几年了 想申请上门认证")
    assert "上次认证" not in testbot.text and "原因：瘫在床上好几年了" in testbot.text
    await testbot.say(f"我爸叫马福海 身份证{MA}")
    assert "记下了：姓名：马福海，身份证号：632102********0019。" in testbot.text and "住在哪里" in testbot.text
    await testbot.say("住湟中鲁沙尔镇和平村 电话13909711234")
    assert "住址：湟中鲁沙尔镇和平村\n" in testbot.text and "电话：13909711234" in testbot.text


async def test_asking_to_certify_for_a_parent_begins_the_family_flow(testbot: TestBot) -> None:
    await testbot.say("我想帮我父亲认证")
    assert "身份证号码" in testbot.text and (await frame_of(testbot))[0] == "family"


async def test_the_office_opening_hours_are_not_this_chats_staff_hours(testbot: TestBot) -> None:
    for said in ("社保局几点上班", "人社局周六开门吗"):
        await testbot.say(said)
        assert "上班时间不完全一样" in testbot.text
    await testbot.say("人工几点上班")
    assert "人工服务时间" in testbot.text and "不完全一样" not in testbot.text
    await testbot.say("去银行办要多长时间")
    assert "不完全一样" not in testbot.text


async def test_a_relationship_word_alone_is_not_a_death(testbot: TestBot) -> None:
    await testbot.say("我替我老伴认证")
    await testbot.say("老伴")
    assert "节哀" not in testbot.text and (await frame_of(testbot)) == ("family", "ask_id")
    await testbot.say("钱能退吗")  # no death told in this chat: not the after-death answer
    assert "去世" not in testbot.text


async def test_an_app_that_says_not_the_same_person_gets_that_fix_not_its_guide(testbot: TestBot) -> None:
    for said in ("我是青海人社通上认证老是说我不是本人怎么回事", "刷脸老是说我不是本人"):
        await testbot.say(said)
        assert "更新照片" in testbot.text and await frame_of(testbot) == ("cert_failed", "fix_not_matched")
    await testbot.say("教我用青海人社通")  # inside the fix: the app's short answer, then the fix again
    assert "养老待遇资格认证" in testbot.text and "我们接着刚才的步骤" in testbot.text


async def test_going_to_fetch_the_id_card_keeps_the_question_open(testbot: TestBot) -> None:
    await testbot.say("帮我妈认证")
    await testbot.say("稍等 我找一下她的身份证")
    assert "不着急" in testbot.text and "户口本" not in testbot.text
    assert await frame_of(testbot) == ("family", "ask_id")


async def test_certified_this_year_without_a_month_is_not_given_a_due_month(testbot: TestBot) -> None:
    await testbot.say("我今年已经认证过了还要再认证吗")
    assert "明年同一个月" in testbot.text and "2027年" not in testbot.text


async def test_what_happens_without_certifying_is_the_paused_pension(testbot: TestBot) -> None:
    for said in ("没认证会怎么样", "不认证的话会停发吗"):
        await testbot.say(said)
        assert "暂停发放" in testbot.text


async def test_being_fed_up_is_answered_kindly_not_thanked(testbot: TestBot) -> None:
    await testbot.say("你们这个太麻烦了")
    assert "添麻烦" in testbot.text and "不客气" not in testbot.text
    await testbot.say("麻烦你帮我查一下认证状态")
    assert "身份证号" in testbot.text and "添麻烦" not in testbot.text


async def test_someone_else_who_cannot_read_is_not_the_writer(testbot: TestBot) -> None:
    assert read("我不识字 怎么认证").reading_trouble
    for text in ("她不识字 我帮她弄", "我妈看不懂汉字", "老人不认字"):
        assert not read(text).reading_trouble, text
    await testbot.say("我妈今年的认证还没做 她不识字 我帮她弄")  # the writer helps: the family flow
    assert "汉字看不太懂也能办好" not in testbot.text and "您是老人的子女" in testbot.text


async def test_a_changed_phone_number_is_not_a_broken_app(testbot: TestBot) -> None:
    for said in ("手机号换了 人社通登不上", "我换了新号码 怎么登录12333"):
        await testbot.say(said)
        assert "换绑新号" in testbot.text and "重新下载" not in testbot.text, said
    await testbot.say("我的手机号是13897201234")  # giving a number is not changing it
    assert "换绑新号" not in testbot.text


async def test_a_question_said_with_a_sigh_is_answered(testbot: TestBot) -> None:
    await testbot.say("我是退休职工 每年都要认证吗 太麻烦了")
    assert "12个月" in testbot.text and "添麻烦" not in testbot.text


async def test_whether_it_went_through_and_whether_a_message_comes(testbot: TestBot) -> None:
    for said in ("认证成功了没有短信通知吗", "我上午在人社通上认证了 显示提交成功 算认证了吗", "刷完了 上面写着审核中"):
        await testbot.say(said)
        assert "审核" in testbot.text and "认证成功" in testbot.text, said
        assert "身份证号" not in testbot.text and "申诉" not in testbot.text, said


async def test_a_login_code_that_never_comes_gets_help_and_a_code_asked_for_gets_the_warning(
        testbot: TestBot) -> None:
    await testbot.say("登录人社通收不到验证码怎么办")
    assert "重新获取" in testbot.text and "防骗提醒" not in testbot.text
    await testbot.say("有人说帮我认证 让我把收到的验证码告诉他")
    assert "防骗提醒" in testbot.text


async def test_not_knowing_the_answer_is_not_a_no_and_not_a_knowledge_entry(testbot: TestBot) -> None:
    await testbot.say("怎么认证")
    await testbot.say("1")
    await testbot.say("不知道")
    assert "这个问题是问" in testbot.text and "户口本" not in testbot.text
    assert await frame_of(testbot) == ("choose_method", "q_abroad")
    await testbot.say("不在")
    await testbot.say("不清楚")
    assert await frame_of(testbot) == ("choose_method", "q_phone")


async def test_not_knowing_at_an_id_question_says_where_the_number_is(testbot: TestBot) -> None:
    await testbot.say("帮我妈认证")
    await testbot.say("我不清楚")
    assert "正面最下面那一行" in testbot.text and "光线" not in testbot.text
    assert "回复它前面的数字" not in testbot.text  # 回主菜单 is a way out, not an answer
    assert await frame_of(testbot) == ("family", "ask_id")
    await testbot.say("我要认证")
    await testbot.say("在这里刷脸认证")
    await testbot.say("不知道")
    assert "正面最下面那一行" in testbot.text and "光线" not in testbot.text
    assert await frame_of(testbot) == ("certify", "start")


async def test_not_knowing_at_a_question_without_a_simpler_wording_shows_its_answers(
        testbot: TestBot) -> None:
    await testbot.say("我要认证")
    await testbot.say("我不清楚")
    assert "不清楚也不要紧" in testbot.text and "回复它前面的数字" in testbot.text
    assert "光线" not in testbot.text
    assert await frame_of(testbot) == ("choose_method", "intro")


async def test_saying_the_relationship_again_at_the_id_question_is_noted_once(testbot: TestBot) -> None:
    await testbot.say("帮家里老人认证")
    await testbot.say("我是他老伴")
    await testbot.say("老伴")
    assert "配偶" in testbot.text
    assert testbot.text.count("身份证号码") == 1, testbot.text
    assert await frame_of(testbot) == ("family", "ask_id")


@pytest.mark.parametrize("said", ["养老金什么时候发", "退休金每个月几号到账啊", "今年养老金涨了多少"])
async def test_pay_day_and_amount_are_for_the_office_not_out_of_scope(testbot: TestBot, said: str) -> None:
    await testbot.say(said)
    assert "12333" in testbot.text and "帮不上忙" not in testbot.text


async def test_pay_after_a_late_certification_stays_the_backpay_answer(testbot: TestBot) -> None:
    await testbot.say("补认证以后养老金什么时候发")
    assert "恢复发放" in testbot.text and "每月哪天到账" not in testbot.text


@pytest.mark.parametrize("said", ["我要投诉", "你们服务态度太差了"])
async def test_a_complaint_gets_an_apology_and_a_person_not_the_appeal(testbot: TestBot, said: str) -> None:
    await testbot.say(said)
    assert "抱歉" in testbot.text and "转人工" in testbot.options and "申诉" not in testbot.text


@pytest.mark.parametrize(("said", "state"), [("我刷脸一直提示请眨眼 眨了也不行", "fix_not_frontal"),
                                             ("人社通老是提示登录失败", "fix_app_wont_open")])
async def test_a_failure_told_in_passing_goes_to_its_fix(testbot: TestBot, said: str, state: str) -> None:
    await testbot.say(said)
    assert await frame_of(testbot) == ("cert_failed", state)


async def test_having_just_certified_in_an_app_is_done_not_a_date_twelve_months_on(testbot: TestBot) -> None:
    await testbot.say("认证成功了吗 我刚刚在人社通上刷完")
    assert "认证成功" in testbot.text and "您说上次认证是刚刚" not in testbot.text


async def test_a_situation_told_without_asking_for_a_visit_chooses_a_method(testbot: TestBot) -> None:
    await testbot.say("腿脚不好，出不了门，手机也不会用，你看怎么弄")
    assert await frame_of(testbot) == ("choose_method", "q_abroad")  # not the visit form yet
    await testbot.say("不在")
    assert await frame_of(testbot) == ("choose_method", "q_family")  # someone to help decides
    await testbot.say("有人能帮忙")
    assert await frame_of(testbot) == ("choose_method", "rec_family")


async def test_a_later_questions_answer_is_kept_and_the_question_asked_again(testbot: TestBot) -> None:
    await testbot.say("怎么认证")
    await testbot.say("1")
    await testbot.say("有人能帮忙")
    assert "您说家里有人能帮忙" in testbot.text and "重新帮您挑" not in testbot.text
    assert await frame_of(testbot) == ("choose_method", "q_abroad")
    await testbot.say("不在")
    await testbot.say("不会")
    assert await frame_of(testbot) == ("choose_method", "rec_family")  # not asked again


async def test_not_knowing_the_id_number_is_told_where_it_is_written(testbot: TestBot) -> None:
    await testbot.say("查认证状态")
    await testbot.say("我不知道身份证号")
    assert "户口本" in testbot.text and "需要18位" not in testbot.text
    assert await frame_of(testbot) == ("status_query", "ask_id")  # the question stays open


async def test_one_part_of_the_address_is_corrected(testbot: TestBot, demo: Any) -> None:
    for said in ("申请上门认证", "李德明", LI, "西宁市城东区八一路12号", "13897201234", "卧床"):
        await testbot.say(said)
    assert await frame_of(testbot) == ("home_visit", "confirm")
    await testbot.say("地址写错了 是城西区")
    assert "住址：西宁市城西区八一路12号" in testbot.text


@pytest.mark.parametrize(("said", "words"), [
    ("在公众号里就能认证吗", ("就在这里", "现拍的正脸照片")),
    ("我刚退休 今年用不用认证", ("每12个月", "12333")),
    ("我妈糊涂了 不会按提示眨眼 咋认证", ("上门认证", "诊断证明")),
    ("老人痴呆了 刷脸不配合怎么办", ("上门认证", "诊断证明")),
])
async def test_questions_beside_the_methods_get_their_answer(testbot: TestBot, said: str,
                                                             words: tuple[str, ...]) -> None:
    await testbot.say(said)
    assert all(word in testbot.text for word in words), testbot.text
    assert "没太明白" not in testbot.text


async def test_a_face_action_that_keeps_failing_goes_to_its_fix(testbot: TestBot) -> None:
    await testbot.say("我眨眼了还是不行")
    assert await frame_of(testbot) == ("cert_failed", "fix_not_frontal")


async def test_a_message_of_emoji_is_read_as_its_words(testbot: TestBot) -> None:
    assert emoji_as_words("[强][强]") == "好的" and emoji_as_words("🙏") == "谢谢"
    assert emoji_as_words("好的👍") is None and emoji_as_words("[微笑] 你好") is None
    await testbot.say("[抱拳]")  # WeChat's own emoji arrive as text codes
    assert "不客气" in testbot.text and "没太明白" not in testbot.text
    await testbot.say("👍")
    assert "没太明白" not in testbot.text


async def test_asking_for_an_appeal_starts_it_and_asking_about_one_is_answered(testbot: TestBot) -> None:
    await testbot.say("刷了好几次都说不是本人 我要人工审核")
    assert "申请人工审核" in testbot.text and await mode_of(testbot) == "waiting"
    async with testbot.services.db.session() as session:
        case = (await session.scalars(select(Case))).one()
    assert case.reason == "appeal"
    other = TestBot(testbot.services)
    await other.say("怎么申诉")  # a question about it: the answer, and the choice stays theirs
    assert await mode_of(other) == "bot" and "转人工" in other.options
    await other.say("人工审核要多久")
    assert "上班时间" in other.text and await mode_of(other) == "bot"


async def test_start_is_a_welcome_in_a_new_chat_and_a_restart_later(testbot: TestBot) -> None:
    await testbot.say("/start")
    assert "您好" in testbot.text and "从头开始" not in testbot.text
    await testbot.say("怎么认证")
    await testbot.say("/start")
    assert "从头开始" in testbot.text


async def test_a_home_visit_name_that_does_not_match_is_said_at_once(testbot: TestBot, demo: Any) -> None:
    for said in ("申请上门认证", "王秀英", LI):  # LI is registered as 李德明
        await testbot.say(said)
    assert "对不上" in testbot.text and "姓名" in testbot.text and "住在哪里" not in testbot.text
    await testbot.say("李德明")
    assert "住在哪里" in testbot.text


async def test_asking_whether_it_went_through_is_not_saying_when(testbot: TestBot) -> None:
    assert entities.extract_last_certified("我妈刚刚刷脸成功了吗") is None
    assert entities.extract_last_certified("我刚刚在人社通上刷完了") is not None  # 刷完: done
    await testbot.say("我刚刚在人社通上刷完了")
    assert "您刚认证完" in testbot.text


async def test_a_face_that_changed_is_the_photo_on_record(testbot: TestBot) -> None:
    await testbot.say("我爸的脸总是识别不出来 他脸上有疤")
    assert await frame_of(testbot) == ("cert_failed", "fix_not_matched")


async def test_hold_on_at_the_end_of_a_message_keeps_the_question_open(testbot: TestBot) -> None:
    await testbot.say("帮家人认证")
    await testbot.say("子女")
    await testbot.say("老人身份证在我这 等一下")  # not a question about a lost ID card
    assert "不着急" in testbot.text and "补办" not in testbot.text
    assert await frame_of(testbot) == ("family", "ask_id")
