"""One identity form: the pensioner's ID number and name, shared by every flow that needs them.

Written in the engine's form idiom (:class:`dialogs.engine.Form`): ``validate_id_number``
(GB 11643 checksum; spaces, full-width digits, a lower-case x and spoken digits are
converted before), ``validate_name`` (a plausible personal name, never an option label,
a command or a reason), and ``submit``, the registry lookup: rate limited per chat,
the name must match, mismatches are counted (:func:`dialogs.common.check_identity`), and
nothing about the ID is revealed on a mismatch. Both slots may come in one message, a
new ID number at the name question replaces the old one, and the opening message's
slots are used (``memory["heard"]``).

Used by certify, family and the status query (their ``ask_id`` / ``ask_name`` states call
:meth:`IdentityForm.take`, the name question enters with :meth:`IdentityForm.heard_name`), and by the home-visit form (its ``validate_id_number`` and
``validate_name`` are these). Certify and family also share the form's mismatch texts (the
family flow says whose ID number: the pensioner's) and the options of their ``mismatch``
state (:meth:`IdentityForm.mismatch_options`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from bot.core.i18n import tr
from bot.core.messages import Reply
from bot.core.storage.models import Pensioner
from bot.records.events import Chat
from bot.records.events import Step as EventStep
from dialogs.common import ID_INVALID, check_identity, find_id, heard, masked, name_in, take_heard_name
from dialogs.engine import (
    DialogContext,
    Form,
    Goto,
    Handoff,
    Invalid,
    NotUnderstood,
    Option,
    Prompt,
    State,
    Stay,
    Step,
)
from dialogs.menu import to_main_menu
from nlu.entities import id_checksum_ok, normalise_digits, plausible_name

NAME_INVALID = tr("请只发老人的姓名（和身份证上一样），比如：张桂兰。")
# A wrong name (the ID is asked again), then too many wrong names (the ``mismatch`` state).
# {whose}: empty where the chat may certify itself, PENSIONERS in the family flow.
MISMATCH = tr("身份证号码和姓名对不上，或者系统里没有这位老人的参保信息。请核对后重新输入{whose}身份证号码。"
              "都没错的话，可以打12333或到当地社保经办机构核对，也可以回复“转人工”。")
MISMATCH_FINAL = tr("还是对不上。可能是登记的信息需要更正，请带上{whose}身份证到社保经办机构核对；"
                    "也可以让工作人员帮您查一查。")
# i18n: "the pensioner's", put before 身份证 ("ID card") in the two texts above
PENSIONERS = tr("老人的")
# The ID number and name a status query in this chat matched: offered to the next identity form.
CHECKED_IDENTITY = "checked_identity"
# Said when a message at the ID or name question has none, before the question is asked again.
# "我不知道身份证号", "号码记不清了" at the ID question: told where to find it, not refused.
_FORGOT_NUMBER = re.compile(r"不知道|不记得|忘了|忘记|记不清|记不住|想不起|找不到|不清楚|没带|不在手边|不在身边")
ID_HINT = tr("没看到身份证号码。身份证号码一共18位，比如 630102195003150021。")
NAME_HINT = tr("这一步只要姓名，比如：张桂兰。")
# "我不清楚" at those questions: where to find the answer (``State.explain``).
ID_EXPLAIN = tr("身份证号码就是身份证正面最下面那一行的18个数字（最后一位可能是字母X），照着打给我就行，"
                "比如 630102195003150021。身份证不在手边的话，户口本和社保卡上也有这个号码。")
NAME_EXPLAIN = tr("姓名就是身份证上印的名字，一个字都不能错，比如：张桂兰。")
NAME_KEPT = tr("好的，姓名记下了：{name}。")
USING_CHECKED = tr("用您刚才查过的身份证号 {masked} 和姓名。换别人的话，直接发新的身份证号就行。")
Identified = Callable[[DialogContext, Pensioner], Awaitable[Step]]


async def _info_mismatch(ctx: DialogContext) -> Step:
    return Handoff("info_mismatch")


async def note_id_given(ctx: DialogContext, id_number: str) -> None:
    """The dashboard's "ID given" step, once per flow run (only the region code is kept)."""
    if ctx.slots.get("_id_given"):
        return
    ctx.slots["_id_given"] = True
    chat = Chat(ctx.conversation.key, ctx.turn.msg.channel, proxy=ctx.frame.dialog == "family")
    await ctx.services.events.record(EventStep.ID_GIVEN, chat, id_number=id_number)


