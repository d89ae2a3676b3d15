"""Protective pipeline steps: a scam and fee warning in every state, and bereavement.

``scam_guard`` runs before ``human_gate``, so it sees every message: in the main menu, in
any guided dialog or form, while waiting for a person and while a person handles the
chat. When the scored rule (nlu/safety.py) fires, the warning comes first; then the flow
resumes: the current question is asked again (or the menu shown), and while a person is
involved the message still reaches them as usual.

``answer_neighbours`` runs after ``understand``: at the main menu (or with no dialog) a
confident intent of a question next to the seed (:data:`INFO_INTENTS`) gets its
knowledge entry, so that a word of a menu option inside the question ("人工几点能找到人")
does not pick that option. Inside other dialogs the router answers them and resumes.

``bereavement_guard`` runs after ``understand``: a message saying that the pensioner has
died gets condolences and what to do, never a certification prompt: the dialog stack is
cleared and a person is offered.

Both answers are knowledge entries (faq/knowledge.yml: ``scam_warning``,
``pensioner_died``), so the same words come back when the NLU intent is asked as a
question.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from bot.core.conversation import Mode
from bot.core.i18n import tr
from bot.core.messages import Reply
from bot.core.pipeline import NextStep, Turn
from bot.core.understanding import IntentScore, ParseResult
from dialogs.engine import DialogEngine, chat_services
from dialogs.menu import MENU_LABELS
from nlu.entities import extract_last_certified
from nlu.reading import read
from nlu.safety import (
    APP_ASKS_CODE,
    BEREAVEMENT_INTENT,
    DOUBTS_US,
    SCAM_INTENT,
    already_caught,
    match_bereavement,
    match_scam,
    mentions_death,
)

log = logging.getLogger(__name__)
RESUME_TEXT = tr("我们接着刚才的步骤：")
# The model's pensioner_died inside a dialog must be surer than this (the rule always wins).
BEREAVEMENT_IN_DIALOG = 0.6
# Memory flag of a chat that told of a death: its follow-ups ("那她的钱要退吗") are about it.
BEREAVED = "bereaved"
# Questions next to the seed (issue 17), answered by their knowledge entry.
CONTACT_INTENT = "contact_office"  # a rule's intent (_ASKS_CONTACT), answered by its knowledge entry
# Rules' intents (_RULE_PATTERNS), each answered by its knowledge entry.
HOTLINE_INTENT, BOT_INTENT, AGENCY_HOURS_INTENT = "hotline_busy", "bot_identity", "agency_hours"
FRUSTRATED_INTENT, SMS_CODE_INTENT = "frustrated", "sms_code_missing"
COMPLAINT_INTENT, PAYMENT_INTENT, LOST_ID_INTENT = "complaint", "pension_payment", "lost_id_card"
APP_CODE_INTENT, TRUST_INTENT, PHONE_CHANGED_INTENT = "app_password", "trust_us", "phone_changed"
CANNOT_COOPERATE_INTENT = "cannot_cooperate"
INFO_INTENTS = frozenset({SCAM_INTENT, CONTACT_INTENT, HOTLINE_INTENT, BOT_INTENT, AGENCY_HOURS_INTENT,
                          FRUSTRATED_INTENT, SMS_CODE_INTENT, COMPLAINT_INTENT, PAYMENT_INTENT, LOST_ID_INTENT,
                          APP_CODE_INTENT, TRUST_INTENT, PHONE_CHANGED_INTENT, CANNOT_COOPERATE_INTENT, "privacy", "lost_card", "cert_cycle", "proxy_presence", "backpay_timing",
                          "abroad_help", "office_hours", "other_province", "how_long"})


def entry_replies(turn: Turn, intent: str) -> list[Reply]:
    """The knowledge entry of ``intent`` as messages (options of the entry on the last one)."""
    entry = chat_services(turn).faq.for_intent(intent)
    if entry is None:  # the knowledge base always has it; never fail a turn over it
        log.error("knowledge entry missing", extra={"intent": intent})
        return []
    replies = [Reply(part) for part in entry.answer]
    if replies:
        replies[-1].options = list(entry.options)
    return replies


async def scam_guard(turn: Turn, next_step: NextStep) -> None:
    """Warn first about scams and fees, in any state; then let the flow go on."""
    text = turn.msg.content
    hit = match_scam(text) if text else None
    if hit is None and text and already_caught(text) and _LOST_WHAT_PATTERN.search(text):
        hit = IntentScore(SCAM_INTENT, 1.0)  # "我已经转了500块给那个说帮我认证的人": a victim
    if hit is None:
        await next_step()
        return
    conv = turn.conversation
    assert conv is not None
    turn.events.append({"action": "scam_warning", "score": round(hit.confidence, 2), "mode": conv.mode})
    warning = entry_replies(turn, SCAM_INTENT)
    for reply in warning:
        reply.options = []
    if already_caught(text or ""):
        # "我刚才把验证码告诉了…", "钱已经转过去了": what to do now, right after the warning
        warning.insert(1, Reply(tr("先别慌，马上做这几件事：\n"
                                   "1. 打银行客服电话（银行卡背面有号码），冻结银行卡、改密码；\n"
                                   "2. 打110报警，也可以打96110反诈专线；\n"
                                   "3. 对方的电话号码、聊天记录、转账记录都留好，别删。")))
    if conv.mode in ("waiting", "human"):
        await next_step()  # human_gate: queued or relayed as usual
        turn.replies[0:0] = warning
        return
    if conv.mode == "closed":
        # What human_gate does with a message that is not the survey answer.
        conv.switch_mode(Mode.BOT)
        conv.case_id = None
        conv.memory.pop("survey_case", None)
    frame = conv.frame
    rest = other_question(text or "")
    if rest and (frame is None or frame.dialog == "main_menu"):
        # "认证要钱吗 在哪认证": the warning, then the other question answered as usual
        turn.msg = dataclasses.replace(turn.msg, text=rest, voice_transcript=None)
        turn.outcome = "scam_warning"
        await next_step()
        turn.replies[0:0] = warning
        return
    turn.parse = ParseResult(text, [hit], backend="rules")
    turn.outcome = "scam_warning"
    turn.replies.extend(warning)
    await resume(turn)


# What was lost, when nothing else in the message reads as a scam ("转了500块").
_LOST_WHAT_PATTERN = re.compile(r"\d+\s*(?:块|元)|钱|验证码|密码|卡号|银行卡|被骗|上当")
_CLAUSES = re.compile(r"[\s，,。；;！!？?]+")
_ASKING = re.compile(r"怎么|咋|阿么|哪|什么|啥|如何|多久|几|吗|呢|要不要|能不能")
_DOMAIN = re.compile(r"认证|刷脸|年审|材料|带什么|带啥|人社通|12333")


def other_question(text: str) -> str | None:
    """A second question next to a fee or scam remark, with no scam cue of its own."""
    parts = [part for part in _CLAUSES.split(text) if part]
    if len(parts) < 2:
        return None
    others = [part for part in parts if match_scam(part) is None]
    if len(others) == len(parts):
        return None  # the cue is spread over the clauses: no clause stands alone
    asked = [part for part in others if len(part) >= 4 and _ASKING.search(part) and _DOMAIN.search(part)]
    return "，".join(asked) if asked else None


async def resume(turn: Turn) -> None:
    """Ask the current question again, or show the menu when no dialog is under way."""
    conv = turn.conversation
    assert conv is not None
    engine = DialogEngine(chat_services(turn).dialogs)
    frame = conv.frame
    if frame is not None and not engine.expired(frame) and frame.dialog != "main_menu":
        turn.replies.append(Reply(RESUME_TEXT))
        turn.replies.extend(await engine.reprompt(turn))
        return
    conv.stack.clear()
    result = await engine.begin(turn, "main_menu")
    options = result.replies[-1].options if result.replies else MENU_LABELS
    turn.replies.append(Reply(tr("还有什么要问的，请回复数字："), list(options)))


def _bereavement(turn: Turn) -> IntentScore | None:
    text = turn.msg.content
    if not text:
        return None
    hit = match_bereavement(text)
    if hit is not None or turn.parse is None:
        return hit
    top = turn.parse.top
    if top is None or top.name != BEREAVEMENT_INTENT or not mentions_death(text):
        return None
    conv = turn.conversation
    in_dialog = conv is not None and conv.frame is not None and conv.frame.dialog != "main_menu"
    floor = BEREAVEMENT_IN_DIALOG if in_dialog else turn.services.settings.nlu.intent_threshold
    return top if top.confidence >= floor else None


async def bereavement_guard(turn: Turn, next_step: NextStep) -> None:
    """Condolences and what to do when the pensioner has died; no certification prompt."""
    hit = _bereavement(turn)
    if hit is None:
        await next_step()
        return
    conv = turn.conversation
    assert conv is not None
    conv.stack.clear()
    conv.misunderstood = 0
    conv.memory.pop("offered_options", None)
    if turn.parse is not None and turn.parse.top != hit:
        turn.parse = ParseResult(turn.parse.text, [hit, *turn.parse.intents], turn.parse.entities, "rules")
    conv.memory[BEREAVED] = True
    turn.events.append({"action": "bereavement", "score": round(hit.confidence, 2)})
    turn.replies.extend(entry_replies(turn, BEREAVEMENT_INTENT))
    if turn.replies and turn.replies[-1].options:
        conv.memory["offered_options"] = list(turn.replies[-1].options)


# Asking how to reach the office ("社保局电话是多少 我想打电话问问") is not scam talk, whatever
# the model guessed from "电话" or "社保局": without a scam rule cue it gets the contact entry.
_ASKS_CONTACT = re.compile(r"电话(?:是|号码?)?多少|号码(?:是)?多少|电话号|联系方式|怎么联系|咋联系|打哪个电话|"
                           r"客服电话|热线")
# Questions no model intent covers (or the model misfiles), found by rule and answered by the
# knowledge entry of the same intent; the first that matches wins.
_RULE_PATTERNS = {
    # 12333 busy or unanswered ("12333老是占线", "打12333没人接"): not the 掌上12333 app.
    HOTLINE_INTENT: r"(?:12333|热线|电话)[^，,。？?]{0,6}(?:打不通|打不进|占线|没人接|接不通|不通|没人听)|"
                    r"(?:打不通|打不进|没人接)[^，,。]{0,4}(?:12333|热线)",
    # Asking whether a person answers ("你是真人吗", "是不是机器人在回"): not a request for one.
    BOT_INTENT: r"你(?:是|到底是)(?:不是)?(?:真人|机器人|人工|真的人|人还是机器|AI|ai|电脑|自动回复|机器)|"
                r"是不是(?:真人|机器人|自动回复|机器)|(?:真人|机器人|机器)在回",
    # When the social security office opens ("社保局几点上班"): not this chat's staff hours.
    AGENCY_HOURS_INTENT: r"(?:社保局|社保中心|社保所|经办机构|人社局|服务大厅|办事大厅|社保站|银行|邮储|窗口)[^，,。？?]{0,6}"
                         r"(?:几点|上班|开门|下班|关门|办公时间|营业时间|周末|周六|周日|星期六|星期天|礼拜)",
    # What happens without certifying ("没认证会怎么样"): the missed-deadline answer, not the methods.
    "missed_deadline": r"(?:不|没|没有|忘了|忘记)(?:去)?认证(?:的话)?[^，,。]{0,3}(?:会|有)"
                       r"(?:怎么样|怎样|啥|什么|咋样|影响|后果)|(?:不|没)认证[^，,。]{0,4}(?:停发|停掉|扣钱|取消)",
    # Fed up ("你们这个太麻烦了", "搞不懂"): said kindly, with the ways on; not the model's "thanks".
    FRUSTRATED_INTENT: r"太麻烦|真麻烦|好麻烦|麻烦死|烦死|太难了|太复杂|不好用|搞不懂|弄不明白|弄不懂|整不明白|看不明白|气死",
    # A changed phone number locks them out of the app ("手机号换了 人社通登不上"): not a broken app.
    PHONE_CHANGED_INTENT: r"(?:手机号|手机号码|电话号码?|号码)[^，,。？?]{0,3}(?:换了|改了|变了|换号|停机|停用|注销|不用了)|"
                          r"换了?(?:新)?(?:手机)?号(?:码)?(?!码?[是为])",
    # A pensioner who cannot do what face checks ask ("老人痴呆了", "不会按提示眨眼"): other ways.
    CANNOT_COOPERATE_INTENT: r"痴呆|糊涂了|失智|不配合|配合不了|(?:不会|做不了|做不来|不能)[^，,。？?]{0,4}"
                             r"(?:配合|眨眼|张嘴|摇头|点头|做动作|那些动作)",
    # The app's own login code does not arrive ("登录人社通收不到验证码"): help, not an app guide.
    SMS_CODE_INTENT: r"(?:收不到|没收到|没有收到|收不着|等不到|接不到|不来|没来)[^，,。]{0,3}(?:验证码|短信)|"
                     r"(?:验证码|短信)[^，,。]{0,4}(?:收不到|没收到|不来|没来|一直不来|没有来|等不到)",
    # Doubting this chat ("你们是不是骗子", "这个是官方的吗"): why it is safe, and the official ways.
    TRUST_INTENT: DOUBTS_US.pattern + r"|(?:你们|你|这个|这里|公众号)[^，,。]{0,4}(?:是不是|是)?(?:官方|正规|政府)[^，,。]{0,2}"
                                      r"(?:的)?(?:吗|不|没)|(?:可信|靠谱|可靠)(?:吗|不)",
    # The official app asks for the user's own password or code ("支付宝让我输入密码").
    APP_CODE_INTENT: APP_ASKS_CODE.pattern,
    # The ID card itself lost ("身份证丢了", "没有身份证了"): not a forgotten number, not the 社保卡.
    LOST_ID_INTENT: r"身份证[^，,。？?号]{0,4}(?:丢了|丢失|弄丢|掉了|找不到了|不见了|被偷|没了)|"
                    r"(?:丢了|弄丢了|丢失了|找不到)[^，,。号]{0,2}身份证(?!号)|没有身份证(?![号码])",
    # A complaint ("我要投诉", "你们服务太差"): an apology and the ways to raise it, not an appeal.
    COMPLAINT_INTENT: r"投诉|举报(?!.{0,6}(?:骗|诈))|(?:服务|态度)[^，,。]{0,3}(?:太差|真差|很差|不好|恶劣)",
    # The pay that resumes after a late certification ("补认证以后养老金什么时候发").
    "backpay_timing": r"(?:补认证|认证(?:完|后|了|以后|之后|通过))[^，,。？?]{0,10}(?:什么时候|啥时候|哪天|几号|多久|几天)"
                      r"[^，,。？?]{0,4}(?:发|到账|到|打|恢复)",
    # Pay day, the amount, the yearly raise ("养老金什么时候发", "涨了多少"): outside this chat's
    # records; not the payment that resumes after a late certification (backpay_timing).
    PAYMENT_INTENT: r"^(?!.*(?:恢复|补发|补认证|停发|暂停|认证(?:完|后|了|以后|通过)))"
                    r".*(?:养老金|退休金|退休工资|养老钱)[^，,。？?]{0,6}(?:(?:什么时候|啥时候|哪天|几号|几时)[^，,。？?]{0,2}"
                    r"(?:发|到账|到|打)|涨了?多少|涨没涨|上调|有多少|是多少|领多少|发多少|多少钱)",
}
_RULES = tuple((re.compile(pattern), intent) for intent, pattern in _RULE_PATTERNS.items())
# A question anywhere in the message ("每年都要认证吗 太麻烦了"), and model intents that are
# no question of their own (a fed-up remark stays one).
_ASKS = re.compile(r"吗|怎么|咋|能不能|可不可以|是不是|有没有|要不要|什么|为什么|哪|多少|[?？]")
_NOT_A_QUESTION = {"thanks", "greet", "affirm", "deny", "out_of_scope", FRUSTRATED_INTENT}


def _drop_unfounded_guesses(turn: Turn) -> None:
    """A question one of ``_RULES`` finds gets that rule's intent first; a contact question
    gets the contact entry (not the model's guess: a scam warning, the
    offline method); the model's bereavement guess without a word of death ("我的银行卡换了
    养老金打到哪张卡") is dropped. Before the router and the menu's neighbour answers."""
    parse, text = turn.parse, turn.msg.content or ""
    if parse is None or parse.top is None:
        return
    threshold = turn.services.settings.nlu.intent_threshold
    for rule, intent in _RULES:
        if intent == FRUSTRATED_INTENT and _ASKS.search(text) and parse.top.confidence >= threshold \
                and parse.top.name not in _NOT_A_QUESTION:
            continue  # "每年都要认证吗 太麻烦了": the question is answered, not only the mood
        if rule.search(text) and match_scam(text) is None:  # found by rule: no model intent has it
            turn.parse = dataclasses.replace(parse, intents=[IntentScore(intent, 1.0), *parse.intents])
            return
    if parse.backend == "rules":
        return
    if parse.top.name == BEREAVEMENT_INTENT and not mentions_death(text):
        turn.parse = dataclasses.replace(parse, intents=[i for i in parse.intents if i.name != parse.top.name])
    elif _ASKS_CONTACT.search(text) and match_scam(text) is None:
        # the knowledge entry "contact" (12333, the local office), found by rule: no model intent has it
        turn.parse = dataclasses.replace(parse, intents=[IntentScore(CONTACT_INTENT, 1.0), *(
            i for i in parse.intents if i.name != SCAM_INTENT)])


