"""Pieces shared by the guided dialogs: yes/no options, step-by-step walkthroughs,
ID-number handling and a few plain texts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.errors import RateLimited
from bot.core.facts import NO_MODEL
from bot.core.facts import format_date as format_date  # re-exported for the dialogs
from bot.core.i18n import tr
from bot.core.logs import mask_id_number
from bot.core.messages import Reply
from bot.core.storage.models import Pensioner
from bot.records.pensioners import names_match
from dialogs.engine import Dialog, DialogContext, Finish, Goto, NotUnderstood, Option, State, Stay, Step
from dialogs.menu import MENU_LABELS, to_main_menu
from nlu import entities

YES_WORDS = ("是", "对", "是的", "对的", "嗯", "好", "好的", "有", "会", "能", "可以", "行",
             "会用", "有人", "能出门", "可以的", "会一点", "会一些", "还行", "凑合")
# Longer negative words beat the positive ones they contain ("不会用" over "会用").
NO_WORDS = ("否", "不", "不是", "不对", "没有", "不会", "不能", "不行", "不可以", "不是的",
            "没", "没人", "不会用", "不太会", "没有人", "出不了", "不能出门", "没法出门")

CERTIFY_DIALOG = "certify"
CERTIFY_LABEL = tr("在这里刷脸认证")


def has_dialog(name: str) -> Callable[[DialogContext], bool]:
    """An ``Option.when`` that shows the option only when dialog ``name`` is registered."""

    def check(ctx: DialogContext) -> bool:
        return name in ctx.services.dialogs.dialogs

    check.__name__ = f"has_{name}"
    return check


def certify_here() -> Option:
    """「在这里刷脸认证」, shown only when the selfie dialog exists."""
    return Option(CERTIFY_LABEL, start=CERTIFY_DIALOG, when=has_dialog(CERTIFY_DIALOG),
                  intents=("certify_now",), words=("刷脸认证", "在这里认证", "这里刷脸"))


def yes(label: str = tr("是"), goto: str | None = None, words: tuple[str, ...] = YES_WORDS) -> Option:
    """A "yes" option matched by 是/对/会/能 and the affirm intent."""
    return Option(label, goto=goto, words=words, intents=("affirm",))


def no(label: str = tr("不是"), goto: str | None = None, words: tuple[str, ...] = NO_WORDS) -> Option:
    """A "no" option matched by 不是/不会/没有 and the deny intent."""
    return Option(label, goto=goto, words=words, intents=("deny",))


async def done(ctx: DialogContext) -> Step:
    """Finish quietly; the router then shows the main menu."""
    return Finish()


def finish_option(label: str = tr("回主菜单")) -> Option:
    return Option(label, run=done, words=("主菜单", "没有了", "没事了", "不用了", "结束"), leaves=True)


def looks_like_question(text: str) -> bool:
    """A message that asks something rather than answering (吗/怎么/什么/谁/?)."""
    return bool(re.search(r"[?？吗呢嘛]$|怎么|什么|为什么|哪里|哪个|多少|能不能|要不要|是不是|可不可以|咋|啥|"
                          r"怎样|如何|谁", text))


@dataclass(frozen=True)
class IdFound:
    """What a message says about an ID number."""

    valid: str | None
    invalid: bool


def find_id(ctx: DialogContext, text: str) -> IdFound:
    """A checksum-valid ID number in the message (NLU entities first, then the rules)."""
    parse = ctx.turn.parse
    found = list(parse.entities) if parse is not None else []
    found += entities.extract(text)
    valid = next((e.value for e in found if e.type == "id_number"), None)
    invalid = any(e.type == "id_number_invalid" for e in found)
    if valid is None and not invalid:
        digits = entities.normalise_digits(text)
        invalid = bool(re.search(r"\d{15,}", digits))
    return IdFound(valid=valid.upper() if valid else None, invalid=invalid and valid is None)


def find_phone(ctx: DialogContext, text: str) -> str | None:
    parse = ctx.turn.parse
    found = list(parse.entities) if parse is not None else []
    found += entities.extract(text)
    return next((e.value for e in found if e.type == "phone"), None)


ID_INVALID = (tr("这个身份证号码好像不对，可能输错了一位：应该是18位，最后一位是数字或X。"
              "请对着身份证再看一遍，重新发一次。"))
ID_ASK = tr("请发一下老人的身份证号（18位，就在身份证正面最下面一行）。")


def heard(ctx: DialogContext) -> dict[str, Any]:
    """The slots the current message gave (``memory["heard"]``, set by the listening step)."""
    value = ctx.memory.get("heard")
    return dict(value) if isinstance(value, dict) else {}


def take_heard_name(on_name: Callable[[DialogContext, str], Awaitable[Step]]
                    ) -> Callable[[DialogContext], Awaitable[Step | None]]:
    """An ``on_enter`` hook for a name question: the name this message or the opening message
    gave is used once, as if it had been typed here, instead of being asked for again."""

    async def name_given(ctx: DialogContext) -> Step | None:
        name = heard(ctx).get("name") or ctx.slots.get("_opening_name")
        if name and not ctx.slots.get("_name_heard"):
            ctx.slots["_name_heard"] = True
            return await on_name(ctx, str(name))
        return None

    return name_given


def fact(ctx: DialogContext, key: str) -> Any:
    """A fact about the pensioner's situation told earlier in this chat (None: unknown)."""
    facts = ctx.memory.get("facts")
    return facts.get(key) if isinstance(facts, dict) else None


