"""Listening before routing: what the person already said changes what comes next.

Runs after the global commands and before the active dialog. It keeps the slots of the
current message (``memory["heard"]``, read by dialogs when they start or ask) and the
facts about the pensioner's situation (``memory["facts"]``), and decides the compound and
off-script cases: a request for a person next to a question, "不想弄了" inside a flow, a
money remark or trouble reading Chinese inside a flow (answered, then the flow resumes,
never read as yes or no), a greeting in front of a question, an ID number next to a
request or on its own, and a wrong check digit told as such. Also (issue 16, held-out
set): a person wanted next to an option word, a phone type said inside a walkthrough,
small print, a reminder request, a named app with "教我/怎么" (its walkthrough), a
home-visit request with its details, a situation plus "咋认证" (choosing a method), and
when they last certified (over 12 months: the missed-deadline flow; else confirmed with
the next due month, and the rest of the message read on its own). Also: an appeal asked
for is started; certifying a relative ("给我妈认证") is the family flow; a family member
asking how for a parent who cannot go out hears both ways (certify at home, or a visit).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Protocol

from bot.core import facts
from bot.core.i18n import BO, LANGUAGE_OPTIONS, Digits, tr
from bot.core.messages import Reply
from bot.core.pipeline import Turn
from dialogs.common import looks_like_question, masked
from dialogs.engine import (
    DialogContext,
    DialogEngine,
    EngineResult,
    chat_services,
    match_option,
    option_number,
)
from dialogs.family import for_a_relative
from dialogs.identity import CHECKED_IDENTITY
from faq.knowledge import FaqEntry
from nlu.reading import BEIJING, SITUATION, Reading, read
from nlu.rules import normalise


class Router(Protocol):
    """What listening asks of the router (handlers.router.Router provides it)."""

    engine: DialogEngine

    async def show_menu(self, turn: Turn, text: str) -> None: ...

    async def apply(self, turn: Turn, result: EngineResult) -> None: ...

    def at_final_state(self, turn: Turn, frame: object) -> bool: ...

    def retrieval_only(self, turn: Turn) -> FaqEntry | None: ...

    async def answer_intent(self, turn: Turn, intent: str, resume: bool = False) -> bool: ...

    async def escalate(self, turn: Turn, reason: str) -> None: ...

    async def misunderstood(self, turn: Turn, result: EngineResult | None) -> None: ...

# Asking for an appeal, not about one ("我要申诉", "申请人工审核"; "怎么申诉" is a question).
_WANTS_APPEAL = re.compile(r"(?:我要|我想|想要|要求|申请|帮我|给我|请)[^，,。？?]{0,4}(?:申诉|人工审核|复核|重新审核)")
# Tibetan cues are drafts, to be checked by a native speaker ("I don't understand", "I don't know").
_UNCLEAR = re.compile(r"没看懂|看不懂|听不懂|没听懂|不明白|没明白|说简单点|简单点说|啥意思|什么意思|说的啥|不懂|"
                      r"ཧ་མ་གོ|ཧ་གོ་གི་མི་འདུག|གོ་མ་སོང|གོ་གི་མི་འདུག|ཧ་མི་གོ")
# Not knowing the answer ("不知道", "不清楚"): the question said more simply, never a knowledge
# entry that happens to contain the words ("老人的身份证号我不知道").
_DONT_KNOW = re.compile(r"^(?:我|俺|这个|那)?(?:也)?(?:不知道|不清楚|不确定|不晓得|说不好|不好说|搞不清|记不清)"
                        r"(?:啊|呀|哦|呢|了|耶)?$|^(?:ང་)?(?:ཤེས་ཀྱི་མི་འདུག|མི་ཤེས|ཤེས་མ་སོང|ཤེས་རྒྱུ་མི་འདུག)[་།\s]*$")
_WHOM = re.compile(r"^(?:那|那我|我)?(?:该|应该|要|得|能)?(?:找谁|问谁|联系谁|找哪个|找哪里)(?:啊|呢|呀|问)?$")
ID_OPTIONS = [tr("查询认证状态"), tr("在这里刷脸认证"), tr("帮家人认证")]
_ID_ONLY = re.compile(r"^(?:我的|老人的|我妈的|我爸的|他的|她的)?(?:身份证号?码?|号码)?(?:是|为|：|:)?$")
_CERTIFY_WORDS = re.compile(r"认证|刷脸|办")
_STATUS_WORDS = re.compile(r"过没有|了没|没有认证|查|状态|记录|认证过|有没有")
_WHERE = re.compile(r"(?:去|到|在)(?:哪里|哪儿|哪个地方|哪|啥地方)(?:能|可以|去)?(?:办|认证)")
# "…阿么认证呢", "咋办认证": asking how, which with their situation is choosing a method.
_HOW_CERTIFY = re.compile(r"(?:怎么|咋|阿么|如何|怎样)(?:个|样)?(?:认证|办|弄|整|搞)")
_NOT_A_CHOICE = {"status_query", "family_certification", "certify_now", "method_home_visit", "human_handoff",
                 "cert_failed", "missed_deadline", "appeal", "scam_warning", "pensioner_died"}
_HOME_VISIT = re.compile(r"申请上门|上门认证|派人(?:来|上门|到家)|来家里认证|到家里认证")
_HERE = re.compile(r"在这(?:里|儿)?(?:认证|刷脸|办)|刷脸认证|这里认证|在你这")
_FAMILY_ASK = re.compile(r"他|她|帮|替|给")
# Asking to be certified now ("身份证… 帮我认证一下", "我要认证 身份证…"), not whether one was.
_DO_CERTIFY = re.compile(r"(?:帮我|给我|替我|我要|我想|想要|要|现在|马上|这就)(?:做|办|来)?个?(?:认证|刷脸)|"
                         r"认证一下|办(?:个|一下)?认证|开始认证")
# Intents a message carrying an ID number most likely means.
ID_INTENTS = ("status_query", "certify_now", "family_certification")
# "教我用…", "…怎么弄": asking to be shown how (not "能不能", a yes/no question).
_TEACH = re.compile(r"教|怎么|咋|阿么|如何|怎样|步骤|操作|带我|一步一步|咋个")
# Trouble in an app ("老是说我不是本人", "一直失败"), not a request to be shown how to use it.
_FAILING = re.compile(r"失败|不通过|没通过|通不过|过不了|不是本人|不成功|报错|闪退|打不开|老是说|一直说|总是说|"
                      r"认不出|识别不了|(?:还是|总是|一直|老是|都|也|就是)(?:不行|不成|过不去|没反应)|"
                      r"(?:一直|老是|总是|老|总)提示")
_FACE_WORDS = re.compile(r"刷脸|人脸|认证|扫脸|拍脸|眨眼|张嘴|摇头|点头|转头")
_APP_ASKS = {None, "out_of_scope", "how_to_certify", "choose_method", "method_face_app", "process_online",
             "app_download", "purpose", "precautions", "method_alipay", "method_abroad"}
_CHOOSING = {None, "out_of_scope", "how_to_certify", "choose_method", "greet", "affirm", "deny",
             "method_face_app", "purpose"}
REMIND = (tr("可以提醒。在这里认证成功后（自己刷脸或帮家人认证都行），我会问您要不要到期前提醒，"
          "回复“好的”就开通了，提醒发到这个对话里；不想要了随时回复“不用提醒了”。"))
# Options whose own words ask for a person ("转人工"): picking them is the answer.
_PERSON_OPTION = re.compile(r"^(?:转人工|人工|找人工|工作人员)$")
# "让工作人员上门": a home visit, not a chat with a person.
_HOME_VISIT_WORDS = re.compile(r"上门|来家|到家")
PHONE_NOTED = {"ios": tr("好的，苹果手机。"), "android": tr("好的，安卓手机。")}
# Waiting for a moment to fetch something ("等一下 我去拿身份证"): the question stays open.
_HOLD_ON = re.compile(r"^(?:好的?|嗯|行)?[，,。\s]*(?:等一下|等一等|等等|稍等|等会儿?|等我一下|等一会儿?|你等着|等下)|"
                      r"我(?:去|先去|这就去)?(?:拿|找|翻|问)一?下|我去(?:拿|找|翻)|"
                      r"(?:等一下|等一等|稍等|等会儿?|等我一下|等一会儿?|等下)[啊哈吧呀哦]?[。！!~～\s]*$")
# Flows that ask for something else (identity, a form): when they last certified does not
# change their course, it is kept as a fact.
_FORMS = ("home_visit", "family", "certify", "status_query", "missed_deadline", "reminders")
# Questions a recent certification answers by itself ("上个月刚认证过 还要认证吗").
_NEED_TO_CERTIFY = {None, "out_of_scope", "purpose", "cert_cycle", "greet", "affirm", "deny"}


def picks_option(turn: Turn) -> bool:
    """True when the message is an answer to the current question (number or option words)."""
    conv = turn.conversation
    if conv is None or conv.frame is None:
        return False
    dialog = chat_services(turn).dialogs.dialogs.get(conv.frame.dialog)
    if dialog is None or conv.frame.state not in dialog.states:
        return False
    state = dialog.states[conv.frame.state]
    ctx = DialogContext(turn, conv.frame)
    return match_option(state.visible_options(ctx), turn.msg.content, None) is not None


def remember(turn: Turn, reading: Reading) -> None:
    """This message's slots, and the situation facts kept for the conversation."""
    conv = turn.conversation
    assert conv is not None
    conv.memory["heard"] = dict(reading.slots)
    known = dict(conv.memory.get("facts") or {})
    known.update({k: v for k, v in reading.slots.items() if k in SITUATION})
    if known:
        conv.memory["facts"] = known


