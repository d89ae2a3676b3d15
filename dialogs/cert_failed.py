"""Failure diagnosis.

Asks what the app said or what happened (numbered causes, or free text mapped by key
words), gives the fix for that cause, then asks whether it worked. After repeated
failure it offers an appeal / manual review (人工审核) and a person. A ``fail_*``
intent with a known cause jumps straight to that cause's fix.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bot.core.facts import NO_MODEL
from bot.core.i18n import tr
from bot.core.messages import Reply
from dialogs.common import certify_here, finish_option
from dialogs.engine import Dialog, DialogContext, Finish, Goto, Handoff, NotUnderstood, Option, State, Step
from nlu.rules import normalise

MAX_TRIES = 2  # after this many "still failing" answers, offer appeal and a person


@dataclass(frozen=True)
class Cause:
    key: str
    label: str
    words: tuple[str, ...]
    intent: str | None
    fix: str


# Tibetan words for each cause (drafts, to be checked by a native speaker).
_BO_CAUSE_WORDS: dict[str, tuple[str, ...]] = {
    "poor_light": ("འོད་མི་འདང", "འོད་ཉུང", "མུན་ནག", "ནག་དྲགས", "གསལ་པོ་མི་མཐོང"),
    "not_frontal": ("གདོང་ཐད་ཀར་མེད", "བཀབ", "མིག་ཤེལ", "ཞྭ་མོ"),
    "info_mismatch": ("ཆ་འཕྲིན་མི་མཐུན", "ལག་ཁྱེར་ཨང་ནོར", "མིང་ནོར"),
    "no_model": ("པར་མེད",),
    "network": ("དྲ་རྒྱ", "བརྒྱུད་ལམ"),
    "maintenance": ("ཉམས་གསོ", "བྲེལ་བ"),
    "app_wont_open": ("ཁ་མི་འབྱེད", "ཁ་རྒྱག", "ནང་འཛུལ་བྱེད་མི་ཐུབ"),
    "not_matched": ("རང་ཉིད་མ་རེད", "བསྡུར་ཞིབ་མ་འགྲུབ", "ངོས་འཛིན་མ་ཐུབ"),
}

_CAUSES = (
    Cause("poor_light", tr("光线太暗、看不清"), ("光线", "太暗", "太黑", "看不清", "模糊", "逆光", "晚上", "灯"),
          "fail_poor_light",
          tr("多半是光线的问题。请这样试：白天到窗户边，或者把灯打开，让光照在脸上；"
          "不要背对窗户（逆光）；把手机摄像头擦干净。再刷一次。")),
    Cause("not_frontal", tr("脸没对正、被挡住"), ("正面", "对正", "侧脸", "遮挡", "挡住", "眼镜", "帽子", "口罩",
                                       "低头", "抬头", "动作", "眨眼", "张嘴", "没对准", "对不准", "对不上脸", "歪",
                                       "框里", "圆圈"),
          None,
          tr("刷脸时脸要正对手机，不要仰头或低头；摘掉帽子、口罩和眼镜，头发别挡住眉眼；"
          "脸放在屏幕的圆圈里，按提示慢慢眨眼或张嘴。再刷一次。")),
    Cause("info_mismatch", tr("提示信息不一致、身份证号不对"),
          ("信息不一致", "不一致", "不匹配", "信息有误", "查无此人", "身份证号不对", "姓名不对", "信息不符",
           "号码不对", "信息错误"),
          "fail_info_mismatch",
          tr("先检查输入的姓名、身份证号有没有打错（X要大写）。都没错还是提示不一致，"
          "说明社保系统里登记的信息和身份证不一样，要带身份证到当地社保经办机构改一下信息，改好后就能认证。")),
    Cause("no_model", tr("提示“未建模”或没有照片"), ("未建模", "建模", "没有模板", "没有照片", "首次认证", "采集", "比对照片"),
          "fail_no_model",
          NO_MODEL),
    Cause("network", tr("网络不好、一直转圈"), ("网络", "转圈", "加载", "信号", "断网", "网速", "超时", "连不上", "卡住"),
          "fail_network",
          tr("像是网络的问题。请连上家里的WiFi，或者换到信号好的地方；关掉软件重新打开，再试一次。")),
    Cause("maintenance", tr("提示系统维护、系统繁忙"), ("维护", "繁忙", "系统错误", "升级", "稍后再试", "系统异常", "服务器"),
          "fail_maintenance",
          tr("这是系统那边在维护，不是您操作的问题。过几个小时或者第二天再试就行，避开早上刚上班的高峰更顺利。")),
    Cause("app_wont_open", tr("软件打不开、闪退"), ("打不开", "闪退", "进不去", "登录不了", "登录失败", "登不上", "白屏", "黑屏",
                                       "下载不了", "安装不了", "点不动"),
          "fail_app_wont_open",
          tr("软件打不开的话：先检查网络；再把软件关掉重开；还不行就把它删掉，从应用商店重新下载最新版本。"
          "手机系统太旧也可能装不上，可以用家人的手机帮老人认证。")),
    Cause("not_matched", tr("提示不是本人、比对不通过"),
          ("不是本人", "非本人", "比对不通过", "比对失败", "对比不通过", "对比失败", "人脸不匹配", "认不出",
           "识别失败", "识别不了", "相似度", "不像本人", "识别不出", "认不出来", "有疤", "变样", "样子变了", "胖了",
           "瘦了"),
          None,
          tr("提示“不是本人”，多半是照片拍得不清楚，或者系统里存的是老人多年前的照片。请先在光线亮的地方、"
          "脸正对手机、摘掉帽子和眼镜，再刷两三次。还是不通过，说明系统里的照片该更新了："
          "请带身份证到当地社保经办机构更新照片，或者当面认证。")),
)
CAUSES = tuple(replace(cause, words=cause.words + _BO_CAUSE_WORDS.get(cause.key, ())) for cause in _CAUSES)
BY_KEY = {cause.key: cause for cause in CAUSES}
BY_INTENT = {cause.intent: cause for cause in CAUSES if cause.intent}
STILL_FAILING = re.compile(r"还是不行|还不行|不行|没用|还是失败|还是不过|还是没通过")
APPEAL_WORDS = re.compile(r"申诉|复核|人工审核|重新审核")
APPEAL_ANSWER = (tr("可以申诉。认证一直不通过的，可以申请人工审核：工作人员会看您的情况和核验记录，"
                 "帮您核实。想先自己再试试，也可以回复“换一种情况”看看失败的原因。"))
MISSED_WORDS = ("过期", "错过", "过了时间", "停发", "停了", "没发", "暂停", "没到账", "过了认证时间")


# "光线挺好的", "网络没问题", "不暗": the word is there, but says that this is NOT the cause.
_RULED_OUT_AFTER = re.compile(r"^[的也都还挺很蛮够]{0,3}(?:好|够|足|亮|正常|没问题|没毛病|不错|可以|行|快|稳|开着|开了|打开了)")
SUCCESS = re.compile(r"(?<![没不未])(?:成功了|通过了|认证上了|刷过了|认证好了)")


def _said_as_cause(cleaned: str, word: str) -> bool:
    """The key word names the cause, not its absence ("光线挺好的 就是不行")."""
    start = cleaned.find(word)
    while start != -1:
        ruled_out = cleaned[max(0, start - 1):start] in ("不", "没") \
            or _RULED_OUT_AFTER.match(cleaned[start + len(word):]) is not None
        if not ruled_out:
            return True
        start = cleaned.find(word, start + 1)
    return False


def _not_ruled_out(cause: Cause) -> Callable[[str], bool]:
    """For the cause's intent: false when the message names the cause only to rule it out."""

    def accepts(text: str) -> bool:
        cleaned = normalise(text)
        named = [word for word in cause.words if word in cleaned]
        return not named or any(_said_as_cause(cleaned, word) for word in named)

    return accepts


