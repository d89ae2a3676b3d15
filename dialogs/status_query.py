"""Has the pensioner certified, and when is the next one due?

Asks for the ID number (checksum validated; one given earlier in this chat is reused)
and the name, then looks the pensioner up (rate limited). Nothing about an ID is
revealed unless the name matches: "not found" and "name does not match" get the same
answer, and after a few wrong names the query stops.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.errors import RateLimited, StorageUnavailable
from bot.core.i18n import tr
from bot.core.messages import Reply
from bot.core.storage.models import Pensioner
from bot.records.pensioners import names_match
from dialogs.common import (
    CERTIFY_DIALOG,
    CERTIFY_LABEL,
    ID_ASK,
    finish_option,
    format_date,
    heard,
    looks_like_question,
    masked,
)
from dialogs.engine import (
    Dialog,
    DialogContext,
    Finish,
    Goto,
    NotUnderstood,
    Option,
    State,
    Stay,
    Step,
    once,
)
from dialogs.identity import CHECKED_IDENTITY, NAME_INVALID, IdentityForm

MAX_NAME_TRIES = 3
NO_MATCH = (tr("没有查到和这个身份证号、姓名都对得上的认证记录。请看看：\n"
            "1）身份证号有没有输错；\n"
            "2）姓名是不是和身份证上一模一样。\n"
            "都没错的话，可能是社保登记的信息有出入，请带身份证到当地社保局核对，或者打 12333 问。"))


def _day(value: date) -> str:
    return format_date(value)


@once("_id_reused")
async def _reuse_id(ctx: DialogContext) -> Step | None:
    """An ID number this message or this chat already gave is used instead of asked for."""
    if ctx.slots.get("id_number"):
        return None
    given = heard(ctx).get("id_number")
    if given:
        ctx.slots["id_number"] = given
        ctx.memory["id_number"] = given
        return Goto("ask_name", [Reply(tr("收到身份证号 {masked}。", masked=masked(given)))])
    known = ctx.memory.get("id_number")
    if known:
        ctx.slots["id_number"] = known
        checked = ctx.memory.get(CHECKED_IDENTITY)
        if isinstance(checked, dict) and checked.get("id_number") == known:
            ctx.slots["_opening_name"] = checked.get("name")  # matched before: not asked again
        return Goto("ask_name", [Reply(tr("用您刚才给的身份证号 {masked} 来查。", masked=masked(known)))])
    return None


class StatusIdentity(IdentityForm):
    """The identity form with the status query's answers: the same words for "not found"
    and "name does not match", and the query stops after a few wrong names."""

    async def validate_id_number(self, value: Any, ctx: DialogContext) -> str:
        number = await super().validate_id_number(value, ctx)
        ctx.memory["id_number"] = number
        return number

    async def refuse_id(self, ctx: DialogContext, text: str) -> Step:
        if looks_like_question(text):
            return NotUnderstood(hint=tr("我们正在查询认证状态。") + ID_ASK)
        return Stay([Reply(tr("需要18位的身份证号才能查。"))])

    async def refuse_name(self, ctx: DialogContext, text: str) -> Step:
        if looks_like_question(text):
            return NotUnderstood(hint=tr("我们正在查询认证状态。请发一下老人的姓名。"))
        return Stay([Reply(NAME_INVALID)])

    async def lookup(self, ctx: DialogContext) -> Pensioner | Step:
        id_number = str(ctx.slots["id_number"])
        try:
            pensioner = await ctx.services.registry.find(ctx.conversation.key, id_number,
                                                         client_address=ctx.turn.msg.client_address)
        except RateLimited as limited:
            return Finish([Reply(limited.user_message)])
        except StorageUnavailable:
            return Stay([Reply(tr("系统暂时查不了，请稍后再试。"))])
        ctx.event("status_query", target=f"id:{masked(id_number)}")
        if pensioner is None or not names_match(str(ctx.slots["name"]), pensioner.name):
            try:
                await ctx.services.registry.record_name_mismatch(id_number)
            except StorageUnavailable:
                return Stay([Reply(tr("系统暂时查不了，请稍后再试。"))])
            tries = int(ctx.slots.get("name_tries", 0)) + 1
            ctx.slots["name_tries"] = tries
            if tries >= MAX_NAME_TRIES:
                return Finish([Reply(NO_MATCH), Reply(
                    tr("为了保护老人的信息，这次先不查了。需要帮忙的话回复“转人工”。"))])
            return Stay([Reply(NO_MATCH), Reply(tr("可以重新发姓名，或者选“换个身份证号”。"))])
        return pensioner


async def _identified(ctx: DialogContext, pensioner: Pensioner) -> Step:
    ctx.memory["pensioner_name"] = pensioner.name
    # "那我现在认证": certify or the family flow take these instead of asking again
    ctx.memory[CHECKED_IDENTITY] = {"id_number": str(pensioner.id_number), "name": pensioner.name}
    ctx.slots["certified_at"] = pensioner.certified_at.isoformat() if pensioner.certified_at else None
    ctx.slots["next_due"] = pensioner.next_due.isoformat() if pensioner.next_due else None
    ctx.slots["suspended"] = pensioner.status == "suspended"
    ctx.slots["enrolled"] = await ctx.services.registry.is_enrolled(int(pensioner.id))
    return Goto("result")


IDENTITY = StatusIdentity("status_query", identified=_identified)


async def _other_id(ctx: DialogContext) -> Step:
    ctx.slots["id_number"] = None
    ctx.memory.pop("id_number", None)
    return Goto("ask_id")



def _can_selfie(ctx: DialogContext) -> bool:
    """A selfie is offered only when the dialog exists and the pensioner has a face model."""
    return CERTIFY_DIALOG in ctx.services.dialogs.dialogs and bool(ctx.slots.get("enrolled"))


def _result(ctx: DialogContext) -> Reply:
    certified = ctx.slots.get("certified_at")
    due = ctx.slots.get("next_due")
    beijing = ZoneInfo(ctx.services.settings.staff.timezone)
    today = datetime.now(UTC).astimezone(beijing).date()
    if not certified:
        return Reply(tr("系统里还没有这位老人的认证记录。请尽快认证一次，我可以帮您。"))
    moment = datetime.fromisoformat(certified)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    done = moment.astimezone(beijing).date()
    text = tr("查到了：这位老人在 {day} 完成了认证。", day=_day(done))
    if due:
        next_due = date.fromisoformat(due)
        if next_due < today or ctx.slots.get("suspended"):
            text += tr("下次应在 {day} 前认证，已经过期了，养老金可能会暂停，请尽快补认证。", day=_day(next_due))
        else:
            text += tr("下次请在 {day} 前再认证。", day=_day(next_due))
    return Reply(text)


status_query = Dialog(
    name="status_query",
    title="查询认证状态",
    entry_intents=("status_query",),
    states={
        "ask_id": IDENTITY.id_question(ID_ASK, options=[finish_option(tr("不查了"))], on_enter=_reuse_id,
                                       may_go=("ask_name",)),
        "ask_name": IDENTITY.name_question(
            prompt=tr("为了保护老人的信息，请再发一下老人的姓名，用来核对。"),
            options=[Option(tr("换个身份证号"), run=_other_id, words=("换个身份证", "换一个", "号码错了", "输错了"),
                            may_go=("ask_id",)),
                     finish_option(tr("不查了"))],
            may_go=("result", "end")),
        "result": State(prompt=_result, final=True, options=[
            Option(tr("怎么认证"), start="choose_method", intents=("how_to_certify",), words=("怎么认证",)),
            Option(tr("过期了怎么办"), start="missed_deadline", intents=("missed_deadline",),
                   words=("过期", "停发")),
            Option(CERTIFY_LABEL, start=CERTIFY_DIALOG, when=_can_selfie, intents=("certify_now",),
                   words=("刷脸认证", "在这里认证", "这里刷脸")),
            finish_option()]),
    },
)

DIALOGS = (status_query,)
