"""Protect and inform (issue 17): scam and fee warnings in every state, bereavement, the
questions next to the seed, one answer per fact, privacy. Through the fake-channel TestBot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.core import facts
from bot.core.facts import facts_for, office_hours_text
from bot.core.messages import Reply
from bot.core.storage.models import CaseMessage
from dialogs import certify, choose_method, missed_deadline
from faq.knowledge import KnowledgeBase
from nlu import training_data
from nlu.rules import normalise
from nlu.safety import match_bereavement, match_scam, scam_score

from .conftest import TestBot, make_settings

WARNING = "认证从来不收费"


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Any) -> Any:
    """Many messages a minute from one chat: the rate limit is not under test here."""
    return make_settings(tmp_path, clean_backends, **{"rate_limit.messages_per_minute": 10_000})

SCAM_PHRASES = [
    # fees by name
    "社区的人说认证要交50块钱手续费",
    "村里有人说交二百块代办费，他帮我把认证办了",
    "办认证还要先交保证金吗",
    "说是认证要交工本费和审核费",
    "他说刷脸认证一次收30元服务费",
    "做一次养老认证得花多少钱",
    "上门认证收费不收费",
    "这个认证到底免费不免费",
    # transfers and payments
    "有个男的打电话说替我办认证，叫我先转五百块",
    "电话里那个人叫我往一个账户汇款才能恢复养老金认证",
    "对方让我扫他的收款码付认证费",
    "有人说发个红包给他就能帮老人认证",
    # SMS links, bank cards, passwords, codes
    "有个短信让我点链接填银行卡号做养老金认证",
    "收到短信说养老金认证要点这个网址 http://rz-12333.top",
    "手机上来了一个链接说不点就停发养老金",
    "有人叫我把手机收到的验证码念给他听",
    "认证的时候要输入银行卡密码吗",
    "他要我把存折和身份证拍照发过去",
    "刚才有人问我要了短信验证码，说是社保的",
    "那个客服让我在网页上填银行卡和密码",
    # calls and door visits in the name of 社保/人社/社区
    "有人上门说是社保局的，要拍照认证还要看我的存折和密码",
    "自称人社局的打电话让我下载一个软件开共享屏幕",
    "有人打电话说我的养老金资格认证过期了要冻结",
    "冒充社区工作人员的人来家里说帮忙认证",
    "接到一个电话说是社保中心的，让我配合开通远程认证",
    # WeChat groups and strangers
    "微信群里有人说交200元可以代办认证",
    "群里发了个二维码说扫码就能领认证补贴",
    "有个陌生人加我微信说帮我做认证",
    "朋友圈里说认证要交保证金，是真的吗",
    # after the fact
    "我是不是遇到骗子了，他说能帮我认证",
    "我已经转了钱给那个说是社保的人，怎么办",
    "被骗了三千块钱，说是养老金认证",
]

ORDINARY_MONEY = [
    "养老金每月几号发",
    "今年涨了多少",
    "养老金什么时候到账",
    "退休工资每个月几号到账",
    "养老金今年涨多少",
    "我的养老金有多少钱",
    "养老金调整标准是多少",
    "养老金发到哪张银行卡上",
    "社保交了15年能领多少",
    "停发的钱能补发吗",
    "认证通过了为什么养老金还没到账",
    "支付宝怎么认证",
    "社保卡号不对怎么办",
    "社区的人上门帮我认证",
]


def test_the_rule_fires_on_every_scam_phrasing_and_never_on_money_questions() -> None:
    assert len(SCAM_PHRASES) >= 30
    assert [p for p in SCAM_PHRASES if match_scam(p) is None] == []
    assert [(p, scam_score(p)) for p in ORDINARY_MONEY if match_scam(p)] == []
    for text in ["630102195403121236", "张桂兰", "13909712345", "1", "返回", "我要刷脸认证", "上门认证要带什么"]:
        assert match_scam(text) is None, text


@pytest.mark.parametrize("text", [
    "办这个要收钱不", "你们收费吗", "有个人说能帮我加急认证，要给他点钱", "他让我把卡里的钱转到安全账户",
    "有人让我告诉他手机上收到的数字", "打电话的人知道我的身份证号，让我交钱", "有人发了个网站让我登录认证",
    "帮忙认证要给好处吗", "社保局的人打电话说我多领了养老金要退回", "认证每个月要交钱吗", "电话说我社保卡被冻结了",
])
def test_more_scam_phrasings(text: str) -> None:
    assert match_scam(text) is not None


@pytest.mark.parametrize("text", [
    "一个月能领多少钱", "补发多少钱", "今年涨了多少钱", "认证后每个月能领多少钱", "认证通过后补发多少钱",
    "停发的钱能补给我吗", "国家社会保险公共服务平台网站怎么登录", "他们说要带户口本", "社保局电话是多少",
    "认证要带钱吗", "养老金打到哪张卡",
])
def test_more_ordinary_questions(text: str) -> None:
    assert match_scam(text) is None, scam_score(text)


def test_scam_phrasings_are_new_sentences_not_training_examples() -> None:
    """The dialog-state tests below must exercise the rule, not recall of training data."""
    seen = {normalise(e.text) for name in ("nlu.yml", "test.yml")
            for e in training_data.load(training_data.DATA_DIR / name).examples}
    assert [p for p in SCAM_PHRASES if normalise(p) in seen] == []


def _warned_first(replies: list[Reply]) -> bool:
    return bool(replies) and WARNING in replies[0].text and "110" in "".join(r.text for r in replies[:2])


Setup = Callable[[TestBot], Awaitable[list[Reply]]]


async def _main_menu(bot: TestBot) -> list[Reply]:
    return await bot.say("主菜单")


async def _certify_id(bot: TestBot) -> list[Reply]:
    return await bot.say("现在就认证")


async def _choose_method(bot: TestBot) -> list[Reply]:
    await bot.say("哪种认证方式适合我")
    return await bot.say("帮我选方法")


async def _offline(bot: TestBot) -> list[Reply]:
    return await bot.say("去社保局认证")


async def _app_walkthrough(bot: TestBot) -> list[Reply]:
    return await bot.say("青海人社通咋下载")


async def _missed(bot: TestBot) -> list[Reply]:
    return await bot.say("错过认证时间了")


STATES: dict[str, Setup] = {
    "main_menu": _main_menu,
    "certify_form": _certify_id,
    "choose_method": _choose_method,
    "offline": _offline,
    "app_qinghai": _app_walkthrough,
    "missed_deadline": _missed,
}


@pytest.mark.parametrize("state", sorted(STATES))
async def test_scam_warning_first_then_the_same_question_again(testbot: TestBot, state: str) -> None:
    setup = await STATES[state](testbot)
    asked = setup[-1]
    assert asked.options, state
    conv = await testbot.conversation()
    position = (conv.frame.dialog, conv.frame.state) if conv.frame else None
    for phrase in SCAM_PHRASES:
        replies = await testbot.say(phrase)
        assert _warned_first(replies), (state, phrase, testbot.text)
        assert replies[-1].options == asked.options, (state, phrase, testbot.text)
        if state != "main_menu":
            assert replies[-1].text == asked.text, (state, phrase)
            assert "我们接着刚才的步骤" in testbot.text
        conv = await testbot.conversation()
        assert ((conv.frame.dialog, conv.frame.state) if conv.frame else None) == position, (state, phrase)
        assert conv.misunderstood == 0
    # The flow really goes on: the first option is still taken.
    replies = await testbot.say("1")
    assert WARNING not in testbot.text
    assert replies and replies[-1].text != asked.text


async def test_scam_warning_while_waiting_for_a_person(testbot: TestBot) -> None:
    await testbot.say("转人工")
    conv = await testbot.conversation()
    assert conv.mode == "waiting"
    for phrase in SCAM_PHRASES:
        replies = await testbot.say(phrase)
        assert _warned_first(replies), phrase
        # then the waiting acknowledgement (the full queue text at most every few minutes)
        assert "您已在排队" in replies[-1].text or "已经记下了" in replies[-1].text, phrase
    conv = await testbot.conversation()
    assert conv.mode == "waiting"
    # The staff still get every message of the chat.
    async with testbot.services.db.session() as session:
        texts = list(await session.scalars(select(CaseMessage.text).where(CaseMessage.case_id == conv.case_id)))
    assert [p for p in SCAM_PHRASES if p not in texts] == []


async def test_scam_warning_while_a_person_handles_the_chat_and_after(testbot: TestBot) -> None:
    await testbot.say("转人工")
    store = testbot.services.conversations
    conv = await store.load(testbot.key)
    conv.mode = "human"  # a staff member claimed the case
    await store.save(conv)
    replies = await testbot.say(SCAM_PHRASES[3])
    # The warning, then at most the short acknowledgement that a person has the message.
    assert _warned_first(replies) and (len(replies) == 2 or "工作人员" in replies[-1].text)
    conv = await store.load(testbot.key)
    assert conv.mode == "human"
    async with testbot.services.db.session() as session:
        texts = list(await session.scalars(select(CaseMessage.text).where(CaseMessage.case_id == conv.case_id)))
    assert SCAM_PHRASES[3] in texts
    conv.mode = "closed"  # the person finished; the next message is the bot's again
    await store.save(conv)
    replies = await testbot.say(SCAM_PHRASES[4])
    assert _warned_first(replies) and replies[-1].options
    assert (await store.load(testbot.key)).mode == "bot"


@pytest.mark.parametrize("state", ["main_menu", "certify_form", "offline"])
async def test_ordinary_money_questions_get_no_warning(testbot: TestBot, state: str) -> None:
    await STATES[state](testbot)
    for question in ORDINARY_MONEY:
        await testbot.say(question)
        assert "防骗" not in testbot.text and WARNING not in testbot.text, (state, question, testbot.text)
        await STATES[state](testbot)


async def test_the_issue_examples(testbot: TestBot) -> None:
    for text in ["认证一次要钱吗", "有人打电话说帮我认证要我转钱", "有个短信让我点链接填银行卡号做养老金认证",
                 "社区的人说认证要交50块钱手续费", "有人上门说是社保局的，要拍照认证还要看我的存折和密码"]:
        replies = await testbot.say(text)
        assert _warned_first(replies), text
        assert "96110" in testbot.text and "12333" in testbot.text
        assert (await testbot.conversation()).mode == "bot"  # never queued for a person


# ---------------------------------------------------------------- neighbouring questions

# entry -> (words every answer must contain, three paraphrases in words of our own)
PARAPHRASES: dict[str, tuple[tuple[str, ...], tuple[str, str, str]]] = {
    "privacy": (("删除", "密码"), ("给你发自拍，照片会不会被人拿走", "你们把人脸照片存起来给谁看",
                                   "刷脸认证会不会泄露我的隐私")),
    "lost_card": (("身份证", "挂失"), ("我的社保卡弄没了还能做认证不", "社保卡找不见了，养老金认证咋办",
                                     "社保卡丢失了能不能刷脸认证")),
    "cert_cycle": (("12个月", "上次认证"), ("今年的认证最晚要在哪天前做完", "前两个月刚认证过，现在还要再认证吗",
                                         "认证是不是有个截止的日子")),
    "proxy_presence": (("本人", "镜头前"), ("我替老人办认证，老人得在跟前吗", "拿我妈的照片给手机拍一下能通过不",
                                          "代别人认证时本人必须在场吗")),
    "backpay_timing": (("补发", "12333"), ("认证已经通过了，养老金咋还没打过来", "补完认证多久能重新发钱",
                                        "重新认证后停掉的钱几天能到")),
    "pensioner_died": (("节哀", "丧葬补助金", "抚恤金"), ("我父亲前年过世了，他的养老金要怎么处理",
                                                     "老人已经去世了，家里人要去社保办什么",
                                                     "我家老太太上个月病故了")),
    "abroad_help": (("中国领事", "北京时间"), ("我住在澳大利亚，可以去中国大使馆办认证吗",
                                             "用中国领事软件刷脸老提示失败怎么办",
                                             "我人在海外，给你这边发照片能算认证吗")),
    "office_hours": (("北京时间", "周一至周五"), ("你们人工客服几点钟上班", "我这边是悉尼时间，什么时候能找到工作人员",
                                               "工作人员星期几有人在")),
    "other_province": (("掌上12333", "青海人社通", "国家社会保险公共服务平台"),
                       ("我跟儿子住在西安，青海的养老金怎么认证", "人不在青海省，能在外地认证吗",
                        "在外省住着还用回青海年审吗")),
    "precautions": (("老花镜", "慢慢"), ("我戴着老花镜能刷脸吗", "认证的时候眼镜和帽子要拿掉吗",
                                       "刷脸提示的动作我老做不好")),
    "how_long": (("几分钟",), ("刷个脸认证大概要弄多久", "认证要花多长时间才能弄完", "认证几分钟能做好")),
}


@pytest.mark.parametrize("entry_id", sorted(PARAPHRASES))
async def test_every_new_entry_answers_three_paraphrases(testbot: TestBot, entry_id: str) -> None:
    words, questions = PARAPHRASES[entry_id]
    kb = testbot.services.faq
    assert entry_id in kb.by_id
    assert all(word in "".join(kb.by_id[entry_id].answer) for word in words), entry_id
    for question in questions:
        await testbot.say("主菜单")  # at the menu, whose option words must not win
        replies = await testbot.say(question)
        shown = testbot.text
        assert all(word in shown for word in words), (entry_id, question, shown)
        assert replies[-1].options, question


NEIGHBOURS = [  # the issue's examples: (question, words of the right answer)
    ("社保卡丢了还能认证吗", ("身份证",)),
    ("人脸识别安全吗", ("删除", "密码")),
    ("会不会把我的照片泄露出去", ("删除",)),
    ("认证截止到几号", ("12个月",)),
    ("今年已经认证过了还要再认证吗", ("12个月",)),
    ("我戴着老花镜能刷脸吗", ("老花镜",)),
    ("认证通过了为什么养老金还没到账", ("补发",)),
    ("代认证需要老人在旁边吗", ("本人",)),
    ("能不能去大使馆办", ("中国领事", "使领馆")),
    ("中国领事app刷脸一直失败", ("实名认证",)),
    ("我人在国外 能在这里刷脸吗", ("中国领事",)),
    ("人工几点能找到人", ("北京时间",)),
    ("现在补了钱啥时候能到", ("补发", "12333")),
    ("补认证以后几天能恢复", ("补发", "12333")),
]


@pytest.mark.parametrize(("question", "words"), NEIGHBOURS)
async def test_the_issue_neighbour_questions_at_the_menu_and_in_a_new_chat(
        testbot: TestBot, question: str, words: tuple[str, ...]) -> None:
    replies = await testbot.say(question)
    assert all(word in testbot.text for word in words), (question, testbot.text)
    assert (await testbot.conversation()).mode == "bot"
    await testbot.say("主菜单")
    replies = await testbot.say(question)
    assert all(word in testbot.text for word in words), (question, testbot.text)
    assert replies[-1].options


async def test_a_death_gets_condolences_and_no_certification_prompt(testbot: TestBot) -> None:
    setups: list[Setup] = [_main_menu, _certify_id, _offline, _missed]
    for setup in setups:
        await setup(testbot)
        replies = await testbot.say("我老伴去年去世了，他的养老金怎么办")
        assert "节哀" in replies[0].text, testbot.text
        assert "丧葬补助金" in testbot.text and "抚恤金" in testbot.text and "停发" in testbot.text
        assert "身份证号码" not in testbot.text and "刷脸" not in testbot.text
        assert "转人工" in replies[-1].options
        conv = await testbot.conversation()
        assert conv.stack == [] and conv.mode == "bot"
    await testbot.say("1")  # the offered person
    assert (await testbot.conversation()).mode == "waiting"


def test_death_rule() -> None:
    for text in ["我爸上个月走了", "老人不在了养老金咋办", "我妈病逝了", "我老伴去年去世了，他的养老金怎么办"]:
        assert match_bereavement(text) is not None, text
    for text in ["认证是为了防止去世的人冒领吗", "我妈走了一趟社保局", "老人不在家能认证吗", "我妈走路不方便"]:
        assert match_bereavement(text) is None, text


# ---------------------------------------------------------------- one answer per fact


def test_one_answer_per_fact_in_flows_and_as_questions() -> None:
    kb = KnowledgeBase()
    assert kb.by_id["fail_no_model"].answer[0] == facts.NO_MODEL
    assert facts.NO_MODEL in certify.NOT_ENROLLED
    from dialogs.cert_failed import BY_KEY

    assert BY_KEY["no_model"].fix == facts.NO_MODEL
    assert facts.BACKPAY in missed_deadline.WHAT_TEXT and facts.BACKPAY in missed_deadline.BACKPAY_TEXT
    assert facts.BACKPAY_WHEN in missed_deadline.BACKPAY_TEXT
    assert facts.BACKPAY in "".join(kb.by_id["missed_deadline"].answer)
    assert facts.BACKPAY in "".join(kb.by_id["backpay_timing"].answer)
    assert facts.WHERE_OFFLINE in "".join(kb.by_id["method_offline"].answer)
    rec = choose_method.choose_method.states["rec_offline"].prompt
    assert isinstance(rec, str) and facts.WHERE_OFFLINE in rec
    old_wordings = ["一般会一起补发", "一般也会补给您", "社区（村）服务点"]
    texts = [missed_deadline.WHAT_TEXT, missed_deadline.BACKPAY_TEXT, certify.NOT_ENROLLED,
             *(part for entry in kb.entries for part in entry.answer)]
    assert [w for w in old_wordings if any(w in t for t in texts)] == []


async def test_no_model_is_the_same_inside_the_flow_and_as_a_question(testbot: TestBot) -> None:
    await testbot.say("认证失败了")
    await testbot.say("提示未建模")
    in_flow = testbot.text
    await testbot.say("主菜单")
    await testbot.say("未建模是什么意思")
    as_question = testbot.text
    assert facts.NO_MODEL in in_flow and facts.NO_MODEL in as_question


async def test_back_pay_is_the_same_inside_the_flow_and_as_a_question(testbot: TestBot) -> None:
    await testbot.say("错过认证时间了")
    await testbot.say("停发的钱能补吗")
    in_flow = testbot.text
    await testbot.say("主菜单")
    await testbot.say("现在补了钱啥时候能到")
    as_question = testbot.text
    for fact in (facts.BACKPAY, facts.BACKPAY_WHEN):
        assert fact in in_flow and fact in as_question


async def test_office_hours_are_given_in_beijing_time(testbot: TestBot) -> None:
    assert office_hours_text("Mon-Fri 09:00-17:30", "Asia/Shanghai") == "北京时间周一至周五 09:00-17:30"
    assert "北京时间" in testbot.services.handoff.office_hours_text()
    assert "Australia/Sydney" in office_hours_text("Mon-Sat 08:00-12:00", "Australia/Sydney")


async def test_office_hours_follow_the_configuration(tmp_path: Path, clean_backends: Any) -> None:
    settings = make_settings(tmp_path, clean_backends, **{"staff.office_hours": "Mon-Sat 08:30-12:00",
                                                          "face.photo_retention_days": 7})
    kb = KnowledgeBase(facts=facts_for(settings))
    assert "周一至周六 08:30-12:00" in kb.by_id["office_hours"].answer[0]
    assert "7天" in kb.by_id["privacy"].answer[0]
    settings = make_settings(tmp_path, clean_backends, **{"face.photo_retention_days": 0})
    assert "不保存" in KnowledgeBase(facts=facts_for(settings)).by_id["privacy"].answer[0]


async def test_privacy_in_plain_words(testbot: TestBot) -> None:
    await testbot.say("人脸识别安全吗")
    text = testbot.text
    days = testbot.services.settings.face.photo_retention_days
    assert f"{days}天" in text and "删除" in text
    assert "工作人员" in text and "密码" in text and "银行卡" in text


@pytest.mark.parametrize("text", ["登录的时候验证码一直收不到", "短信验证码没来 登不上去", "青海人社通的密码忘了咋办"])
def test_trouble_with_ones_own_login_code_is_not_a_scam(text: str) -> None:
    assert match_scam(text) is None, scam_score(text)


@pytest.mark.parametrize("text", ["收不到验证码 有人说让我把别的号码告诉他", "对方要我的验证码 说我输错了",
                                  "银行卡密码忘了 有个客服说帮我找回"])
def test_a_code_asked_for_by_someone_is_still_a_scam(text: str) -> None:
    assert match_scam(text) is not None


async def test_login_code_trouble_in_a_walkthrough_gets_the_tip(testbot: TestBot) -> None:
    await testbot.say("教我用青海人社通认证")
    await testbot.say("安卓")
    await testbot.say("下载好了")
    await testbot.say("验证码老是收不到 进不去")
    assert "防骗" not in testbot.text and "验证码" in testbot.text
    assert (await testbot.conversation()).frame.dialog == "app_qinghai"


async def test_a_fee_question_next_to_another_question_answers_both(testbot: TestBot) -> None:
    await testbot.say("刷脸认证收费吗 要带啥材料")
    assert "防骗" in testbot.text and "身份证" in testbot.text
    other = TestBot(testbot.services)
    await other.say("有人说交200块钱能帮我办 这是真的吗")
    assert "防骗" in other.text and "没太明白" not in other.text


@pytest.mark.parametrize("text", ["我的银行卡换了", "认证要不要银行卡", "认证需要绑定银行卡吗", "换了银行卡 认证有影响吗"])
def test_ones_own_bank_card_is_not_a_scam(text: str) -> None:
    assert match_scam(text) is None


@pytest.mark.parametrize("text", ["有人让我把银行卡号告诉他", "他说认证要绑定银行卡 把卡号发给他",
                                  "打电话的说要换新卡 让我把银行卡密码告诉他"])
def test_a_card_someone_asks_for_is_still_a_scam(text: str) -> None:
    assert match_scam(text) is not None


@pytest.mark.parametrize("text", ["我的银行卡换了 养老金打到哪张卡", "认证要不要银行卡", "换了银行卡 认证有影响吗"])
async def test_bank_card_questions_get_the_card_answer_not_condolences_or_a_warning(testbot: TestBot,
                                                                                   text: str) -> None:
    await testbot.say(text)
    assert "节哀" not in testbot.text and "防骗" not in testbot.text
    assert "不需要银行卡" in testbot.text


@pytest.mark.parametrize("text", ["社保局电话是多少 我想打电话问问", "我要给社保局打电话 号码多少"])
async def test_asking_for_the_office_phone_gets_the_number(testbot: TestBot, text: str) -> None:
    await testbot.say(text)
    assert "防骗" not in testbot.text and "12333" in testbot.text


@pytest.mark.parametrize("text", ["支付宝让我输入密码", "人社通登录要我输验证码", "软件提示设置密码"])
def test_the_official_app_asking_its_own_user_for_a_password_is_not_a_scam(text: str) -> None:
    assert match_scam(text) is None, scam_score(text)


@pytest.mark.parametrize("text", ["有人打电话让我在支付宝输入密码", "支付宝让我输入密码 他说输完告诉他",
                                  "点了短信里的链接 页面让我输入银行卡密码"])
def test_a_password_someone_else_wants_is_still_a_scam(text: str) -> None:
    assert match_scam(text) is not None


async def test_an_app_asking_for_a_password_gets_how_to_do_it_safely(testbot: TestBot) -> None:
    await testbot.say("支付宝让我输入密码")
    assert "只在软件里自己输" in testbot.text and "防骗提醒" not in testbot.text


@pytest.mark.parametrize("said", ["我没有身份证了 丢了", "老人的身份证找不到了怎么认证"])
async def test_a_lost_id_card_is_not_the_social_security_card(testbot: TestBot, said: str) -> None:
    await testbot.say(said)
    assert "派出所" in testbot.text and "户口簿" in testbot.text


async def test_a_lost_id_card_at_the_id_question_is_answered_and_the_question_asked_again(
        testbot: TestBot) -> None:
    await testbot.say("帮我妈认证")
    await testbot.say("她身份证丢了")
    assert "户口簿" in testbot.text and testbot.text.rstrip().endswith("身份证号码。")


@pytest.mark.parametrize("said", ["你们是不是骗子", "这个公众号是官方的吗", "你这个靠谱吗"])
async def test_doubting_this_chat_gets_why_it_is_safe_and_the_official_ways(testbot: TestBot, said: str) -> None:
    await testbot.say(said)
    assert "不收任何费用" in testbot.text and "12333" in testbot.text and "防骗提醒" not in testbot.text


def test_a_scam_that_calls_us_the_scammers_is_still_a_scam() -> None:
    assert match_scam("你们是不是骗子") is None
    assert match_scam("有人冒充社保局打电话 说你们是骗子 让我加他微信") is not None
    assert match_scam("你们是骗子吧 还要我交200块手续费") is not None


@pytest.mark.parametrize("said", ["我刚才把验证码告诉了一个说是社保局的人 怎么办",
                                  "我已经转了500块给那个说帮我认证的人", "钱已经转过去了 是不是被骗了"])
async def test_someone_already_caught_is_told_what_to_do_now_first(testbot: TestBot, said: str) -> None:
    await testbot.say(said)
    assert "防骗提醒" in testbot.replies[0].text  # the warning, then what to do now
    assert testbot.replies[1].text.startswith("先别慌") and "冻结" in testbot.text and "110" in testbot.text


async def test_only_the_caught_hear_what_to_do_now(testbot: TestBot) -> None:
    for said in ("有人让我交钱认证", "社保局打电话说我的卡要升级 让我去银行转账", "我刚才发了照片给你们"):
        await testbot.say(said)
        assert "先别慌" not in testbot.text, said


async def test_the_app_asking_for_its_code_in_a_walkthrough_is_no_scam(testbot: TestBot) -> None:
    for said in ("教我用青海人社通认证", "安卓", "下一步", "它让我输验证码"):
        await testbot.say(said)
    assert "防骗提醒" not in testbot.text and "验证码" in testbot.text
    await testbot.say("他让我输验证码")  # a person (他), not the app (它)
    assert "防骗提醒" in testbot.text
