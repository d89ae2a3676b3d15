"""Request a home visit (上门认证).

A form collects the pensioner's name, ID number (checksum validated), address, phone
and the reason; one message may carry all of it. The user confirms, the request is
stored in SQL (``HomeVisitRequest``) and answered with a reference number. When the
database is down the user is asked to try again later and nothing is lost: the
answers stay in the conversation (Redis) until the request is stored.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from bot.core.errors import RateLimited, StorageUnavailable
from bot.core.i18n import concat, join, tr
from bot.core.messages import Reply
from bot.core.storage.models import HomeVisitRequest
from bot.records.pensioners import names_match
from dialogs.common import fact, find_id, find_phone, heard, looks_like_question, masked
from dialogs.engine import (
    Dialog,
    DialogContext,
    Finish,
    Form,
    Goto,
    Invalid,
    NotUnderstood,
    Option,
    State,
    Stay,
    Step,
)
from dialogs.identity import IdentityForm
from nlu.entities import extract_address, normalise_digits, plausible_name
from nlu.entities import extract_name as entities_name

IDENTITY = IdentityForm("home_visit")  # its validators; the registry check is in submit
SLOT_LABELS = {"name": tr("姓名"), "id_number": tr("身份证号"), "address": tr("住址"), "phone": tr("电话"),
               "reason": tr("原因")}
_LABELLED = {
    "name": re.compile(r"(?:姓名|名字|老人叫|我叫|叫)[:：是\s]*([\u4e00-\u9fa5·]{2,10})"),
    "address": re.compile(r"(?:住址|地址|家住|住在)[:：是\s]*([^，,；;\n。\s]{4,})"),
    "reason": re.compile(r"(?:原因|因为)[:：是\s]*([^；;\n。]{2,})"),
}
_ADDRESS_HINT = re.compile(r"[省市县区州镇乡村路街巷号栋楼室]|小区|单元|社区")
_REASON_HINT = re.compile(r"行动不便|不方便|瘫|卧床|生病|病|残疾|住院|腿|走不了|走不动|下不了|下不来|起不来|高龄|年纪大|"
                          r"岁|失能|出不了门|中风|偏瘫|不能出门|痴呆|糊涂|骨折|手术|轮椅")
_NAME = re.compile(r"^[\u4e00-\u9fa5·]{2,10}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_SEPARATORS = re.compile(r"[，,；;\n。\s]+")


class HomeVisitForm(Form):
    """The slots of a home-visit request, with per-slot validation."""

    slots = ("name", "id_number", "address", "phone", "reason")

    def requested(self, ctx: DialogContext) -> str | None:
        if not ctx.slots.get("_prefilled"):
            # Things this chat already told us are not asked again.
            ctx.slots["_prefilled"] = True
            for slot, key in (("id_number", "id_number"), ("name", "pensioner_name")):
                if ctx.memory.get(key) and not ctx.slots.get(slot):
                    ctx.slots[slot] = ctx.memory[key]
            reason = fact(ctx, "reason")  # "我爸在床上起不来" said before asking for the visit
            if reason and not ctx.slots.get("reason"):
                ctx.slots["reason"] = str(reason)
        return super().requested(ctx)

    def ask(self, ctx: DialogContext) -> list[Reply]:
        replies = super().ask(ctx)
        if replies and not ctx.slots.get("_intro"):
            ctx.slots["_intro"] = True
            known = _heard_slots(ctx, [slot for slot in self.slots if ctx.slots.get(slot)])
            intro = tr("好的，我帮您登记上门认证，要问老人的姓名、身份证号、住址、电话和原因。")
            if known:
                intro += tr("您刚才说过的就不再问了（{known}）。", known=join("，", known))
            else:
                intro += tr("可以一条一条回答，也可以一次都发给我。")
            replies[0] = Reply(intro + "\n" + replies[0].text, replies[0].options)
        return replies

    async def prefill(self, ctx: DialogContext) -> list[Reply]:
        """What the opening message said ("她叫王秀英，卧床三年了") is kept, not asked again."""
        given = heard(ctx)
        for slot in self.slots:
            if slot in given and not ctx.slots.get(slot):
                try:
                    ctx.slots[slot] = await self._validate(slot, given[slot], ctx)
                except Invalid:
                    continue
        return []

    questions = {
        "name": tr("先请告诉我老人的姓名。"),
        "id_number": tr("请发一下老人的身份证号（18位，在身份证正面最下面一行）。"),
        "address": tr("老人住在哪里？请写详细一点，比如：西宁市城东区某某路12号3单元201。"),
        "phone": tr("留一个能联系上的电话吧（手机或座机都行），工作人员上门前会先打电话。"),
        "reason": tr("最后一个问题：老人为什么出不了门？比如：卧床、行动不便、生病住院。"),
    }

    # -- extraction: several slots from one message
    def extract(self, ctx: DialogContext, text: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        rest = normalise_digits(text)
        ids = find_id(ctx, text)
        if ids.valid:
            found["id_number"] = ids.valid
        elif ids.invalid:
            found["id_number"] = "invalid"
        phone = find_phone(ctx, text)
        if phone:
            found["phone"] = phone
        rest = re.sub(r"\d{15,17}[\dXx]?", " ", rest)
        rest = re.sub(r"(?<!\d)1[3-9]\d{9}(?!\d)", " ", rest)
        rest = re.sub(r"(?:身份证号?码?|电话|手机号?)[:：是]?", " ", rest)
        requested = self.requested(ctx)
        if requested == "reason" and not found and _REASON_HINT.search(text):
            return {"reason": text.strip()}  # "瘫痪 卧床" is the reason, whole
        for slot, pattern in _LABELLED.items():
            match = pattern.search(rest)
            if match:
                value = match.group(1).strip()
                if slot == "name":
                    value = entities_name(match.group(0)) or ""
                if value:
                    found.setdefault(slot, value)
                    rest = rest.replace(match.group(0), " ")
        address = extract_address(rest)
        if address and "address" not in found:
            found["address"] = address
            rest = rest.replace(address, " ")
        for part in (p.strip() for p in _SEPARATORS.split(rest)):
            if not part:
                continue
            if "address" not in found and _ADDRESS_HINT.search(part) and len(part) >= 4 \
                    and not _REASON_HINT.search(part):
                found["address"] = part
            elif "reason" not in found and _REASON_HINT.search(part):
                found["reason"] = part
            elif "name" not in found and plausible_name(part) and len(part) <= 4:
                found["name"] = part
        if requested and requested not in found and not found and text.strip():
            found[requested] = text.strip()
        single = len([p for p in _SEPARATORS.split(text.strip()) if p]) == 1
        if (requested in ("name", "address") and requested not in found and single
                and not set(found) & {"id_number", "phone"}
                and not (requested == "address" and "reason" in found)):
            # One short answer to the question asked is that answer (checked as such), not
            # another slot: "卧床" at the name question is refused as a name.
            return {requested: text.strip()}
        if (requested == "phone" and "phone" not in found and "address" not in found
                and re.fullmatch(r"[\d\-\s]+", text.strip())):
            found["phone"] = text.strip()
        return found

    # -- validation
    async def validate_name(self, value: Any, ctx: DialogContext) -> str:
        return await IDENTITY.validate_name(value, ctx)  # the one identity form's rule

    async def validate_id_number(self, value: Any, ctx: DialogContext) -> str:
        number = await IDENTITY.validate_id_number(value, ctx)
        ctx.memory["id_number"] = number
        return number

    async def validate_address(self, value: Any, ctx: DialogContext) -> str:
        address = re.sub(r"^(?:应该是|改成|改为|换成|是)", "", str(value).strip())
        bare = re.sub(r"^(?:家住|住在|住|在)", "", address)  # "住湟中鲁沙尔镇": the place
        address = bare if len(bare) >= 4 else address
        corrected = _corrected_address(str(ctx.slots.get("address") or ""), address)
        if corrected:
            return corrected  # "地址写错了 是城西区": that part of the address given before
        if len(address) < 4 or looks_like_question(address):
            raise Invalid(tr("地址请写详细一点，比如：西宁市城东区某某路12号3单元201。"))
        return address[:200]

    async def validate_phone(self, value: Any, ctx: DialogContext) -> str:
        phone = "".join(str(value).split())
        digits = normalise_digits(phone)
        if re.fullmatch(r"1[3-9]\d{9}", digits) or _LANDLINE.match(digits):
            return phone[:20]
        raise Invalid(tr("这个电话号码好像不对。手机号是11位数字，座机请带区号，比如 0971-1234567。"))

    async def validate_reason(self, value: Any, ctx: DialogContext) -> str:
        reason = str(value).strip()
        if len(reason) < 2:
            raise Invalid(tr("请简单说一下原因，比如：卧床、行动不便。"))
        return reason[:200]

    async def fill(self, ctx: DialogContext, text: str) -> Step:
        before = {slot: ctx.slots.get(slot) for slot in self.slots}
        requested = self.requested(ctx)
        step = await super().fill(ctx, text)
        changed = [slot for slot in self.slots if ctx.slots.get(slot) not in (None, "", before[slot])]
        if not changed and looks_like_question(text):
            # A question, not an answer: let the router answer it and come back here.
            return NotUnderstood(hint=tr("我们正在登记上门认证。{text}", text=self.ask(ctx)[0].text))
        if isinstance(step, Stay) and ctx.slots.get("name") and ctx.slots.get("id_number"):
            mismatch = await self._check_pair(ctx)  # said as soon as both are known, not at the end
            if mismatch is not None:
                return mismatch
        if isinstance(step, Stay) and set(changed) - {requested}:
            # More than the question asked: what was taken is said before the next question.
            step.replies.insert(0, Reply(tr("记下了：{known}。", known=join("，", _heard_slots(ctx, changed)))))
        return step

    async def _check_pair(self, ctx: DialogContext) -> Step | None:
        """A name that does not match a registered ID number is asked again (each pair is
        looked up once: lookups count against the chat's limit)."""
        pair = [str(ctx.slots["id_number"]), str(ctx.slots["name"])]
        if ctx.slots.get("_pair_checked") == pair:
            return None
        try:
            pensioner = await ctx.services.registry.find(ctx.conversation.key, pair[0],
                                                         client_address=ctx.turn.msg.client_address)
        except RateLimited as limited:
            return Finish([Reply(limited.user_message)])
        except StorageUnavailable:
            pensioner = None  # an unknown ID (or no registry) does not block the request
        if pensioner is not None and not names_match(pair[1], pensioner.name):
            ctx.slots["name"] = None
            ctx.event("home_visit_name_mismatch", target=f"id:{masked(pair[0])}")
            return Stay([Reply(tr("姓名和身份证号对不上。请再核对一下老人的姓名，和身份证上写的一模一样。"))])
        ctx.slots["_pair_checked"] = pair
        return None

    async def submit(self, ctx: DialogContext) -> Step:
        """Before the summary: the name and ID number checked together (if not yet)."""
        return await self._check_pair(ctx) or Goto("confirm")


FORM = HomeVisitForm()

# One part of an address: a place name and its unit ("城西区", "八一路", "12号").
_ADDRESS_UNIT_RE = r"(?:省|自治州|州|市|县|区|镇|乡|村|社区|小区|路|街|巷|号|栋|单元|室)"
_ADDRESS_PART = re.compile(r"[\u4e00-\u9fff\d]{1,8}?" + _ADDRESS_UNIT_RE)


def _corrected_address(before: str, part: str) -> str | None:
    """The address given before with one part replaced ("城东区" -> "城西区"), when ``part``
    is just one part whose unit the address has; else None."""
    if not before or not _ADDRESS_PART.fullmatch(part):
        return None
    unit = re.sub(r"^[\u4e00-\u9fff\d]*?(?=" + _ADDRESS_UNIT_RE + "$)", "", part)
    for match in _ADDRESS_PART.finditer(before):
        if match.group(0).endswith(unit) and match.group(0) != part:
            return before[:match.start()] + part + before[match.end():]
    return None


def _heard_slots(ctx: DialogContext, slots: list[str]) -> list[str]:
    """"姓名：马福海", "身份证号：6321…0019": the given slots as the person can check them."""
    return [concat(SLOT_LABELS[slot], "：", masked(str(ctx.slots[slot])) if slot == "id_number"
                   else str(ctx.slots[slot])) for slot in slots]


def _summary(ctx: DialogContext) -> Reply:
    s = ctx.slots
    return Reply(tr("请核对一下：\n姓名：{name}\n身份证号：{masked}\n住址：{address}\n电话：{phone}\n原因：{reason}\n都对的话回复 1 提交。", name=s.get('name'), masked=masked(str(s.get('id_number') or '')), address=s.get('address'), phone=s.get('phone'), reason=s.get('reason')))


def _reference() -> str:
    return f"SM{datetime.now(UTC):%Y%m%d}{secrets.token_hex(3).upper()}"


async def _submit(ctx: DialogContext) -> Step:
    s = ctx.slots
    reference = _reference()
    try:
        async with ctx.services.db.session() as session:
            session.add(HomeVisitRequest(
                reference=reference, pensioner_name=s["name"], id_number=s["id_number"],
                address=s["address"], phone=s["phone"], reason=s["reason"],
                channel=ctx.conversation.channel, chat_user=ctx.conversation.user_id))
    except StorageUnavailable:
        return Goto("retry")
    ctx.memory["id_number"] = s["id_number"]
    ctx.memory["pensioner_name"] = s["name"]
    ctx.event("home_visit_requested", target=f"home_visit:{reference}",
              id_number=masked(s["id_number"]))
    return Finish([Reply(
        tr("已经登记好了！您的登记编号是 {reference}，请记下来。\n接下来：社保工作人员会打您留的电话，和您约上门的时间。上门时请准备好老人的身份证和社保卡，老人本人要在家。\n如果想问进度，回复“转人工”并报上登记编号就行。", reference=reference))])


async def _cancel(ctx: DialogContext) -> Step:
    return Finish([Reply(tr("好的，这次没有提交。需要的时候随时再找我。"))])


# Words around a correction ("电话错了 是138…", "名字写错了，应该是马福海"), dropped before reading it.
_CORRECTION = re.compile(r"不对|写错了|输错了|弄错了|错了|改成|改为|换成|应该是|要改|改一下|是")


async def _corrections(ctx: DialogContext) -> list[str]:
    """New values this message gives for slots already filled; the labels of those changed."""
    text = _CORRECTION.sub(" ", ctx.turn.msg.content or "")
    changed = []
    for slot, value in FORM.extract(ctx, text).items():
        try:
            value = await FORM._validate(slot, value, ctx)
        except Invalid:
            continue
        if value != ctx.slots.get(slot):
            ctx.slots[slot] = value
            changed.append(SLOT_LABELS[slot])
    return changed


async def _correct_or_edit(ctx: DialogContext) -> Step:
    """"电话错了 是13809712222" at the summary: changed at once (checked again), else asked which."""
    changed = await _corrections(ctx)
    if changed:
        return Goto("form", [Reply(tr("好的，{fields}改好了。", fields=join("、", changed)))])
    return Goto("edit")


def _edit(slot: str) -> Option:
    async def run(ctx: DialogContext) -> Step:
        if SLOT_LABELS[slot] in await _corrections(ctx):  # "电话 13809712222": the new value
            return Goto("form", [Reply(tr("好的，{field}改好了。", field=SLOT_LABELS[slot]))])
        ctx.slots[slot] = None
        if slot == "id_number":
            ctx.memory.pop("id_number", None)
        return Goto("form")

    run.__name__ = f"edit_{slot}"
    return Option(SLOT_LABELS[slot], run=run, words=(SLOT_LABELS[slot],), may_go=("form",))


async def _to_edit(ctx: DialogContext) -> Step:
    return Goto("edit")


# The way out at every question of the form.
CANCEL = Option(tr("不申请了"), run=_cancel, words=("不申请", "不要了", "不办"), leaves=True)

home_visit = Dialog(
    name="home_visit",
    title=tr("申请上门认证"),
    entry_intents=("method_home_visit",),
    answers_questions_first=True,
    states={
        "form": FORM.state(
            options=[Option(tr("上一项"), back=True, words=("上一项",)),
                     CANCEL],
            may_go=("confirm",)),
        "confirm": State(
            prompt=_summary,
            options=[
                Option(tr("对，提交"), run=_submit, words=("提交", "对的", "都对", "没问题", "确认", "是", "对", "是的"),
                       intents=("affirm",), may_go=("end", "retry")),
                Option(tr("要改一下"), run=_correct_or_edit, words=("改", "不对", "修改", "错了", "否"),
                       intents=("deny",), may_go=("edit", "form")),
                CANCEL,
            ],
            on_back=_to_edit),
        "edit": State(
            prompt=tr("要改哪一项？"),
            options=[*(_edit(slot) for slot in FORM.slots),
                     Option(tr("都对，不用改"), goto="confirm", words=("不用改", "都对", "没错"))]),
        "retry": State(
            prompt=(tr("不好意思，系统现在有点忙，暂时存不进去，请稍后再试。"
                    "您填的信息我都记着，不会丢，过一会儿回复“1”再提交就行。")),
            options=[
                Option(tr("再提交一次"), run=_submit, words=("再提交", "再试", "提交", "好了"),
                       may_go=("end", "retry")),
                CANCEL,
            ]),
    },
)

DIALOGS = (home_visit,)
