"""The guided certification dialogs (issue 4), through the fake channel.

Each flow: a happy path, a changed mind, a cancel and a wrong input. Dialogs are started
the way a WeChat menu click does (``menu:<intent>``), so these tests do not depend on
the statistical NLU; one test per flow also starts it by a typed phrase.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.core.errors import DatabaseUnavailable
from bot.core.storage.models import HomeVisitRequest, Pensioner
from bot.records.pensioners import next_due_after
from nlu.entities import with_check_digit
from tests.conftest import TestBot

MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工", "བོད་ཡིག 藏文"]  # + the language option
# Test pensioners (own data, not the demo set).
ID_A = with_check_digit("63010219520101003")
ID_B = with_check_digit("63022319470612004")
ID_BAD = ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1")


async def frame_of(testbot: TestBot) -> tuple[str | None, str | None]:
    frame = (await testbot.conversation()).frame
    return (frame.dialog, frame.state) if frame else (None, None)


async def start(testbot: TestBot, intent: str) -> None:
    await testbot.say(event=f"menu:{intent}")


async def cancel(testbot: TestBot) -> None:
    await testbot.say("算了")
    assert "已经取消" in testbot.text
    assert testbot.options == MENU
    assert await frame_of(testbot) == ("main_menu", "choose")


# ---------------------------------------------------------------- 1. choose a method


async def test_choose_method_happy_path_leads_into_the_walkthrough(testbot: TestBot) -> None:
    await testbot.say("你好")
    await testbot.say("1")  # main menu 怎么认证
    assert "挑一个最合适的认证方法" in testbot.text
    await testbot.say("帮我选方法")
    assert "国外" in testbot.text and testbot.options[:2] == ["是，在国外", "不是，在国内"]
    await testbot.say("2")
    assert "智能手机" in testbot.text
    await testbot.say("我不会用")  # "不会用" beats "会用"
    assert "家里有没有人" in testbot.text
    await testbot.say("没有人帮忙")
    assert "出门" in testbot.text
    await testbot.say("能出门")
    assert "邮储银行" in testbot.text
    await testbot.say("1")
    assert await frame_of(testbot) == ("offline", "where")


async def test_choose_method_changed_mind_goes_back_a_question(testbot: TestBot) -> None:
    await start(testbot, "choose_method")
    await testbot.say("1")
    await testbot.say("不是")
    await testbot.say("会用")
    assert "您想用哪个" in testbot.text
    await testbot.say("上一个问题")  # option that goes back
    assert "会用智能手机" in testbot.text
    await testbot.say("返回")  # global command
    assert "国外" in testbot.text
    await testbot.say("是")
    assert "中国领事" in testbot.text
    await testbot.say("带我一步一步做")
    assert await frame_of(testbot) == ("app_consular", "download")
    assert "中国领事" in testbot.text and "第1步" in testbot.text


async def test_choose_method_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "how_to_certify")
    await testbot.say("1")
    await testbot.say("7")
    assert "没听明白" in testbot.text and "国外" in testbot.text
    assert testbot.options == ["是，在国外", "不是，在国内", "上一个问题"]
    await cancel(testbot)


async def test_bigdata_explains_how_to_tell_and_offers_the_status_query(testbot: TestBot) -> None:
    await start(testbot, "choose_method")
    await testbot.say("2")
    assert "大数据比对" in testbot.text and "12333" in testbot.text
    await testbot.say("查我的认证状态")
    assert await frame_of(testbot) == ("status_query", "ask_id")
    await start(testbot, "method_bigdata")
    assert await frame_of(testbot) == ("bigdata", "bigdata")
    await start(testbot, "method_community")
    assert "社区" in testbot.text and "上门" in testbot.text


async def test_certify_option_appears_only_when_that_dialog_exists(testbot: TestBot) -> None:
    from dialogs.engine import Dialog, State

    registry = testbot.services.dialogs
    registry.dialogs.pop("certify", None)  # as in a deployment without the selfie flow
    await start(testbot, "choose_method")
    assert "在这里刷脸认证" not in testbot.options
    registry.add(Dialog(name="certify", title="刷脸", start="s", states={"s": State("请发一张自拍。")}))
    await start(testbot, "choose_method")
    assert "在这里刷脸认证" in testbot.options
    await testbot.say("在这里刷脸认证")
    assert await frame_of(testbot) == ("certify", "s")


async def test_choose_method_started_by_a_typed_phrase(testbot: TestBot) -> None:
    await testbot.say("怎么认证")
    assert await frame_of(testbot) == ("choose_method", "intro")


# ---------------------------------------------------------------- 2. app walkthroughs


async def test_qinghai_app_walkthrough_step_by_step(testbot: TestBot) -> None:
    await start(testbot, "app_download")
    assert "哪种" in testbot.text
    await testbot.say("苹果")
    assert "App Store" in testbot.text and "第1步（共5步）" in testbot.text
    assert testbot.options == ["下一步", "上一步", "没看懂"]
    first = testbot.text
    await testbot.say("没看懂")  # said another way
    assert "换个说法" in testbot.text and testbot.text != first
    await testbot.say("下载好了")
    assert "第2步" in testbot.text and "验证码" in testbot.text
    await testbot.say("然后呢")
    assert "养老待遇资格认证" in testbot.text
    await testbot.say("1")
    assert "扫描身份证" in testbot.text
    await testbot.say("下一步")
    assert "开始认证" in testbot.text and testbot.options[:2] == ["做完了", "还是不行"]
    await testbot.say("做完了")
    assert "太好了" in testbot.text and testbot.options == MENU


async def test_walkthrough_changed_mind_back_and_failure(testbot: TestBot) -> None:
    await start(testbot, "app_download")
    await testbot.say("1")  # android
    assert "应用市场" in testbot.text
    await testbot.say("下一步")
    await testbot.say("上一步")  # global back
    assert "第1步" in testbot.text
    await testbot.say("2")  # the 上一步 option: back to the phone question
    assert "哪种" in testbot.text
    await testbot.say("不知道")
    assert "App Store" in testbot.text and "应用市场" in testbot.text
    for _ in range(4):
        await testbot.say("下一步")
    await testbot.say("还是不行")
    assert await frame_of(testbot) == ("cert_failed", "ask")


async def test_alipay_12333_and_consular_walkthroughs(testbot: TestBot) -> None:
    await start(testbot, "method_alipay")
    assert "城市服务" in testbot.text
    await testbot.say("下一步")
    assert "电子社保卡" in testbot.text
    for _ in range(3):
        await testbot.say("下一步")
    assert "密码" in testbot.text and "第5步（共5步）" in testbot.text
    await start(testbot, "method_face_app")
    assert testbot.options[:4] == ["青海人社通（推荐）", "掌上12333 或国家社保平台网站", "支付宝",
                                   "中国领事（住在国外）"]
    await testbot.say("2")
    assert "掌上12333" in testbot.text and "si.12333.gov.cn" in testbot.text
    await start(testbot, "method_abroad")
    assert "中国领事" in testbot.text


async def test_walkthrough_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "method_alipay")
    await testbot.say("9")
    assert "没听明白" in testbot.text and "城市服务" in testbot.text
    await cancel(testbot)


# ---------------------------------------------------------------- 3. offline


async def test_offline_happy_path_with_checklist_form_and_staff(testbot: TestBot) -> None:
    await start(testbot, "process_offline")
    assert "邮储银行" in testbot.text
    await testbot.say("1")
    await testbot.say("老人自己去")
    assert "身份证" in testbot.text and "社保卡" in testbot.text
    await testbot.say("要填什么表")
    assert "《养老保险认证申请表》" in testbot.text
    await testbot.say("工作人员会做什么")
    assert "核对" in testbot.text


async def test_offline_hukou_in_flow_and_changed_situation(testbot: TestBot) -> None:
    await start(testbot, "method_offline")
    await testbot.say("要不要带户口本")
    assert "户口本一般不用带" in testbot.text
    assert (await frame_of(testbot))[0] == "offline"
    await testbot.say("要带什么材料")
    await testbot.say("3")
    assert "代办人" in testbot.text
    await testbot.say("换一种情况")
    await testbot.say("生病")
    assert "身体状况证明" in testbot.text
    await testbot.say("返回")
    assert "是哪种情况" in testbot.text


async def test_offline_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "method_offline")
    await testbot.say("8")
    assert "没听明白" in testbot.text
    await cancel(testbot)


# ---------------------------------------------------------------- 4. home visit


async def _count_requests(testbot: TestBot) -> int:
    async with testbot.services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(HomeVisitRequest)) or 0)


async def test_home_visit_one_question_at_a_time(testbot: TestBot) -> None:
    await start(testbot, "method_home_visit")
    assert "姓名" in testbot.text and testbot.options == ["上一项", "不申请了"]
    await testbot.say("王秀英")
    assert "身份证号" in testbot.text
    await testbot.say(ID_BAD)
    assert "不对" in testbot.text and "身份证号" in testbot.text
    await testbot.say(ID_A)
    assert "住在哪里" in testbot.text
    await testbot.say("西宁市城中区南大街5号2单元301")
    await testbot.say("0971-1234567")
    assert "为什么出不了门" in testbot.text
    await testbot.say("卧床")
    assert "请核对" in testbot.text and "王秀英" in testbot.text
    assert ID_A not in testbot.text and ID_A[-4:] in testbot.text  # masked
    await testbot.say("1")
    assert "登记编号是 SM" in testbot.text and "打您留的电话" in testbot.text
    async with testbot.services.db.session() as session:
        stored = (await session.scalars(select(HomeVisitRequest))).one()
    assert (stored.pensioner_name, stored.id_number, stored.phone, stored.reason) == \
        ("王秀英", ID_A, "0971-1234567", "卧床")
    assert stored.reference in testbot.text and stored.channel == "test"


async def test_home_visit_everything_in_one_message_then_changed_mind(testbot: TestBot) -> None:
    await start(testbot, "method_home_visit")
    await testbot.say(f"老人叫马兰花，身份证{ID_B}，住在海东市平安区平安镇东村5号，"
                      "电话13897201234，因为腿脚不好下不了楼")
    assert "请核对" in testbot.text
    assert "马兰花" in testbot.text and "海东市平安区平安镇东村5号" in testbot.text
    assert "13897201234" in testbot.text and "腿脚不好" in testbot.text
    await testbot.say("要改一下")
    await testbot.say("电话")
    assert "电话" in testbot.text
    await testbot.say("13897209999")
    assert "13897209999" in testbot.text and "请核对" in testbot.text
    await testbot.say("返回")  # at the confirmation: which field to change
    assert "要改哪一项" in testbot.text
    await testbot.say("都对，不用改")
    await testbot.say("对，提交")
    async with testbot.services.db.session() as session:
        stored = (await session.scalars(select(HomeVisitRequest))).one()
    assert stored.phone == "13897209999" and stored.id_number == ID_B


async def test_home_visit_cancel_wrong_input_and_interruption(testbot: TestBot) -> None:
    await start(testbot, "method_home_visit")
    await testbot.say("张三丰")
    await testbot.say("12345")
    assert "18位" in testbot.text
    await testbot.say("上一项")  # back: the name is asked again
    assert "姓名" in testbot.text
    await testbot.say("张三")
    await testbot.say("要带户口本吗")  # a question, not an answer: answered, then resumed
    assert "接着刚才" in testbot.text and "身份证号" in testbot.text
    assert await frame_of(testbot) == ("home_visit", "form")
    await cancel(testbot)
    assert await _count_requests(testbot) == 0


async def test_home_visit_reuses_the_id_and_survives_a_database_outage(testbot: TestBot) -> None:
    services = testbot.services
    await start(testbot, "status_query")
    await testbot.say(ID_A)  # remembered for the whole chat
    await testbot.say("不查了")
    await start(testbot, "method_home_visit")
    assert "说过的就不再问了" in testbot.text and ID_A[-4:] in testbot.text
    await testbot.say("刘玉梅")
    assert "住在哪里" in testbot.text  # the ID number is not asked again
    await testbot.say("西宁市城北区朝阳街8号")
    await testbot.say("13909711234")
    await testbot.say("行动不便")

    class DownSession:
        async def __aenter__(self) -> None:
            raise DatabaseUnavailable("database: test outage")

        async def __aexit__(self, *args: object) -> None:
            return None

    real_session = services.db.session
    services.db.session = lambda: DownSession()  # type: ignore[method-assign]
    try:
        await testbot.say("1")
    finally:
        services.db.session = real_session  # type: ignore[method-assign]
    assert "稍后再试" in testbot.text and "不会丢" in testbot.text
    assert await _count_requests(testbot) == 0
    await testbot.say("再提交一次")
    assert "登记编号" in testbot.text
    async with services.db.session() as session:
        stored = (await session.scalars(select(HomeVisitRequest))).one()
    assert stored.id_number == ID_A and stored.pensioner_name == "刘玉梅"


# ---------------------------------------------------------------- 5. failure diagnosis


async def test_failure_diagnosis_free_text_fix_and_success(testbot: TestBot) -> None:
    await testbot.say("你好")
    await testbot.say("2")  # main menu 认证失败了
    assert "提示了什么" in testbot.text and len(testbot.options) == 10
    await testbot.say("它说光线不足，看不清")
    assert "窗户" in testbot.text and testbot.options[0] == "好了，成功了"
    await testbot.say("成功了")
    assert "认证成功" in testbot.text and testbot.options == MENU


async def test_failure_diagnosis_repeated_failure_offers_appeal(testbot: TestBot) -> None:
    await start(testbot, "cert_failed")
    await testbot.say("4")
    assert "未建模" in testbot.text
    await testbot.say("还是不行")
    assert "别的原因" in testbot.text
    await testbot.say("换了个地方，还是一直转圈")
    assert "网络" in testbot.text
    await testbot.say("2")
    assert "还是不行" in testbot.text and testbot.options[0] == "申请人工审核（申诉）"
    await testbot.say("申诉")
    assert "转接人工" in testbot.text
    conv = await testbot.conversation()
    assert conv.mode == "waiting" and conv.case_id


async def test_after_a_fix_free_words_lead_on(testbot: TestBot) -> None:
    await start(testbot, "cert_failed")
    await testbot.say("8")
    assert await frame_of(testbot) == ("cert_failed", "fix_not_matched")
    await testbot.say("光线挺亮的")  # what the fix advised is fine: not that, the next suggestion
    assert await frame_of(testbot) == ("cert_failed", "ask") and "别的原因" in testbot.text
    await testbot.say("还是不行")
    assert await frame_of(testbot) == ("cert_failed", "offer_help")
    await testbot.say("还是不行")  # no question: never a knowledge answer that merely looks alike
    assert "自动回复" not in testbot.text and testbot.options[0] == "申请人工审核（申诉）"


async def test_failure_intent_with_known_cause_jumps_to_the_fix(testbot: TestBot) -> None:
    await start(testbot, "fail_info_mismatch")
    assert await frame_of(testbot) == ("cert_failed", "fix_info_mismatch")
    assert "社保经办机构" in testbot.text
    await testbot.say("换一种情况")  # changed mind
    assert await frame_of(testbot) == ("cert_failed", "ask")
    await testbot.say("过期了")
    await testbot.say("1")
    assert await frame_of(testbot) == ("missed_deadline", "what")
    await testbot.say("提示未建模")  # typed phrase -> fail_no_model -> its fix
    assert await frame_of(testbot) == ("cert_failed", "fix_no_model")


async def test_failure_diagnosis_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "cert_failed")
    await testbot.say("嗯嗯啊啊")
    assert "没对上是哪种情况" in testbot.text and len(testbot.options) == 10
    await testbot.say("10")
    assert "转人工" in testbot.options
    await cancel(testbot)


# ---------------------------------------------------------------- 6. missed deadline


async def test_missed_deadline_happy_path(testbot: TestBot) -> None:
    await start(testbot, "missed_deadline")
    assert "暂停发放" in testbot.text and "不是取消" in testbot.text
    await testbot.say("现在怎么补认证")
    assert "恢复发放" in testbot.text
    await testbot.say("停发的钱能补吗")
    assert "补发" in testbot.text
    await testbot.say("该找谁")
    assert "12333" in testbot.text
    await testbot.say("转人工")
    assert "转接人工" in testbot.text


async def test_missed_deadline_changed_mind_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "missed_deadline")
    await testbot.say("1")
    await testbot.say("返回")
    assert "暂停发放" in testbot.text
    await testbot.say("1")
    await testbot.say("去社保局或银行")
    assert await frame_of(testbot) == ("offline", "where")
    await start(testbot, "missed_deadline")
    await testbot.say("9")
    assert "没听明白" in testbot.text and "暂停发放" in testbot.text
    await cancel(testbot)


# ---------------------------------------------------------------- 7. status query


async def _pensioner(testbot: TestBot, id_number: str, name: str, days_ago: int | None,
                     status: str = "active") -> None:
    async with testbot.services.db.session() as session:
        certified = datetime.now(UTC) - timedelta(days=days_ago) if days_ago is not None else None
        session.add(Pensioner(id_number=id_number, name=name, status=status, certified_at=certified,
                              next_due=next_due_after(certified) if certified else None))


async def test_status_query_happy_path(testbot: TestBot) -> None:
    await _pensioner(testbot, ID_A, "赵玉兰", 30)
    await start(testbot, "status_query")
    assert "身份证号" in testbot.text and testbot.options == ["不查了"]
    await testbot.say(f"我的身份证是 {ID_A}")
    assert "姓名" in testbot.text
    await testbot.say("赵玉兰")
    # The day is told in Beijing time (issue 16), whatever the server's clock zone.
    done = (datetime.now(UTC) - timedelta(days=30)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert f"{done.year}年{done.month}月{done.day}日 完成了认证" in testbot.text
    assert "下次请在" in testbot.text


async def test_status_query_overdue_and_never_certified(testbot: TestBot) -> None:
    await _pensioner(testbot, ID_A, "赵玉兰", 400)
    await _pensioner(testbot, ID_B, "钱国庆", None)
    await start(testbot, "status_query")
    await testbot.say(ID_A)
    await testbot.say("赵 玉 兰")
    assert "已经过期" in testbot.text and "过期了怎么办" in testbot.options
    await testbot.say("过期了怎么办")
    assert await frame_of(testbot) == ("missed_deadline", "what")
    await start(testbot, "status_query")
    assert "用您刚才给的身份证号" in testbot.text  # not asked again
    await testbot.say("换个身份证号")  # changed mind
    await testbot.say(ID_B)
    await testbot.say("钱国庆")
    assert "还没有这位老人的认证记录" in testbot.text


async def test_status_query_reveals_nothing_without_the_right_name(testbot: TestBot) -> None:
    await _pensioner(testbot, ID_A, "赵玉兰", 30)
    await start(testbot, "status_query")
    await testbot.say(ID_BAD)
    assert "不对" in testbot.text and await frame_of(testbot) == ("status_query", "ask_id")
    await testbot.say(ID_A)
    await testbot.say("李四")
    mismatch = testbot.replies[0].text
    assert "没有查到" in mismatch and "赵" not in testbot.text and "认证" in mismatch
    await testbot.say("王五")
    await testbot.say("赵玉兰")  # third wrong try would stop; this one is right but too late?
    assert "完成了认证" in testbot.text
    # Not found gets exactly the same answer as a wrong name.
    await start(testbot, "status_query")
    await testbot.say("换个身份证号")
    await testbot.say(ID_B)
    await testbot.say("李四")
    assert testbot.replies[0].text == mismatch


async def test_status_query_limits_wrong_names_and_lookups(testbot: TestBot) -> None:
    await _pensioner(testbot, ID_A, "赵玉兰", 30)
    await start(testbot, "status_query")
    await testbot.say(ID_A)
    for name in ("李四", "王五", "孙六"):
        await testbot.say(name)
    assert "这次先不查了" in testbot.text and "赵玉兰" not in testbot.text
    assert (await frame_of(testbot))[0] == "main_menu" or testbot.options == []
    limit = testbot.services.settings.rate_limit.id_lookups_per_hour
    for _ in range(limit):
        await start(testbot, "status_query")
        await testbot.say("李四")
    assert "查询次数太多" in testbot.text


async def test_status_query_cancel_and_wrong_input(testbot: TestBot) -> None:
    await start(testbot, "status_query")
    await testbot.say("我不知道")
    assert "18位" in testbot.text
    await cancel(testbot)
    await testbot.say("查询认证状态")  # typed phrase starts it
    assert await frame_of(testbot) == ("status_query", "ask_id")


# ---------------------------------------------------------------- everywhere


async def test_interrupting_question_is_answered_and_the_walkthrough_resumes(testbot: TestBot) -> None:
    await start(testbot, "method_alipay")
    await testbot.say("下一步")
    await testbot.say("要不要带户口本")  # a knowledge question in the middle of a step
    assert "户口" in testbot.text and "接着刚才的步骤" in testbot.text
    assert "第2步" in testbot.replies[-1].text and testbot.options == ["下一步", "上一步", "没看懂"]
    assert await frame_of(testbot) == ("app_alipay", "shebao")
    await testbot.say("下一步")
    assert "第3步" in testbot.text


async def test_global_commands_inside_a_flow(testbot: TestBot) -> None:
    await start(testbot, "missed_deadline")
    await testbot.say("主菜单")
    assert testbot.options == MENU
    await start(testbot, "cert_failed")
    await testbot.say("重新开始")
    assert testbot.options == MENU and await frame_of(testbot) == ("main_menu", "choose")
    await start(testbot, "status_query")
    await testbot.say("转人工")  # the exact command always reaches a person
    assert "转接人工" in testbot.text
    assert (await testbot.conversation()).mode == "waiting"
