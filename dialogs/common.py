"""Pieces shared by the guided dialogs: yes/no options, step-by-step walkthroughs,
ID-number handling and a few plain texts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.errors import RateLimited
from bot.logs import mask_id_number
from bot.messages import Reply
from bot.pensioners import names_match
from bot.storage.models import Pensioner
from dialogs.engine import Dialog, DialogContext, Finish, Goto, Option, State, Step
from nlu import entities

YES_WORDS = ("是", "对", "是的", "对的", "嗯", "好", "好的", "有", "会", "能", "可以", "行",
             "会用", "有人", "能出门", "可以的")
# Longer negative words beat the positive ones they contain ("不会用" over "会用").
NO_WORDS = ("否", "不", "不是", "不对", "没有", "不会", "不能", "不行", "不可以", "不是的",
            "没", "没人", "不会用", "不太会", "没有人", "出不了", "不能出门", "没法出门")

CERTIFY_DIALOG = "certify"
CERTIFY_LABEL = "在这里刷脸认证"


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


def yes(label: str = "是", goto: str | None = None, words: tuple[str, ...] = YES_WORDS) -> Option:
    """A "yes" option matched by 是/对/会/能 and the affirm intent."""
    return Option(label, goto=goto, words=words, intents=("affirm",))


def no(label: str = "不是", goto: str | None = None, words: tuple[str, ...] = NO_WORDS) -> Option:
    """A "no" option matched by 不是/不会/没有 and the deny intent."""
    return Option(label, goto=goto, words=words, intents=("deny",))


async def done(ctx: DialogContext) -> Step:
    """Finish quietly; the router then shows the main menu."""
    return Finish()


def finish_option(label: str = "回主菜单") -> Option:
    return Option(label, run=done, words=("主菜单", "没有了", "没事了", "不用了", "结束"))


def looks_like_question(text: str) -> bool:
    """A message that asks something rather than answering (吗/怎么/什么/?)."""
    return bool(re.search(r"[?？吗呢]$|怎么|什么|为什么|哪里|多少|能不能|要不要|是不是|可不可以", text))


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


ID_INVALID = ("这个身份证号好像不对：应该是18位，最后一位可能是数字或X。"
              "请对着身份证再看一遍，重新发一次。")
ID_ASK = "请发一下老人的身份证号（18位，就在身份证正面最下面一行）。"


def masked(id_number: str) -> str:
    return mask_id_number(id_number)


NAME_PATTERN = re.compile(r"^[\u4e00-\u9fffA-Za-z·•. ]{2,20}$")


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
        pensioner = await services.registry.find(ctx.conversation.key, ctx.slots["id_number"])
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
              "做完了", "弄好了", "可以了", "登录了", "注册好了")
UNCLEAR_WORDS = ("没看懂", "看不懂", "不懂", "不明白", "没明白", "什么意思", "听不懂", "找不到",
                 "再说一遍", "说详细点")


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
            body = "换个说法：" + _text(step.again, ctx)
        else:
            body = _text(step.text, ctx)
        return Reply(f"第{number}步（共{total}步）：{body}")

    return prompt


def walkthrough(name: str, title: str, steps: list[GuideStep], *, entry_intents: tuple[str, ...] = (),
                intro: State | None = None, last_options: list[Option] | None = None,
                done_text: str = "太好了！认证做完后，可以在这里回复“查询认证状态”看看结果。"
                ) -> Dialog:
    """A dialog that shows one step per message with 下一步 / 上一步 / 没看懂.

    ``intro`` (optional) is a first question, e.g. which kind of phone, whose options
    must go to ``steps[0].name``. The last step offers 做完了 / 还是不行 instead of 下一步.
    """

    async def finished(ctx: DialogContext) -> Step:
        return Finish([Reply(done_text)])

    states: dict[str, State] = {}
    if intro is not None:
        states["intro"] = intro
    total = len(steps)
    for index, step in enumerate(steps):
        is_last = index == total - 1
        if is_last:
            forward = [Option("做完了", run=finished, words=("做完了", "成功了", "认证成功", "完成了", "好了")),
                       *(last_options or [])]
        else:
            forward = [Option("下一步", goto=steps[index + 1].name, set={"explain": None},
                              words=NEXT_WORDS)]
        options = [*forward,
                   Option("上一步", back=True, set={"explain": None}, words=("上一步", "返回", "回上一步")),
                   Option("没看懂", goto=step.name, set={"explain": step.name}, words=UNCLEAR_WORDS)]
        states[step.name] = State(prompt=_step_prompt(step, index + 1, total), options=options)
    start = "intro" if intro is not None else steps[0].name
    return Dialog(name=name, title=title, start=start, states=states, entry_intents=entry_intents)


def masked_memory_id(ctx: DialogContext) -> str | None:
    """The ID number this chat gave earlier (validated), if any."""
    value = ctx.memory.get("id_number")
    return str(value) if value else None


__all__ = [
    "CERTIFY_DIALOG", "GuideStep", "IdFound", "certify_here", "done", "find_id", "find_phone",
    "finish_option", "has_dialog", "looks_like_question", "masked", "masked_memory_id", "no",
    "walkthrough", "yes",
]