def name_in(text: str) -> str | None:
    """The name a message at a name question gives: the whole message or after 叫/姓名."""
    whole = "".join(text.split()).strip("，,。.!！")
    if entities.plausible_name(whole):
        return whole
    return entities.extract_name(text)


def already_certified(ctx: DialogContext, pensioner: Pensioner) -> str | None:
    """"已经认证成功，下次在…" when this pensioner's certification is still valid."""
    due = pensioner.next_due
    if pensioner.certified_at is None or due is None:
        return None
    today = datetime.now(UTC).astimezone(ZoneInfo(ctx.services.settings.staff.timezone)).date()
    if due <= today:
        return None
    return (tr("这位老人今年已经认证成功，下次在 {date} 前后再认证就行，现在不用再认证了。", date=format_date(due)))


def masked(id_number: str) -> str:
    return mask_id_number(id_number)




async def check_identity(ctx: DialogContext, name: str, *, flow: str, retry_state: str,
                         mismatch_text: str, menu_options: list[str],
                         **details: Any) -> Pensioner | Step:
    """The pensioner whose ID number (``slots["id_number"]``) and name match, or the next step.

    The lookup is rate-limited per chat (against enumeration). A mismatch forgets the ID
    number and asks again from ``retry_state``; after ``family.max_name_attempts`` it goes to
    the flow's ``mismatch`` state. Audit events: ``<flow>_lookup_limited`` and
    ``<flow>_identity_mismatch`` (with ``details``).
    """
    services = ctx.services
    try:
        pensioner = await services.registry.find(ctx.conversation.key, ctx.slots["id_number"],
                                                  client_address=ctx.turn.msg.client_address)
    except RateLimited as limited:
        ctx.event(f"{flow}_lookup_limited", **details)
        return Finish([Reply(limited.user_message, menu_options)])
    if pensioner is not None and names_match(name, pensioner.name):
        return pensioner
    await services.registry.record_name_mismatch(ctx.slots["id_number"])
    tries = int(ctx.slots.get("name_tries", 0)) + 1
    ctx.slots["name_tries"] = tries
    ctx.slots.pop("id_number", None)
    ctx.event(f"{flow}_identity_mismatch", tries=tries, **details)
    if tries >= services.settings.family.max_name_attempts:
        return Goto("mismatch")
    return Goto(retry_state, [Reply(mismatch_text)])


# ---------------------------------------------------------------- walkthroughs

NEXT_WORDS = ("下一步", "下载好了", "装好了", "然后呢", "然后", "好了", "好的", "做好了", "接着",
              "继续", "明白了", "懂了", "知道了", "找到了", "点了", "打开了", "完成了", "下一个",
              "做完了", "弄好了", "可以了", "登录了", "注册好了", "装上了", "下上了", "装完了", "下完了",
              "安装好了", "弄完了", "搞好了", "整好了", "妥了", "接下来", "往下")
UNCLEAR_WORDS = ("没看懂", "看不懂", "不懂", "不明白", "没明白", "什么意思", "听不懂", "找不到",
                 "再说一遍", "说详细点")


# Trouble people meet inside a walkthrough, answered without leaving it.
GUIDE_TIPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"验证码|短信"),
     tr("收不到验证码的话：先看看手机号有没有填对；短信有时要等一两分钟；看看短信是不是被手机当成"
     "骚扰短信拦截了；过一分钟再点“重新获取”。还是收不到，可以换家人的手机号注册。")),
    (re.compile(r"登录不上|登不上|登录不了|密码|忘了密码|忘记密码"),
     tr("登录不上的话：点登录页上的“忘记密码”，用手机号收验证码重新设一个密码；"
     "注意手机号和密码都要输对，密码分大小写。")),
    (re.compile(r"找不到|没找到|在哪"),
     tr("找不到的话：在软件最上面的搜索框里打“认证”两个字，出来的“养老待遇资格认证”就是。")),
    (re.compile(r"下载不了|装不上|安装不了|空间不足|内存不够"),
     tr("装不上的话：先连上WiFi；手机空间不够时删掉几个不用的软件或视频再装；手机太旧装不上，"
     "可以用家人的手机帮老人认证。")),
)