async def listen(router: Router, turn: Turn, intent: str | None) -> bool:
    """Handle the compound and off-script cases; False lets the router go on as before."""
    conv = turn.conversation
    assert conv is not None
    text = turn.msg.content
    if turn.msg.image is not None and (conv.frame is None or conv.frame.dialog == "main_menu"):
        conv.memory["photo_waiting"] = True  # a selfie sent before saying what for
    if not text or option_number(text) is not None:
        conv.memory.pop("heard", None)
        return False
    reading = read(text)
    remember(turn, reading)
    frame = conv.frame
    in_flow = frame is not None and frame.dialog != "main_menu"
    if in_flow and reading.wants_person and not _PERSON_OPTION.search(text) \
            and not _HOME_VISIT_WORDS.search(text) and picks_option(turn):
        # "还是不行 找个人帮帮忙吧": the option word is there, but a person is what they want.
        await router.escalate(turn, "user_request")
        return True
    if in_flow and picks_option(turn):
        return False
    if in_flow and frame is not None and frame.dialog.startswith("app_") and aside_phone_type(turn, reading):
        await resume(router, turn)
        return True
    if in_flow and router.at_final_state(turn, frame):
        conv.stack.clear()  # the flow's work is done: a new question starts afresh
        in_flow = False
    if reading.quits and in_flow:
        conv.stack.clear()
        await router.show_menu(turn, tr("好的，已经停下了，您说的信息不会提交。还需要帮什么忙吗？"))
        return True
    if reading.wants_person:
        await router.escalate(turn, "user_request")
        return True
    if reading.appeal and _WANTS_APPEAL.search(text) and not looks_like_question(text) \
            and not (in_flow and picks_option(turn)):
        # "我要申诉", "刷了好几次都说不是本人 我要人工审核": asked for, so it is done (not explained)
        turn.events.append({"action": "appeal_requested"})
        turn.say(tr("这就帮您申请人工审核（申诉），由工作人员来核实。"))
        await router.escalate(turn, "appeal")
        return True
    if reading.reading_trouble:
        help_reading = tr("没关系，汉字看不太懂也能办好认证：\n"
                          "1. 可以请家里人或邻居帮您看着手机，一步一步做；\n"
                          "2. 可以发语音给我，我用简单的话说；\n"
                          "3. 也可以转人工，工作人员可以打电话跟您说。\n"
                          "བོད་ཡིག་དགོས་ན་“བོད་ཡིག”ཅེས་ལན་འདེབས། 需要藏文的，请回复“藏文”。")
        turn.replies.append(Reply(help_reading, [] if in_flow else [tr("转人工"), tr("怎么认证"),
                                                                    LANGUAGE_OPTIONS[BO]]))
        if in_flow:
            await resume(router, turn)
        return True
    if reading.small_print:
        larger_print = tr("字太小、看不清的话：\n"
                          "1. 可以把手机的字调大：打开手机“设置”，找“显示”或“字体大小”，往大调；\n"
                          "2. 可以请家里人帮您看着手机，一步一步做；\n"
                          "3. 可以发语音给我，也可以转人工，工作人员打电话跟您说。")
        turn.replies.append(Reply(larger_print, [] if in_flow else [tr("转人工"), tr("怎么认证")]))
        if in_flow:
            await resume(router, turn)
        return True
    if in_flow and _HOLD_ON.search(text) and not reading.slots and not looks_like_question(text):
        # "稍等 我找一下她的身份证": the question is asked again, nothing else said
        turn.say(tr("好的，不着急。准备好了直接发给我就行。"))
        await resume(router, turn, announce=False)
        return True
    if _DONT_KNOW.match(normalise(text)):
        if not in_flow:
            await router.misunderstood(turn, None)
            return True
        # the question said more simply, or its answers shown
        await explain(router, turn, tr("没关系，不清楚也不要紧。"))
        return True
    if in_flow and _UNCLEAR.search(text) and len(normalise(text)) <= 12 and not reading.slots:
        await explain(router, turn)
        return True
    if _WHOM.match(normalise(text)) and not (in_flow and picks_option(turn)):
        whom = tr("可以打人社服务热线 12333 问，或者到当地社保经办机构（社保局、人社服务大厅）问；"
                  "也可以回复“转人工”，让这里的工作人员帮您。")
        turn.replies.append(Reply(whom, [] if in_flow else [tr("转人工"), tr("怎么认证")]))
        if in_flow:
            await resume(router, turn)
        return True
    last = reading.slots.get("last_certified")
    if isinstance(last, dict) and not (in_flow and picks_option(turn)):
        if await last_certified(router, turn, last, intent, in_flow):
            return True
    if reading.money and in_flow:
        entry = router.retrieval_only(turn)  # a knowledge entry about fees, if one is clear
        if entry is not None:
            turn.replies.extend(Reply(part) for part in entry.answer)
        else:
            turn.say(tr("跟钱有关的事要小心：有人要您交钱、转账帮忙认证的话，先别给，"
                        "打 12333 或者到社保经办机构问清楚。"))
        await resume(router, turn)
        return True
    if in_flow:
        return False
    # Outside a flow (or at the main menu).
    if conv.memory.pop("photo_waiting", None) and _CERTIFY_WORDS.search(text) \
            and intent not in ("status_query", "cert_failed") and not reading.slots.get("relationship"):
        return await router.answer_intent(turn, "certify_now")  # a photo came first
    if reading.after_greeting and intent in ("greet", None, "out_of_scope"):
        rest = reading.after_greeting
        turn.msg = dataclasses.replace(turn.msg, text=rest, voice_transcript=None)
        turn.parse = await turn.services.understand(rest)
        # the rest is listened to as if it came alone ("你好 我想给我妈认证")
        return await listen(router, turn, turn.parse.intent(turn.services.settings.nlu.intent_threshold))
    if reading.id_invalid and "id_number" not in reading.slots:
        conv.stack.clear()
        turn.say(tr("这个身份证号码好像输错了一位（最后一位对不上）。请对着身份证再核对一遍，"
                    "重新发一次（18位，最后一位是数字或X）。"))
        request = normalise(re.sub(r"[\dXx]", "", text))
        if intent in ID_INTENTS and not _ID_ONLY.match(request):
            # "查下认证状态 6328…37": the request starts, the number is asked again
            await router.answer_intent(turn, intent)
        return True
    if reading.remind:
        for_family = bool(reading.slots.get("relationship")) and bool(_CERTIFY_WORDS.search(text)) \
            and not _STATUS_WORDS.search(text)
        if for_family:  # "明年提醒我 帮我妈认证": the reminder is offered after it, the flow begins
            turn.say(REMIND)
            return await router.answer_intent(turn, "family_certification")
        answered = intent in _CHOOSING or intent in ("cert_cycle", "missed_deadline")
        turn.say(REMIND, [tr("在这里刷脸认证"), tr("帮家人认证"), tr("查认证状态")] if answered else [])
        return answered  # False: "提醒我一下 帮我妈认证", the request goes on
    slots = reading.slots
    if conv.memory.get(CHECKED_IDENTITY) and "id_number" not in slots and not slots.get("relationship") \
            and _DO_CERTIFY.search(text) and not _STATUS_WORDS.search(text):
        # "帮我认证" after a status result: certify the pensioner just looked up (the form says so)
        return await router.answer_intent(turn, "certify_now")
    if _WHERE.search(text) and intent not in ("status_query", "method_home_visit"):
        return await router.answer_intent(turn, "method_offline")
    form_data = {"id_number", "address", "phone", "reason"} & set(slots)
    if _HOME_VISIT.search(text) and form_data and intent != "method_home_visit":
        # "申请上门认证 我爸叫… 身份证… 住在… 电话…": the request named, with its details
        return await router.answer_intent(turn, "method_home_visit")
    if "id_number" in slots and not slots.get("relationship") and (
            _HERE.search(text) or (_DO_CERTIFY.search(text) and not _STATUS_WORDS.search(text))):
        return await router.answer_intent(turn, "certify_now")  # the form keeps the ID (and name)
    family = bool(slots.get("relationship")) and bool(_CERTIFY_WORDS.search(text)) \
        and ("id_number" in slots or "name" in slots) and not _STATUS_WORDS.search(text) \
        and bool(_FAMILY_ASK.search(text) or _HERE.search(text) or intent == "certify_now")
    if family and intent not in ("method_home_visit", "cert_failed"):
        return await router.answer_intent(turn, "family_certification")
    if for_a_relative(text) and intent in _CHOOSING | {"certify_now", "family_certification"} \
            and not _STATUS_WORDS.search(text) and "leave_home" not in slots:
        # "我想给我妈认证" (read as "how to certify"): the family flow, which shows the way
        return await router.answer_intent(turn, "family_certification")
    if "id_number" in slots:
        conv.memory["id_number"] = slots["id_number"]
        if intent in ID_INTENTS:
            return False
        rest = normalise(text.upper().replace(slots["id_number"], ""))
        if _ID_ONLY.match(re.sub(r"\d", "", rest)) or intent in _CHOOSING:
            conv.stack.clear()
            conv.memory["id_offered"] = slots["id_number"]
            turn.say(tr("收到身份证号 {masked}。您想办哪件事？回复数字就行：", masked=masked(slots["id_number"])),
                     ID_OPTIONS)
            return True
    if slots.get("abroad") is True and intent in _CHOOSING | {"certify_now"}:
        entry = chat_services(turn).faq.for_intent("abroad_help")  # abroad: the 中国领事 path first
        if entry is not None:
            turn.replies.extend(Reply(part) for part in entry.answer)
            turn.replies[-1].options = list(entry.options)
            return True
    app = slots.get("app")
    if (app or _FACE_WORDS.search(text)) and _FAILING.search(text) \
            and intent != "cert_failed" and not (intent or "").startswith("fail_"):
        return await router.answer_intent(turn, "cert_failed")  # "人社通上认证老是说我不是本人"
    if app and _TEACH.search(text) and intent in _APP_ASKS \
            and app in chat_services(turn).dialogs.dialogs:
        conv.stack.clear()  # "教我用青海人社通": that app's walkthrough, not the list of apps
        await router.apply(turn, await router.engine.begin(turn, str(app)))
        return True
    if intent == "family_certification" and slots.get("family_help") is False \
            and not {"id_number", "name"} & set(slots) and not for_a_relative(text):
        # "我爸不会用手机 我在西宁上班 … 没人帮他": nobody is with him to certify for him, so
        # the way that suits him is chosen (the questions they answered are skipped)
        return await router.answer_intent(turn, "choose_method")
    if intent in _CHOOSING | {"method_home_visit"} and slots.get("leave_home") is False \
            and slots.get("relationship") and "family_help" not in slots and _HOW_CERTIFY.search(text) \
            and not _HOME_VISIT.search(text) and not {"id_number", "address", "phone"} & set(slots):
        # "我爸85了 在床上起不来 怎么认证", "我爸他 腿脚不好 去不了社保局 咋办": a family member
        # asking how, not for a visit; they can certify for the parent at home, which is
        # quicker than waiting for a visit
        turn.say(tr("老人出不了门也能认证，有两个办法：\n"
                    "1. 您用自己的手机在家帮老人刷脸（帮家人认证），几分钟就办好，最快；\n"
                    "2. 您不方便的话，可以申请工作人员上门认证。\n"
                    "您想用哪个？"), [tr("帮家人认证"), tr("申请上门认证"), tr("转人工")])
        return True
    situation = [k for k in ("smartphone", "family_help", "leave_home", "abroad") if k in slots]
    asks_how = _HOW_CERTIFY.search(text) is not None and intent not in _NOT_A_CHOICE
    if situation and (intent in _CHOOSING or asks_how):
        return await router.answer_intent(turn, "choose_method")
    if intent == "method_home_visit" and slots.get("leave_home") is False and "family_help" not in slots \
            and not slots.get("relationship") and not _HOME_VISIT.search(text) and not {"id_number", "address", "phone"} & set(slots):
        # "腿脚不好 出不了门 手机也不会用 你看怎么弄": their situation, not a request for a visit;
        # whether someone can help with a phone decides (a visit is for those nobody can help)
        turn.say(tr("出不了门也能认证：家里有人会用手机的话，在家帮您刷脸最快；没人帮忙，可以申请工作人员上门认证。"
                    "先问您几个简单的问题："))
        return await router.answer_intent(turn, "choose_method")
    return False