async def answer_neighbours(turn: Turn, next_step: NextStep) -> None:
    """At the menu, a confident question next to the seed gets its entry (not a menu word)."""
    conv = turn.conversation
    assert conv is not None
    _drop_unfounded_guesses(turn)
    intent = turn.parse.intent(turn.services.settings.nlu.intent_threshold) if turn.parse else None
    at_menu = conv.frame is None or conv.frame.dialog == "main_menu"
    if intent not in INFO_INTENTS or not at_menu or conv.mode != "bot" or turn.msg.event:
        await next_step()
        return
    reading = read(turn.msg.content or "")
    situation = reading.slots.keys() & {"smartphone", "family_help", "leave_home"}
    if situation and intent != SCAM_INTENT:
        await next_step()  # "娃娃在外地 俺一个人 阿么认证": their situation, so a method is chosen
        return
    if intent == "cert_cycle" and (extract_last_certified(turn.msg.content or "") is not None or reading.remind):
        # "上个月刚认证过 还要认证吗", "明年提醒我认证": listening answers with their date, or the reminder
        await next_step()
        return
    replies = entry_replies(turn, intent)
    if not replies:
        await next_step()
        return
    conv.stack.clear()
    conv.misunderstood = 0
    conv.memory.pop("offered_options", None)
    turn.replies.extend(replies)
    conv.memory["offered_options"] = list(replies[-1].options)
