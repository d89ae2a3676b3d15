"""A family member certifies on behalf of a pensioner (代他人认证, intent ``family_certification``).

relationship -> the pensioner's ID number (checksum) -> name (must match the registry; a
mismatch reveals nothing and retries are limited) -> enrolled? -> the per-identity yearly
limit -> what "in person" means and explicit consent (recorded with time and channel in a
:class:`ProxyLink` and the audit log) -> the ``certify`` dialog's selfie step as a proxy
attempt. The verdict is pushed later: on success ``dialogs/family_verdict.py`` tells the
next due date and this dialog asks whether to remind the family member (``reminder``); failures
get certify's advice ("请拍老人本人" for the wrong face) and its 3-attempt rule, then a
manual review whose case carries the proxy details.

A chat identity may act for at most ``family.max_pensioners_per_year`` pensioners a year
and can list (masked names) and remove its linked pensioners (``manage``). Removing a
pensioner it already sent a selfie for this year does not give the slot back, so removal
cannot be used to act for more pensioners. The links are records (``bot/records/proxy_links.py``).
The diagram is in ``dialogs/family.md``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.i18n import concat, join, tr
from bot.core.logs import mask_name as mask_name  # re-exported
from bot.core.messages import Reply
from bot.core.storage.models import Pensioner
from bot.records import proxy_links
from bot.records.events import Chat, FailureCause
from bot.records.events import Step as EventStep
from bot.records.reminders import subscribe
from dialogs.common import MENU_OPTIONS, NOT_ENROLLED, TO_MENU, already_certified, fact
from dialogs.engine import (
    ChatServices,
    Dialog,
    DialogContext,
    Finish,
    Goto,
    NotUnderstood,
    Option,
    StartDialog,
    State,
    Stay,
    Step,
    option_number,
)
from dialogs.identity import PENSIONERS, IdentityForm
from dialogs.menu import to_main_menu
from dialogs.reminders import due_text, yes_no
from nlu.entities import normalise_digits
from nlu.rules import normalise

NAME = "family"
RELATIONSHIPS = (tr("子女"), tr("配偶"), tr("其他亲属"), tr("其他"))  # option labels  # option labels
MANAGE = tr("管理我代认证的老人")
CONSENT = tr("本人已同意并在场")
NOT_PRESENT = tr("老人现在不在身边")
REMIND_YES = tr("提醒我")
REMIND_NO = tr("不用提醒")
_NEGATION = re.compile(r"不|没|别|未")

# Words a family member uses, mapped to the relationship of the family member to the
# pensioner. The pensioner's role ("我妈") means the caller is a child.
_RELATIONSHIP_WORDS: dict[str, tuple[str, ...]] = {
    "子女": ("子女", "儿子", "女儿", "闺女", "儿女", "孩子", "父亲", "母亲", "爸爸", "妈妈", "老爸",
           "老妈", "老爹", "老娘", "爹", "娘", "阿大", "阿妈", "爸", "妈", "父母", "老父亲",
           "老母亲"),
    "配偶": ("配偶", "老伴", "老伴儿", "老头子", "老头", "老婆子", "老太婆", "老公", "老婆", "爱人",
           "丈夫", "妻子", "媳妇", "老汉", "夫妻"),
    "其他亲属": ("其他亲属", "亲属", "亲戚", "孙子", "孙女", "外孙", "外孙女", "儿媳", "女婿", "侄子",
             "侄女", "外甥", "外甥女", "爷爷", "奶奶", "外公", "外婆", "姥爷", "姥姥", "公公",
             "婆婆", "岳父", "岳母", "丈人", "丈母娘", "老丈人", "哥哥", "姐姐", "弟弟", "妹妹",
             "舅舅", "姑姑", "叔叔", "阿姨", "祖父", "祖母", "外祖父", "外祖母"),
    "其他": ("其他", "朋友", "邻居", "同事", "保姆", "护工"),
}
# Tibetan (drafts, to be checked by a native speaker), whole words only: "ཨ་མ" (mother) is
# also the start of "ཨ་མདོ" (Amdo). A case ending may follow: ཨ་མའི, ཨ་མས, ཨ་མར.
_BO_WORDS = {
    "子女": ("ཨ་མ", "ཨ་མ་ལགས", "ཨ་ཕ", "ཨ་པ", "ཨ་ཕ་ལགས", "ཕ་ཁྱེད", "ཕ་མ", "ཡབ", "ཡུམ", "བུ", "བུ་མོ", "བུ་ཕྲུག"),
    "配偶": ("ཁྱོ་ག", "ཆུང་མ", "ཟླ་གྲོགས", "ཁྱོ་ཤུག", "བཟའ་ཟླ"),
    "其他亲属": ("མོ་ལགས", "ཨ་མྱེས", "ཨ་ཕྱི", "པོ་ལགས", "ཚ་བོ", "ཚ་མོ", "ཉེ་ཚན"),
}
_BO_RELATIONSHIP_PATTERNS = tuple(
    (re.compile(r"(?:^|(?<=[་།\s]))(?:" + "|".join(sorted(words, key=len, reverse=True))
                + r")(?:འི|ས|ར|་ལགས)?(?=[་།\s]|$)"), rel)
    for rel, words in _BO_WORDS.items())
_WORD_TO_RELATIONSHIP = {w: rel for rel, words in _RELATIONSHIP_WORDS.items() for w in words}
_RELATIONSHIP_PATTERN = re.compile("|".join(
    re.escape(w) for w in sorted(_WORD_TO_RELATIONSHIP, key=len, reverse=True)))

RELATIONSHIP_NOTED = tr("好的，您是老人的{relationship}。")
ASK_ID = tr("请输入老人的18位身份证号码。")
ASK_NAME = tr("请输入老人的姓名（和身份证上一样）。")
SUCCESS = (tr("认证成功！老人今年的养老待遇资格认证已经完成，养老金会照常发放。\n"
           "下次认证时间：{due}前后。"))
REMIND_QUESTION = tr("要不要我在到期前 {days} 天左右提醒您，帮老人按时认证？")


# ---------------------------------------------------------------- helpers


def relationship_of(text: str, found: list[Any] | None = None) -> str | None:
    """The caller's relationship from a phrase ("我是她女儿", "替我妈认证"), or None.

    NLU ``relationship`` entities (normalised values such as 母亲, 配偶) are used first.
    """
    for entity in found or []:
        if getattr(entity, "type", None) == "relationship":
            value = str(entity.value)
            if value in _WORD_TO_RELATIONSHIP:
                return _WORD_TO_RELATIONSHIP[value]
    match = _RELATIONSHIP_PATTERN.search(text or "")
    if match:
        return _WORD_TO_RELATIONSHIP[match.group(0)]
    return next((rel for pattern, rel in _BO_RELATIONSHIP_PATTERNS if pattern.search(text or "")), None)


# "我想给我妈认证", "替老伴办个认证": certifying for a relative named right after 给/帮/替
# ("我女儿帮我认证" names the helper, not the pensioner).
_FOR_RELATIVE_PATTERN = re.compile(
    r"(?:给|帮|替|为)(?:我|俺|咱)?(?:的|家)?(?:" + "|".join(
        re.escape(w) for w in sorted((*_WORD_TO_RELATIONSHIP, "老人", "家里老人", "家人", "老爷子", "老太太"),
                                     key=len, reverse=True) if w not in ("其他", "其他亲属", "亲属"))
    + r")们?[^，,。？?]{0,6}?(?:认证|刷脸|年审)")


def for_a_relative(text: str) -> bool:
    """The message asks to certify a relative ("给我妈认证"), not to be certified."""
    return _FOR_RELATIVE_PATTERN.search(text or "") is not None


def _tz(services: ChatServices) -> ZoneInfo:
    return ZoneInfo(services.settings.staff.timezone)


async def _acting_for(services: ChatServices, key: str) -> set[int]:
    tz = _tz(services)
    return await proxy_links.acting_for(services.db, tz, key, proxy_links.local_year(tz))


# ---------------------------------------------------------------- steps


async def _on_enter(ctx: DialogContext) -> Step | None:
    """"替我妈认证" already says the relationship; "管理..." goes to the list."""
    text = ctx.turn.msg.content
    if re.search(r"管理|移除|解除|删除", text):
        return Goto("manage")
    found = ctx.turn.parse.entities if ctx.turn.parse else []
    kept = fact(ctx, "relationship")  # said earlier in this chat ("我爸85了 起不来", then "帮家人认证")
    relationship = relationship_of(text, found) or (relationship_of(str(kept)) if kept else None)
    if relationship and ctx.frame.state == "relationship" and "relationship" not in ctx.slots:
        ctx.slots["relationship"] = relationship
        return Goto("ask_id", [Reply(RELATIONSHIP_NOTED.format(relationship=relationship))])
    return None


async def _on_relationship(ctx: DialogContext, text: str) -> Step:
    found = ctx.turn.parse.entities if ctx.turn.parse else []
    relationship = relationship_of(text, found)
    if relationship is None:
        return NotUnderstood(tr("请回复数字选择您和老人的关系，比如回复 1 表示您是老人的子女。"))
    ctx.slots["relationship"] = relationship
    return Goto("ask_id")


async def _on_id(ctx: DialogContext, text: str) -> Step:
    """The ID question; a relationship said again here ("老伴", "我是她女儿") is noted, not refused."""
    found = ctx.turn.parse.entities if ctx.turn.parse else []
    relationship = relationship_of(text, found)
    if relationship and not re.search(r"\d", normalise_digits(text)):
        ctx.slots["relationship"] = relationship
        return Stay([Reply(RELATIONSHIP_NOTED.format(relationship=relationship))])
    return await IDENTITY.take(ctx, text)


async def _ask_id_enter(ctx: DialogContext) -> Step | None:
    if not ctx.slots.get("started"):
        ctx.slots["started"] = True
        ctx.event("family_started", proxy_key=ctx.conversation.key,
                  relationship=ctx.slots.get("relationship"))
        chat = Chat(ctx.conversation.key, ctx.turn.msg.channel, proxy=True)
        await ctx.services.events.record(EventStep.STARTED, chat)
        given = IDENTITY.offered_id(ctx)
        if given:
            return await IDENTITY.use_offered_id(ctx, given, tr("收到老人的身份证号 {masked}。"))
    return None



async def _identified(ctx: DialogContext, pensioner: Pensioner) -> Step:
    services = ctx.services
    key = ctx.conversation.key
    pensioner_id = int(pensioner.id)
    ctx.slots["pensioner_id"] = pensioner_id
    target = f"pensioner:{pensioner_id}"
    ctx.event("family_identity_confirmed", target=target, proxy_key=key,
              relationship=ctx.slots.get("relationship"))
    notice = already_certified(ctx, pensioner)
    if not await services.registry.is_enrolled(pensioner_id):
        ctx.event("family_not_enrolled", target=target, proxy_key=key)
        await services.events.record(EventStep.FAILED, Chat(key, ctx.turn.msg.channel, proxy=True),
                                     cause=FailureCause.NO_MODEL, pensioner_id=pensioner_id)
        if notice is not None:  # the state of the pensioner first: nothing to do this year
            return Finish([Reply(notice, MENU_OPTIONS)])
        return Finish([Reply(NOT_ENROLLED, [tr("转人工"), tr("回主菜单")])])
    limit = services.settings.family.max_pensioners_per_year
    acting = await _acting_for(services, key)
    if pensioner_id not in acting and len(acting) >= limit:
        ctx.event("family_limit_reached", target=target, proxy_key=key, acting=len(acting),
                  limit=limit)
        return Goto("limit")
    if notice is not None:  # the state of the pensioner first
        return Goto("consent", [Reply(notice + tr("如果还是要再拍一次，也可以接着做。"))])
    return Goto("consent")


async def _consent(ctx: DialogContext) -> Step:
    services = ctx.services
    key = ctx.conversation.key
    pensioner_id = int(ctx.slots["pensioner_id"])
    limit = services.settings.family.max_pensioners_per_year
    acting = await _acting_for(services, key)
    if pensioner_id not in acting and len(acting) >= limit:  # another chat turn linked meanwhile
        return Goto("limit")
    now = datetime.now(UTC)
    channel = ctx.turn.msg.channel
    relationship = str(ctx.slots.get("relationship") or tr("其他"))
    link_id = await proxy_links.link_pensioner(services.db, _tz(services), key, pensioner_id,
                                               relationship, channel, now)
    ctx.event("family_consent", target=f"pensioner:{pensioner_id}", proxy_key=key,
              relationship=relationship, consent_at=now.isoformat(), consent_channel=channel,
              link_id=link_id)
    local = now.astimezone(_tz(services))
    at = tr("{month}月{day}日 {local}", month=local.month, day=local.day, local=local.strftime("%H:%M"))
    said = tr("好的，已经记下老人本人同意并在场（北京时间{at}）。", at=at)
    return StartDialog("certify", [Reply(said)], slots={
        "pensioner_id": pensioner_id, "id_number": ctx.slots.get("id_number"), "proxy": True,
        "relationship": relationship, "consent_at": now.isoformat(), "consent_channel": channel,
        "link_id": link_id})


async def _not_present(ctx: DialogContext) -> Step:
    ctx.event("family_not_present", target=f"pensioner:{ctx.slots.get('pensioner_id')}",
              proxy_key=ctx.conversation.key)
    return Finish([Reply(tr("没关系，等老人在身边的时候再来办，回复“帮家人认证”就可以重新开始。\n"
                            "老人行动不便的，也可以申请工作人员上门认证。"), MENU_OPTIONS)])


async def _on_consent(ctx: DialogContext, text: str) -> Step:
    if _NEGATION.search(text):
        return await _not_present(ctx)
    if re.search(r"同意|在场|在身边|在旁边", text):
        return await _consent(ctx)
    return NotUnderstood(tr("请回复 1 表示老人本人同意并且就在身边。"))


async def _manage_enter(ctx: DialogContext) -> Step | None:
    links = await proxy_links.linked_pensioners(ctx.services.db, ctx.conversation.key)
    if not links:
        return Finish([Reply(tr("您现在没有代认证的老人。要帮老人认证，请回复“帮家人认证”。"), MENU_OPTIONS)])
    ctx.slots["links"] = [[pid, masked] for pid, masked, _ in links]
    ctx.slots["link_labels"] = [[masked, relationship] for _, masked, relationship in links]
    return None


def _link_label(label: Any) -> tuple[str, ...]:
    """"张*兰（子女）": the masked name and the relationship (a catalog label, translated)."""
    if isinstance(label, list | tuple) and len(label) == 2:
        return str(label[0]), "（", str(label[1]), "）"
    return (str(label),)  # kept by an older version of this dialog


def _manage_prompt(ctx: DialogContext) -> Reply:
    labels = list(ctx.slots.get("link_labels") or [])
    lines = join("\n", [concat(f"{i}. ", *_link_label(label)) for i, label in enumerate(labels, 1)])
    options = [tr("移除 {name}", name=pair[1]) for pair in ctx.slots.get("links") or []] + [tr("回主菜单")]
    return Reply(tr("您代认证的老人：\n{lines}\n要移除哪一位，请回复前面的数字。"
                    "移除以后不再提醒您，也不能再替这位老人认证，除非重新办理。", lines=lines), options)


async def _on_manage(ctx: DialogContext, text: str) -> Step:
    links = list(ctx.slots.get("links") or [])
    number = option_number(text)
    cleaned = normalise(text)
    if number is None:
        for index, (_, masked) in enumerate(links, 1):
            if cleaned in (normalise(tr("移除 {masked}", masked=masked)), normalise(masked)):
                number = index
    if number == len(links) + 1 or (number is None and re.search(r"菜单|返回|不用|算了", text)):
        return await to_main_menu(ctx)
    if number is None or not 1 <= number <= len(links):
        return NotUnderstood(tr("请回复要移除的老人前面的数字。"))
    ctx.slots["remove"] = links[number - 1]
    return Goto("confirm_remove")


async def _remove(ctx: DialogContext) -> Step:
    pensioner_id, masked = ctx.slots["remove"]
    key = ctx.conversation.key
    removed = await proxy_links.remove_link(ctx.services.db, key, int(pensioner_id))
    ctx.event("family_unlink", target=f"pensioner:{pensioner_id}", proxy_key=key, links=removed)
    return Finish([Reply(tr("已经移除 {name}。还有什么可以帮您？", name=masked), MENU_OPTIONS)])


async def _remind(ctx: DialogContext, opt_in: bool) -> Step:
    link_id = ctx.slots.get("link_id")
    if link_id is not None:
        await proxy_links.set_reminder(ctx.services.db, int(link_id), opt_in)
    if opt_in and ctx.slots.get("pensioner_id"):  # the subscription the reminders are sent for
        await subscribe(ctx.services.db, ctx.conversation.key, int(ctx.slots["pensioner_id"]), "family",
                        ctx.conversation.language)
    ctx.event("family_reminder", target=f"pensioner:{ctx.slots.get('pensioner_id')}",
              proxy_key=ctx.conversation.key, link_id=link_id, opt_in=opt_in)
    days = ctx.services.settings.reminders.days_before
    if opt_in:
        text = tr("好的，我会在 {due} 前 {days} 天左右提醒您。还有什么可以帮您？", due=due_text(ctx), days=days)
    else:
        text = tr("好的，不提醒您。记得在 {due} 前后帮老人再认证一次。还有什么可以帮您？", due=due_text(ctx))
    return Finish([Reply(text, MENU_OPTIONS)])


_remind_yes, _remind_no, _on_reminder = yes_no(_remind, tr("要提醒请回复 1，不用提醒请回复 2。"),
                                               no=_NEGATION, yes=re.compile(r"提醒|要|好|可以|行"))


def _remind_prompt(ctx: DialogContext) -> Reply:
    return Reply(REMIND_QUESTION.format(days=ctx.services.settings.reminders.days_before))


IDENTITY = IdentityForm("family", identified=_identified, retry_state="ask_id",
                        whose=PENSIONERS, menu_options=MENU_OPTIONS,
                        record_steps=True)


def _limit_prompt(ctx: DialogContext) -> Reply:
    return Reply(tr("为了防止冒领养老金，一个账号一年最多替 {limit} 位老人办认证，您今年已经替 {limit} 位老人办过了。\n"
                    "如果有老人不再需要您代办，可以在“管理我代认证的老人”里移除（今年已经替他刷过脸的仍然算在内）；"
                    "也可以让老人到社区服务点办理。", limit=ctx.services.settings.family.max_pensioners_per_year))


family = Dialog(
    name=NAME,
    title="帮家人认证",
    entry_intents=("family_certification",),
    states={
        "relationship": State(
            prompt=tr("好的，我来帮您替家里老人做养老待遇资格认证（代他人认证）。\n"
                      "请先告诉我：您是老人的什么人？"),
            on_enter=_on_enter, on_input=_on_relationship,
            options=[*(Option(rel, goto="ask_id", set={"relationship": rel}) for rel in RELATIONSHIPS),
                     Option(MANAGE, goto="manage", words=("管理", "移除", "解除")), TO_MENU],
            may_go=("ask_id", "manage")),
        "ask_id": IDENTITY.id_question(ASK_ID, on_input=_on_id, on_enter=_ask_id_enter, options=[TO_MENU],
                                       may_go=("ask_name", "mismatch", "limit", "consent", "end")),
        "ask_name": IDENTITY.name_question(ASK_NAME, options=[TO_MENU],
                                           may_go=("ask_id", "mismatch", "limit", "consent", "end")),
        "mismatch": State(prompt=IDENTITY.mismatch_final, options=IDENTITY.mismatch_options()),
        "limit": State(prompt=_limit_prompt, options=[
            Option(MANAGE, goto="manage", words=("管理", "移除")),
            Option(tr("回主菜单"), run=to_main_menu, words=("菜单", "不用"))]),
        "consent": State(prompt=tr("核对好了。刷脸之前请您看清楚：\n"
                                   "1. 老人本人必须在场，而且同意由您帮忙认证；\n"
                                   "2. 要拍的是老人的脸，而且是现在当场拍，不能用以前的照片，也不能拍您自己；\n"
                                   "3. 您拿着手机，让老人正对镜头，脸上不要有遮挡，在光线亮的地方拍。\n"
                                   "老人同意并且就在身边吗？"),
                         on_input=_on_consent, options=[
            Option(CONSENT, run=_consent, words=("已同意并在场", "同意并在场")),
            Option(NOT_PRESENT, run=_not_present, words=("不在身边", "不在")),
            TO_MENU], may_go=("certify", "limit")),
        "manage": State(prompt=_manage_prompt, on_enter=_manage_enter, on_input=_on_manage,
                        may_go=("confirm_remove", "end")),
        "confirm_remove": State(
            prompt=lambda ctx: Reply(tr("确定以后不再替 {name} 认证吗？", name=(ctx.slots.get("remove") or ["", ""])[1])),
            options=[Option(tr("确定移除"), run=_remove, words=("确定", "移除")),
                     Option(tr("不移除"), goto="manage", words=("不移除", "不要", "算了"))]),
        "reminder": State(prompt=_remind_prompt, on_input=_on_reminder, options=[
            Option(REMIND_YES, run=_remind_yes, intents=("affirm",), words=("到时候提醒我",)),
            Option(REMIND_NO, run=_remind_no, intents=("deny",))], may_go=("end",)),
    },
)