class IdentityForm(Form):
    """ID number, then name, then the registry lookup; ``identified`` says what follows."""

    slots = ("id_number", "name")

    def __init__(self, flow: str, *, identified: Identified | None = None, retry_state: str = "ask_id",
                 whose: str = "", menu_options: list[str] | None = None,
                 id_hint: str = ID_HINT, name_hint: str = NAME_HINT, record_steps: bool = False) -> None:
        self.flow = flow
        self.record_steps = record_steps  # certification flows count "ID given" for the dashboard
        self.identified = identified
        self.retry_state = retry_state
        self.mismatch_text = MISMATCH.format(whose=whose)  # whose: whose ID number to check
        self.mismatch_final = MISMATCH_FINAL.format(whose=whose)
        self.menu_options = list(menu_options or [])
        self.id_hint = id_hint
        self.name_hint = name_hint

    # -- slots from a message
    def extract(self, ctx: DialogContext, text: str) -> dict[str, Any]:
        found = find_id(ctx, text)
        out: dict[str, Any] = {}
        rest = text
        if found.valid:
            out["id_number"] = found.valid
            rest = text.upper().replace(found.valid, " ")
        elif found.invalid:
            out["id_number"] = "?"
        name = name_in(rest) if rest.strip() else None
        if name:
            out["name"] = name
        return out

    # -- validation
    async def validate_id_number(self, value: Any, ctx: DialogContext) -> str:
        number = normalise_digits(str(value)).replace(" ", "").upper()
        if not id_checksum_ok(number):
            raise Invalid(ID_INVALID)
        return number

    async def validate_name(self, value: Any, ctx: DialogContext) -> str:
        name = "".join(str(value).split())
        if not plausible_name(name):
            raise Invalid(NAME_INVALID)
        return name

    # -- what a flow's states call
    def mismatch_options(self) -> list[Option]:
        """The options of the flow's ``mismatch`` state (:func:`check_identity` goes there after
        too many wrong names; its prompt is ``mismatch_final``): staff can check the registered
        details, or back to the menu."""
        return [Option(tr("请工作人员核对"), run=_info_mismatch, words=("核对", "人工")),
                Option(tr("回主菜单"), run=to_main_menu, words=("菜单", "不用"), leaves=True)]

    def offered_id(self, ctx: DialogContext) -> str | None:
        """An ID number the chat already gave: in the opening message, offered by the flow
        that led here (``memory["id_offered"]``, used once), or checked with its name by a
        status query in this chat (``memory[CHECKED_IDENTITY]``, used once: the name too)."""
        given = heard(ctx).get("id_number") or ctx.memory.pop("id_offered", None)
        if given:
            return str(given)
        checked = ctx.memory.pop(CHECKED_IDENTITY, None)
        if isinstance(checked, dict) and checked.get("id_number"):
            ctx.slots["_opening_name"] = checked.get("name")
            ctx.slots["_id_checked"] = True
            return str(checked["id_number"])
        return None

    async def use_offered_id(self, ctx: DialogContext, id_number: str, said: str) -> Step:
        """Take the :meth:`offered_id` and go on to the name question, saying ``said``
        (its ``{masked}``: the masked ID number); one checked by a status query says so."""
        ctx.slots["id_number"] = id_number
        await note_id_given(ctx, id_number)
        if ctx.slots.pop("_id_checked", None):
            said = USING_CHECKED
        return Goto("ask_name", [Reply(said.format(masked=masked(id_number)))])

    def id_question(self, prompt: Prompt, **more: Any) -> State:
        """The state that asks for the ID number (and takes a name said with it); ``more`` may
        replace ``on_input`` with a handler that calls :meth:`take` (family notes a relationship)."""
        return State(prompt=prompt, explain=ID_EXPLAIN, **{"on_input": self.take, **more})

    def name_question(self, prompt: Prompt, **more: Any) -> State:
        """The state that asks for the name; one the opening message gave is taken."""
        return State(prompt=prompt, on_input=self.take, on_enter=self.heard_name(), explain=NAME_EXPLAIN,
                     **more)

    def heard_name(self) -> Callable[[DialogContext], Awaitable[Step | None]]:
        """The name question's ``on_enter``: a name the opening message gave is taken once,
        as if typed there."""
        return take_heard_name(self.take)

    async def refuse_id(self, ctx: DialogContext, text: str) -> Step:
        return NotUnderstood(self.id_hint)

    def where_the_number_is(self, ctx: DialogContext) -> Step:
        """"我不知道身份证号": where it is written (the question's own explanation, as for a
        bare "不知道"), and the question stays."""
        return Stay([Reply(ID_EXPLAIN), Reply(tr("我们接着刚才的步骤："))])

    async def refuse_name(self, ctx: DialogContext, text: str) -> Step:
        return NotUnderstood(self.name_hint)

    async def take(self, ctx: DialogContext, text: str) -> Step:
        """Fill what this message gives; ask the next slot, or look the pensioner up."""
        asking_name = bool(ctx.slots.get("id_number"))
        candidates = self.extract(ctx, text)
        replaced: str | None = None
        if "id_number" in candidates:
            try:
                number = await self.validate_id_number(candidates["id_number"], ctx)
            except Invalid as refused:
                return Stay([Reply(refused.message)])
            if asking_name and number != ctx.slots.get("id_number"):
                replaced = number  # a new ID number at the name question replaces the old one
            ctx.slots["id_number"] = number
            if self.record_steps:
                await note_id_given(ctx, number)
        elif not asking_name:
            if "name" in candidates and plausible_name(str(candidates["name"])) \
                    and not ctx.slots.get("_opening_name"):
                # "我叫马福海" before the ID number: kept for the name question, the ID asked
                ctx.slots["_opening_name"] = candidates["name"]
                return Stay([Reply(NAME_KEPT.format(name=candidates["name"]))])
            if _FORGOT_NUMBER.search(text):
                return self.where_the_number_is(ctx)
            return await self.refuse_id(ctx, text)
        if "name" not in candidates:
            if replaced:
                return Stay([Reply(tr("好的，换成身份证号 {masked}。", masked=masked(replaced)))])
            if "id_number" in candidates:
                return Goto("ask_name")
            return await self.refuse_name(ctx, text)
        try:
            ctx.slots["name"] = await self.validate_name(candidates["name"], ctx)
        except Invalid:
            return await self.refuse_name(ctx, text)
        return await self.submit(ctx)

    async def lookup(self, ctx: DialogContext) -> Pensioner | Step:
        """The registered pensioner whose ID and name both match, or the next step."""
        details = {"proxy_key": ctx.conversation.key} if self.flow == "family" else {}
        return await check_identity(ctx, str(ctx.slots["name"]), flow=self.flow,
                                    retry_state=self.retry_state, mismatch_text=self.mismatch_text,
                                    menu_options=self.menu_options, **details)

    async def submit(self, ctx: DialogContext) -> Step:
        found = await self.lookup(ctx)
        ctx.slots.pop("name", None)
        if not isinstance(found, Pensioner):
            return found
        assert self.identified is not None
        return await self.identified(ctx, found)


__all__ = ["MISMATCH", "MISMATCH_FINAL", "NAME_INVALID", "PENSIONERS", "IdentityForm", "note_id_given"]