def classify(text: str) -> str | None:
    """The cause a free-text description points to (longest key word wins)."""
    cleaned = normalise(text)
    best: tuple[int, str] | None = None
    for cause in CAUSES:
        for word in cause.words:
            if word in cleaned and _said_as_cause(cleaned, word) and (best is None or len(word) > best[0]):
                best = (len(word), cause.key)
    for word in MISSED_WORDS:
        if word in cleaned and (best is None or len(word) > best[0]):
            best = (len(word), "missed")
    return best[1] if best else None


async def _jump(ctx: DialogContext) -> Step | None:
    """Entered through a ``fail_*`` intent with a known cause: straight to its fix."""
    if ctx.slots.get("_jumped"):
        return None
    ctx.slots["_jumped"] = True
    text = ctx.turn.msg.content
    if text and APPEAL_WORDS.search(text):
        return Goto("offer_help", [Reply(APPEAL_ANSWER)])
    event = ctx.turn.msg.event or ""
    intent = ctx.intent() or (event.split(":", 1)[1] if event.startswith("menu:") else "")
    cause = BY_INTENT.get(intent)
    key = classify(text) if text else None
    if key is not None and key != "missed" and (cause is None or key != cause.key):
        return Goto(f"fix_{key}")  # the words name the cause ("汉字看不清" is not poor light)
    if cause is not None and text and not _not_ruled_out(cause)(text):
        return None  # "网络挺好的": the intent's cause is ruled out by the words; ask which one
    return Goto(f"fix_{cause.key}") if cause else None


async def _describe(ctx: DialogContext, text: str) -> Step:
    key = classify(text)
    if key == "missed":
        return Goto("missed")
    if key is None and SUCCESS.search(text) and not STILL_FAILING.search(text):
        return await _worked(ctx)  # "好了 成功了 谢谢": it worked after all
    if key is None and STILL_FAILING.search(text) and ctx.slots.get("tries"):
        return await _still_failing(ctx)  # after a fix: the next suggestion is help
    if key is None:
        return NotUnderstood(hint=tr("我没对上是哪种情况。请回复下面的数字选一个最像的；都不像就选“别的情况”。"))
    ctx.slots["cause"] = key
    return Goto(f"fix_{key}")