def aside_phone_type(turn: Turn, reading: Reading) -> bool:
    """"苹果的" inside a walkthrough that did not ask: noted for its steps, not a new guide."""
    conv = turn.conversation
    assert conv is not None and conv.frame is not None
    phone = reading.slots.get("phone_type")
    if phone not in PHONE_NOTED or len(normalise(turn.msg.content)) > 8 or set(reading.slots) - {"phone_type"}:
        return False
    conv.frame.slots["phone_type"] = phone
    turn.say(PHONE_NOTED[str(phone)])
    return True


def without_last_certified(text: str, said: str) -> str:
    """The message without "三个月前在社区认证过" (the time up to its certification word)."""
    for start in (said, said.removesuffix("前")):
        if start and start in text:
            pattern = re.escape(start) + _DID_CERTIFY_RE
            return re.sub(pattern, " ", text, count=1).strip(" ，,。；;")
    return text


# What follows the time in "去年三月认证的": a certification verb (an input pattern).
_DID_CERTIFY_RE = r"[^，,。；;！!？?]*?(?:认证|刷脸|刷过脸|年审|核验|认过)(?:过|了|的)*"


def _due_month(months: int) -> str:
    """The month, in plain words, 12 months after a certification ``months`` ago."""
    today = dt.datetime.now(BEIJING).date()
    index = today.year * 12 + today.month - 1 - months + 12
    return tr("{year}年{month}月", year=Digits(index // 12), month=Digits(index % 12 + 1))


async def last_certified(router: Router, turn: Turn, last: dict[str, object], intent: str | None,
                         in_flow: bool) -> bool:
    """When they last certified, said in passing: confirmed, and more than 12 months ago leads
    to the missed-deadline flow (paused pension, certify now, back pay)."""
    conv = turn.conversation
    assert conv is not None
    frame = conv.frame
    dialog = frame.dialog if frame is not None and in_flow else None
    if dialog in _FORMS:
        return False  # kept as a fact; the form goes on
    said, months, overdue = str(last.get("said", "")), int(str(last.get("months", 0))), last.get("overdue")
    if overdue is True:
        turn.say(tr("您说上次认证是{said}，到现在已经超过12个月了。", said=said))
        if dialog is not None and dialog.startswith("app_"):
            turn.say(facts.BACKPAY + tr("现在按步骤认证就行。"))  # the walkthrough is the way to certify now
            await resume(router, turn)
            return True
        if intent in ("status_query", "family_certification", "certify_now", "human_handoff",
                      "method_home_visit") and dialog is None:
            return False  # what they asked for, with the fact confirmed first
        conv.stack.clear()
        return await router.answer_intent(turn, "missed_deadline")
    if dialog is not None:
        return False
    rest = without_last_certified(turn.msg.content, said)
    if rest != turn.msg.content:  # what else they asked, read on its own ("…认证过 还要认证吗")
        turn.msg = dataclasses.replace(turn.msg, text=rest, voice_transcript=None)
        turn.parse = await turn.services.understand(rest) if rest else None
        threshold = turn.services.settings.nlu.intent_threshold
        intent = turn.parse.intent(threshold) if turn.parse is not None else None
    if overdue is None:
        text = tr("您说上次认证是{said}。认证从那次算起12个月内有效；记不清是哪个月的话，"
                  "可以查一下认证状态，快到12个月了就再认证一次。", said=said)
    elif months == 0 and said in ("刚刚", "刚才", "今天", "今儿"):
        # "我刚刚在人社通上刷完": done, and how to be sure
        text = tr("您刚认证完。软件上显示“认证成功”或“认证通过”，就是办好了，12个月内不用再认证。"
                  "想再确认，可以在软件的认证记录里看；刚办完的记录，这里可能要过一两天才查得到。")
    elif months == 0 and said.endswith("年"):
        # "今年认证过了": the month is not known, so neither is the due month
        text = tr("您说今年已经认证过了。认证从成功那天算起12个月内有效，明年同一个月之前再认证就行；"
                  "记不清是哪个月的话，可以查一下认证状态。")
    elif months >= 12:
        text = tr("您说上次认证是{said}，到现在差不多满12个月了，该认证了。"
                  "超过12个月没认证，养老金会暂停发放，尽快认证就行。", said=said)
    else:
        text = tr("您说上次认证是{said}。认证从那次算起12个月内有效，大约{due}之前再认证一次就行。",
                  said=said, due=_due_month(months))
    if intent in _NEED_TO_CERTIFY:
        turn.say(text, [tr("查认证状态"), tr("怎么认证")])
        return True
    turn.say(text)  # confirmed in passing; what they asked is answered next
    return False


async def explain(router: Router, turn: Turn, opening: str | None = None) -> None:
    """The current question said more simply, then asked again.

    Without a simpler wording of its own (``State.explain``) the question gets ``opening``
    and a hint how to answer: by a number where its options are the answers, by typing where
    the options only go back, leave or change something (an ID number question with 回主菜单).
    """
    conv = turn.conversation
    assert conv is not None and conv.frame is not None
    dialog = chat_services(turn).dialogs.dialogs[conv.frame.dialog]
    state = dialog.states[conv.frame.state]
    answers = [option for option in state.visible_options(DialogContext(turn, conv.frame))
               if not (option.back or option.leaves)]
    text = state.explain or opening or tr("别着急，我换个简单的说法：")
    if len(answers) >= 2:
        text += tr("\n下面每一行是一个回答，您觉得哪个对，就回复它前面的数字，比如回复 1；也可以直接打那几个字。")
    else:
        text += tr("\n您直接打字回答这个问题就行。")
    turn.say(text + tr("还是不清楚，回复“转人工”，让工作人员帮您。"))
    turn.replies.extend(await router.engine.reprompt(turn))


async def resume(router: Router, turn: Turn, announce: bool = True) -> None:
    """After an off-script answer: ask the flow's question again."""
    if announce:
        turn.replies.append(Reply(tr("我们接着刚才的步骤：")))
    turn.replies.extend(await router.engine.reprompt(turn))