def guide_tip(text: str) -> str | None:
    """A short fix for trouble met during a walkthrough step, if the message names one."""
    for pattern, tip in GUIDE_TIPS:
        if pattern.search(text):
            return tip
    return None


@dataclass(frozen=True)
class GuideStep:
    """One step of a walkthrough: what to do, and the same said another way."""

    name: str
    text: str | Callable[[DialogContext], str]
    again: str | Callable[[DialogContext], str]


def _text(value: str | Callable[[DialogContext], str], ctx: DialogContext) -> str:
    return value(ctx) if callable(value) else value


def _step_prompt(step: GuideStep, number: int, total: int) -> Callable[[DialogContext], Reply]:
    def prompt(ctx: DialogContext) -> Reply:
        if ctx.slots.get("explain") == step.name:
            body = tr("换个说法：") + _text(step.again, ctx)
        else:
            body = _text(step.text, ctx)
        return Reply(tr("第{number}步（共{total}步）：{body}", number=number, total=total, body=body))

    return prompt


def walkthrough(name: str, title: str, steps: list[GuideStep], *, entry_intents: tuple[str, ...] = (),
                intro: State | None = None, for_someone_else: str = "",
                done_text: str = tr("太好了！认证做完后，可以在这里回复“查询认证状态”看看结果。")
                ) -> Dialog:
    """A dialog that shows one step per message with 下一步 / 上一步 / 没看懂.

    ``intro`` (optional) is a first question, e.g. which kind of phone, whose options
    must go to ``steps[0].name``. The last step offers 做完了 / 还是不行 (``STILL_FAILING``,
    into the failure diagnosis) instead of 下一步.
    """

    async def finished(ctx: DialogContext) -> Step:
        return Finish([Reply(done_text)])

    async def trouble(ctx: DialogContext, text: str) -> Step:
        tip = guide_tip(text)
        if tip is None:
            return NotUnderstood()
        return Stay([Reply(tip + tr("\n弄好了回复“下一步”。"))])

    states: dict[str, State] = {}
    if intro is not None:
        states["intro"] = intro
        if intro.on_input is None and len(steps) > 1:
            second = steps[1].name

            async def already(ctx: DialogContext, text: str) -> Step:
                if re.search(r"下载好了|装好了|已经下载|已经装|有了|下好了|安装好了", text):
                    return Goto(second)
                return NotUnderstood()

            intro.on_input = already
            intro.may_go = (*intro.may_go, second)
    total = len(steps)
    for index, step in enumerate(steps):
        is_last = index == total - 1
        if is_last:
            forward = [Option(tr("做完了"), run=finished, words=("做完了", "成功了", "认证成功", "完成了", "好了")),
                       STILL_FAILING]
        else:
            forward = [Option(tr("下一步"), goto=steps[index + 1].name, set={"explain": None},
                              words=NEXT_WORDS)]
        options = [*forward,
                   Option(tr("上一步"), back=True, set={"explain": None}, words=("上一步", "返回", "回上一步")),
                   Option(tr("没看懂"), goto=step.name, set={"explain": step.name}, words=UNCLEAR_WORDS)]
        states[step.name] = State(prompt=_step_prompt(step, index + 1, total), options=options,
                                  on_input=trouble)
    return Dialog(name=name, title=title, states=states, entry_intents=entry_intents,
                  for_someone_else=for_someone_else)


__all__ = [
    "CERTIFY_DIALOG", "GuideStep", "IdFound", "certify_here", "done", "find_id", "find_phone",
    "finish_option", "has_dialog", "looks_like_question", "masked", "no",
    "walkthrough", "yes",
]


# Shared by certify, family and the reminders.
MENU_OPTIONS = MENU_LABELS
# The way out at the questions of certify and family.
TO_MENU = Option(tr("回主菜单"), run=to_main_menu, words=("不办了", "返回"), leaves=True)

NOT_ENROLLED = (tr("系统里还没有这位老人的人脸模型，所以暂时不能在这里刷脸认证。\n") + NO_MODEL
                + tr("建好后就能在这里刷脸认证了。也可以直接在窗口办理认证。"))


# ---------------------------------------------------------------- shared options

# The last step of every app walkthrough: leads into the failure diagnosis.
STILL_FAILING = Option(tr("还是不行"), start="cert_failed", intents=("cert_failed",),
                       words=("还是不行", "失败了", "不成功", "没通过", "不行"))

# Options several guided dialogs offer with the same words.
APPLY_HOME_VISIT = Option(tr("申请上门认证"), start="home_visit", intents=("method_home_visit",), words=("上门",))
