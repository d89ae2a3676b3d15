"""Which certification method suits me.

A few yes/no questions (abroad? smartphone? family to help? can leave home?) lead to a
recommendation, and each recommendation leads into its walkthrough. Also the two small
dialogs for the methods that need no walkthrough: big-data comparison and community
(social) service.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.core.facts import WHERE_OFFLINE
from bot.core.i18n import concat, tr
from bot.core.messages import Reply
from dialogs.app_guides import APP_ALIPAY, APP_QINGHAI
from dialogs.common import APPLY_HOME_VISIT, certify_here, fact, finish_option, heard, no, yes
from dialogs.engine import Dialog, DialogContext, Goto, NotUnderstood, Option, State, Stay, Step, once
from nlu.rules import normalise

YES_ABROAD = ("是", "对", "是的", "在", "在的", "在国外", "国外", "境外", "海外", "外国", "住国外")
NO_ABROAD = ("不是", "否", "在国内", "国内", "没有", "不在", "没在", "不在国外", "在青海", "在家", "在老家", "在本地")
# A short reply that starts with a negation ("不在", "没呢", "不方便") answers a yes/no question
# "no"; not knowing ("不知道", "不清楚", "没想好") is no answer.
_SHORT_NO = re.compile(r"^(?:不|没|别|否)(?!知道|清楚|确定|晓得|一定|好说|记得|想好|太清楚|太确定)\S{0,3}$")
BACK = Option(tr("上一个问题"), back=True, words=("上一个问题",))

# question -> (fact, where "yes" leads, where "no" leads)
_SKIPS = {"q_abroad": ("abroad", "rec_abroad", "q_phone"),
          "q_phone": ("smartphone", "rec_app", "q_family"),
          "q_family": ("family_help", "rec_family", "q_leave_home"),
          "q_leave_home": ("leave_home", "rec_offline", "rec_home_visit")}


# What they said in passing, confirmed when its question is skipped.
_HEARD = {("abroad", True): tr("您说老人住在国外。"), ("abroad", False): tr("您说老人在国内。"),
          ("smartphone", True): tr("您说老人会用手机。"), ("smartphone", False): tr("您说老人不会用手机。"),
          ("family_help", True): tr("您说家里有人能帮忙。"), ("family_help", False): tr("您说家里没人能帮忙。"),
          ("leave_home", True): tr("您说老人能出门。"), ("leave_home", False): tr("您说老人出门不方便。")}


def _skip(question: str) -> Callable[[DialogContext], Awaitable[Step | None]]:
    """Skip a question the person already answered in passing ("不会用手机")."""
    key, if_yes, if_no = _SKIPS[question]

    async def on_enter(ctx: DialogContext) -> Step | None:
        value = fact(ctx, key)
        if value is None:
            return None
        return Goto(if_yes if value else if_no, [Reply(_HEARD[key, bool(value)])])

    on_enter.__name__ = f"skip_{question}"
    return once(f"_asked_{question}")(on_enter)  # 返回 here asks it after all


def _remember(ctx: DialogContext, key: str, value: bool) -> None:
    known = dict(ctx.memory.get("facts") or {})
    known[key] = value
    ctx.memory["facts"] = known


def _answered(question: str, option: Option, value: bool) -> Option:
    """A yes/no option that also keeps the answer as a fact, so a later change of mind
    ("哦不对 其实我不太会用") re-runs the questions without asking this one again."""
    key = _SKIPS[question][0]
    target = option.goto

    async def run(ctx: DialogContext) -> Step:
        _remember(ctx, key, value)
        ctx.slots[f"_asked_{question}"] = True  # 返回 to it still asks it
        return Goto(str(target))

    run.__name__ = f"{question}_{'yes' if value else 'no'}"
    return replace(option, goto=None, run=run, may_go=(str(target),))


async def _reconsider(ctx: DialogContext, text: str) -> Step:
    """A changed answer at the recommendation: the questions again, with what they said now."""
    given = heard(ctx)
    said = {key: given[key] for key, _, _ in _SKIPS.values() if given.get(key) is not None}
    if not said:
        return NotUnderstood()
    for key, value in said.items():
        _remember(ctx, key, bool(value))
    for question in _SKIPS:
        ctx.slots.pop(f"_asked_{question}", None)
    ctx.slots.pop("_numbered", None)
    return Goto("q_abroad", [Reply(tr("好的，按您刚才说的，重新帮您挑一下："))])


async def _other_answer(ctx: DialogContext, text: str) -> Step:
    """At a question, the answer to a later one ("有人能帮忙" when asked about living abroad):
    kept and confirmed, and this question asked again; a changed earlier answer starts over."""
    given = heard(ctx)
    said = {key: bool(given[key]) for key, _, _ in _SKIPS.values() if given.get(key) is not None}
    if not said or any(ctx.slots.get(f"_asked_{q}") and key in said for q, (key, _, _) in _SKIPS.items()):
        return await _reconsider(ctx, text)  # nothing, or an earlier answer changed
    for key, value in said.items():
        _remember(ctx, key, value)
    return Stay([Reply(_HEARD[key, value]) for key, value in said.items()])


def _heard_answer(question: str) -> Callable[[DialogContext, str], Awaitable[Step]]:
    """Free words that answer the question ("有 我儿子会", "腿脚不好") lead on."""
    key, if_yes, if_no = _SKIPS[question]

    async def on_input(ctx: DialogContext, text: str) -> Step:
        value = heard(ctx).get(key)
        if value is None and _SHORT_NO.match(normalise(text)) and not heard(ctx):
            value = False
        if value is None:
            return await _other_answer(ctx, text)
        return Goto(if_yes if value else if_no)

    on_input.__name__ = f"answer_{question}"
    return on_input


# Questions are numbered as they are asked: a question skipped (answered in passing) takes no number.
ORDINALS = (tr("第1个问题："), tr("第2个问题："), tr("第3个问题："), tr("第4个问题："))


def _numbered(question: str, body: str) -> Callable[[DialogContext], Reply]:
    """The question with its number among those asked in this run ("第2个问题：…")."""

    def prompt(ctx: DialogContext) -> Reply:
        asked = [str(q) for q in ctx.slots.get("_numbered") or []]
        if question not in asked:
            asked.append(question)
            ctx.slots["_numbered"] = asked
        return Reply(concat(ORDINALS[asked.index(question)], body))

    prompt.__name__ = f"ask_{question}"
    return prompt


def _question(question: str, prompt: str, explain: str, if_yes: Option, if_no: Option) -> State:
    """A yes/no question: skipped when already answered in passing, answered by free words
    too; "yes" and "no" lead where ``_SKIPS`` says."""
    _, yes_state, no_state = _SKIPS[question]
    return State(on_enter=_skip(question), on_input=_heard_answer(question), explain=explain,
                 prompt=_numbered(question, prompt),
                 options=[_answered(question, replace(if_yes, goto=yes_state), True),
                          _answered(question, replace(if_no, goto=no_state), False), BACK])


@once("_intro_skipped")
async def _intro(ctx: DialogContext) -> Step | None:
    """Said something about the situation already: straight to the questions."""
    known = [key for key, _, _ in _SKIPS.values() if fact(ctx, key) is not None]
    return Goto("q_abroad") if known else None


async def _intro_answer(ctx: DialogContext, text: str) -> Step:
    """Their situation told instead of "帮我选方法" ("我不会用智能手机"): kept, and the
    questions begin (the answered ones skipped and confirmed)."""
    given = heard(ctx)
    said = {key: bool(given[key]) for key, _, _ in _SKIPS.values() if given.get(key) is not None}
    if not said:
        return NotUnderstood()
    for key, value in said.items():
        _remember(ctx, key, value)
    return Goto("q_abroad", [Reply(tr("好的，记下了。再问您几个简单的问题，说过的不再问："))])


BIGDATA_TEXT = (
    tr("“大数据比对”就是社保局自动核对老人最近的生活记录（比如看病、坐车、领补贴），"
    "能确认老人健在，就算认证过了，您什么都不用做。\n"
    "想知道是不是已经自动认证了，可以：在这里查一下认证状态；或者在“青海人社通”“掌上12333”里查认证记录；"
    "或者打 12333 电话问。快到期了还没有记录的话，就自己认证一次。"))

COMMUNITY_TEXT = (
    tr("“社会化服务认证”就是社区、村委会组织体检、文体活动时，工作人员顺便帮老人完成认证。"
    "可以问问所在社区或村委会最近有没有安排。\n"
    "高龄或行动不便的老人，还可以申请工作人员上门认证。"))


def _bigdata_state(choose: Option) -> State:
    return State(prompt=BIGDATA_TEXT, final=True, options=[
        Option(tr("查我的认证状态"), start="status_query", intents=("status_query",),
               words=("查询", "查一下", "认证状态", "查状态")),
        choose,
        finish_option(),
    ])


def _community_state(*extra: Option) -> State:
    return State(prompt=COMMUNITY_TEXT, final=True, options=[
        APPLY_HOME_VISIT,
        Option(tr("去社保局或银行办"), start="offline", intents=("method_offline",),
               words=("社保局", "银行", "线下")),
        *extra,
        finish_option(),
    ])


choose_method = Dialog(
    name="choose_method",
    title="选择认证方法",
    entry_intents=("choose_method", "how_to_certify"),
    states={
        "intro": State(
            on_enter=_intro, on_input=_intro_answer,
            prompt=(tr("我来帮您挑一个最合适的认证方法，只要回答几个简单的问题。\n"
                    "先说个好消息：很多老人不用自己动手，社保局会用“大数据比对”自动帮您认证。")),
            options=[
                Option(tr("帮我选方法"), goto="q_abroad", words=("选方法", "开始", "帮我选", "好的", "好")),
                Option(tr("我是不是已经自动认证了？"), goto="bigdata", intents=("method_bigdata",),
                       words=("大数据", "自动认证", "已经认证", "不用做")),
                certify_here(),
                finish_option(),
            ],
            may_go=("q_abroad",)),
        "bigdata": _bigdata_state(Option(tr("帮我选方法"), goto="q_abroad", words=("选方法", "帮我选"))),
        "q_abroad": _question(
            "q_abroad", tr("老人现在住在国外（或港澳台）吗？"),
            tr("这个问题是问：老人现在是不是住在外国（或者香港、澳门、台湾）。住在国内就回复 2。"),
            yes(tr("是，在国外"), words=YES_ABROAD), no(tr("不是，在国内"), words=NO_ABROAD)),
        "q_phone": _question(
            "q_phone", tr("老人自己会用智能手机吗？（比如会用微信视频聊天）"),
            tr("这个问题是问：老人自己会不会用智能手机，比如会不会用微信和家人视频。会就回复 1，不会就回复 2。"),
            yes(tr("会用")), no(tr("不会用"))),
        "q_family": _question(
            "q_family", tr("家里有没有人（比如子女）会用智能手机、能帮忙？"),
            tr("这个问题是问：家里有没有儿女或者别的亲人，会用智能手机、能帮老人弄。有就回复 1，没有就回复 2。"),
            yes(tr("有人能帮忙")), no(tr("没有人帮忙"))),
        "q_leave_home": _question(
            "q_leave_home", tr("老人能出门，去社保局或者银行吗？"),
            tr("这个问题是问：老人能不能自己（或者家人陪着）出门，去社保局或银行。能去就回复 1，去不了就回复 2。"),
            yes(tr("能出门")), no(tr("出不了门"))),
        "rec_abroad": State(
            final=True,
            prompt=(tr("住在国外的老人，不用回国：用外交部的“中国领事”手机应用就能刷脸认证。"
                    "我可以一步一步带您做。")),
            options=[Option(tr("带我一步一步做"), start="app_consular", words=("一步一步", "带我做", "好的")),
                     certify_here(), BACK, finish_option()]),
        "rec_app": State(
            on_input=_reconsider,
            prompt=tr("推荐用手机刷脸认证，在家就能做，几分钟就好。您想用哪个？"),
            options=[APP_QINGHAI,
                     Option(tr("掌上12333"), start="app_12333", words=("12333", "掌上")),
                     APP_ALIPAY,
                     certify_here(), BACK]),
        "rec_family": State(
            final=True,
            prompt=(tr("可以请家人帮忙：家人用自己的手机下载“青海人社通”，帮老人刷脸认证。"
                    "刷脸时要老人本人对着镜头。")),
            options=[Option(tr("带我一步一步做"), start="app_qinghai", words=("一步一步", "带我做", "好的")),
                     certify_here(),
                     Option(tr("还有别的办法吗"), goto="rec_offline", words=("别的办法", "其他办法")),
                     BACK]),
        "rec_offline": State(
            final=True,
            prompt=tr("建议就近去{where}，工作人员会当面帮您认证。", where=WHERE_OFFLINE),
            options=[Option(tr("要带什么、怎么办"), start="offline", words=("带什么", "怎么办", "材料")),
                     Option(tr("社区能办吗"), goto="rec_community", intents=("method_community",),
                            words=("社区", "村委会")),
                     BACK, finish_option()]),
        "rec_community": _community_state(BACK),
        "rec_home_visit": State(
            final=True,
            prompt=(tr("老人出不了门、家里也没人帮忙，可以申请工作人员上门认证（免费）。"
                    "我现在就可以帮您登记。")),
            options=[Option(tr("现在申请上门认证"), start="home_visit", words=("申请", "上门", "登记", "好的")),
                     Option(tr("先问问社区"), goto="rec_community", words=("社区",)),
                     BACK, finish_option()]),
    },
)

bigdata = Dialog(
    name="bigdata",
    title="大数据比对认证",
    entry_intents=("method_bigdata",),
    states={"bigdata": _bigdata_state(Option(tr("帮我选方法"), start="choose_method",
                                             words=("选方法", "帮我选")))},
)

community = Dialog(
    name="community",
    title="社区（社会化服务）认证",
    entry_intents=("method_community",),
    states={"community": _community_state()},
)

DIALOGS = (choose_method, bigdata, community)