async def _worked(ctx: DialogContext) -> Step:
    return Finish([Reply(tr("太好了，认证成功就放心了！明年这个时候记得再认证一次。"))])


async def _still_failing(ctx: DialogContext) -> Step:
    tries = int(ctx.slots.get("tries", 0)) + 1
    ctx.slots["tries"] = tries
    if tries >= MAX_TRIES:
        return Goto("offer_help")
    return Goto("ask")


async def _appeal(ctx: DialogContext) -> Step:
    ctx.event("appeal_requested")
    return Handoff("appeal", [Reply(tr("好的，我帮您申请人工审核（申诉），由工作人员来核实。"))])


async def _person(ctx: DialogContext) -> Step:
    return Handoff("user_request")


def _ask_prompt(ctx: DialogContext) -> Reply:
    opening = tr("那我们再看看，会不会是别的原因。") if ctx.slots.get("tries") else tr("别着急，我们一起看看。")
    return Reply(opening + tr("认证时手机上提示了什么，或者发生了什么？回复数字，或者直接打字告诉我："))


def _after_fix(cause: Cause) -> Callable[[DialogContext, str], Awaitable[Step]]:
    """Free words after a fix: another cause named goes to its fix; it worked; still failing,
    or this cause ruled out ("光线挺亮的", "网络挺好的"), is the next suggestion."""

    async def on_input(ctx: DialogContext, text: str) -> Step:
        key = classify(text)
        # "光线挺亮的" after any fix: what it advised is fine, so that was not it
        ruled_out = any(not _not_ruled_out(other)(text) for other in CAUSES)
        if key is not None and key != cause.key and not ruled_out:
            return await _describe(ctx, text)
        if SUCCESS.search(text) and not STILL_FAILING.search(text):
            return await _worked(ctx)
        if ruled_out or STILL_FAILING.search(text):
            return await _still_failing(ctx)
        return NotUnderstood(hint=tr("试过以后，成功了请回复 1，还是不行请回复 2。"))

    on_input.__name__ = f"after_fix_{cause.key}"
    return on_input


def _fix_state(cause: Cause) -> State:
    return State(prompt=cause.fix + tr("\n试好了告诉我结果："), on_input=_after_fix(cause),
                 may_go=(*(f"fix_{other.key}" for other in CAUSES if other is not cause), "missed"), options=[
        Option(tr("好了，成功了"), run=_worked, words=("成功了", "好了", "通过了", "可以了", "成功")),
        Option(tr("还是不行"), run=_still_failing, words=("还是不行", "不行", "失败", "没通过", "还不行"),
               may_go=("ask", "offer_help")),
        Option(tr("换一种情况"), goto="ask", words=("换一种", "不是这个", "别的情况")),
        Option(tr("转人工"), run=_person, words=("人工",)),
    ])


def _ask_options() -> list[Option]:
    options = [Option(cause.label, goto=f"fix_{cause.key}", intents=(cause.intent,) if cause.intent else (),
                      set={"cause": cause.key}, intent_if=_not_ruled_out(cause)) for cause in CAUSES]
    options.append(Option(tr("过了认证时间、养老金停了"), goto="missed", intents=("missed_deadline",),
                          words=MISSED_WORDS))
    options.append(Option(tr("别的情况"), goto="other", words=("别的", "其他", "都不是")))
    return options


states: dict[str, State] = {
    "ask": State(
        prompt=_ask_prompt,
        options=_ask_options(), on_input=_describe, on_enter=_jump,
        may_go=(*(f"fix_{cause.key}" for cause in CAUSES), "offer_help")),
    "missed": State(
        prompt=tr("过了认证时间也不要紧，补认证就行。我来告诉您怎么办。"),
        options=[Option(tr("好的，怎么补"), start="missed_deadline", words=("好的", "怎么补", "补认证")),
                 Option(tr("换一种情况"), goto="ask", words=("换一种", "不是这个"))]),
    "other": State(
        prompt=(tr("别的情况也可以这样试：换个光线好的地方、连好网络再试一次；"
                "或者换一种方法，比如去社保局、邮储银行当面认证。还不行就让工作人员帮您看看。")),
        options=[Option(tr("换个认证方法"), start="choose_method", words=("换个方法", "别的方法")),
                 Option(tr("转人工"), run=_person, words=("人工",)),
                 finish_option()]),
    "offer_help": State(
        prompt=(tr("试了几次还是不行，别着急，不是您的错。可以这样：")),
        options=[Option(tr("申请人工审核（申诉）"), run=_appeal, intents=("appeal",),
                        words=("申诉", "人工审核", "审核")),
                 Option(tr("找工作人员聊聊"), run=_person, words=("工作人员", "找人")),
                 Option(tr("换个认证方法"), start="choose_method", words=("换个方法", "别的方法")),
                 certify_here(),
                 finish_option()]),
}
for _cause in CAUSES:
    states[f"fix_{_cause.key}"] = _fix_state(_cause)

cert_failed = Dialog(
    name="cert_failed",
    title="认证失败怎么办",
    start="ask",
    entry_intents=("cert_failed", *BY_INTENT),
    states=states,
)

DIALOGS = (cert_failed,)
