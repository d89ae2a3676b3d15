"""Reminder opt-in after a successful certification, and opt-out at any time (issue 20).

After a pensioner's own selfie passes, :func:`offer_after_success` asks once, in plain
words, whether to remind them before the next due date; no promise is made without a
yes. "好的，到时候提醒我" (or the option, or a plain yes) subscribes; the subscription is a
row in ``reminder_subscriptions`` (see ``bot/records/reminders.py`` for the schedule).
"不用提醒了" / "取消提醒" work in any state (a rule, ``nlu.rules.STOP_REMINDERS``): the
router calls :func:`stop_reminders`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date

from bot.core.conversation import Conversation, Frame
from bot.core.i18n import concat, tr
from bot.core.messages import Reply
from bot.core.pipeline import Turn
from bot.records.reminders import is_subscribed, subscribe, unsubscribe_all
from dialogs.common import MENU_OPTIONS, format_date
from dialogs.engine import (
    ChatServices,
    Dialog,
    DialogContext,
    Finish,
    InputHandler,
    NotUnderstood,
    Option,
    OptionAction,
    State,
    Step,
)

NAME = "reminders"
OPT_IN = tr("好的，到时候提醒我")
NO_THANKS = tr("不用提醒")

OFFER = (tr("要不要我到时候提醒您？到期前 {days} 天左右提醒一次，快到期还没认证再提醒一次。"
         "提醒会发到这个对话里。"))
_NEGATION = re.compile(r"不|没|别|甭|无需")
_YES = re.compile(r"提醒|好|要|可以|行|嗯|对|是|需要|麻烦")


def _days(services: ChatServices) -> int:
    return int(services.settings.reminders.days_before)


def due_text(ctx: DialogContext) -> str:
    """The due date kept in the slots, as the user reads it."""
    raw = ctx.slots.get("due")
    return format_date(date.fromisoformat(raw)) if raw else tr("下次到期")


def yes_no(answer: Callable[[DialogContext, bool], Awaitable[Step]], retry: str, *,
           no: re.Pattern[str] = _NEGATION, yes: re.Pattern[str] = _YES,
           ) -> tuple[OptionAction, OptionAction, InputHandler]:
    """The handlers of a reminder question: the yes option, the no option, and free text
    (a negation is a no, then a yes word is a yes, else ``retry``)."""

    async def on_yes(ctx: DialogContext) -> Step:
        return await answer(ctx, True)

    async def on_no(ctx: DialogContext) -> Step:
        return await answer(ctx, False)

    async def on_input(ctx: DialogContext, text: str) -> Step:
        if no.search(text):
            return await answer(ctx, False)
        if yes.search(text):
            return await answer(ctx, True)
        return NotUnderstood(retry)

    return on_yes, on_no, on_input


async def offer_after_success(services: ChatServices, conv: Conversation, pensioner_id: int,
                              due: date, text: str) -> list[Reply]:
    """The success message of a pensioner's own certification, with the reminder question.

    Already subscribed: the promise is true, so it is made; otherwise the chat waits in
    ``reminders.offer`` for the answer.
    """
    if await is_subscribed(services.db, conv.key, pensioner_id):
        return [Reply(concat(text, tr("到时候我会提醒您（不想要了，随时回复“不用提醒了”）。")), MENU_OPTIONS)]
    conv.stack.append(Frame(dialog=NAME, state="offer", slots={
        "pensioner_id": pensioner_id, "due": due.isoformat(), "role": "self"}))
    return [Reply(concat(text, OFFER.format(days=_days(services)), sep="\n"), [OPT_IN, NO_THANKS])]


async def _answer(ctx: DialogContext, opt_in: bool) -> Step:
    pensioner_id = int(ctx.slots["pensioner_id"])
    role = str(ctx.slots.get("role") or "self")
    if opt_in:
        await subscribe(ctx.services.db, ctx.conversation.key, pensioner_id, role, ctx.conversation.language)
    ctx.event("reminder_opt_in" if opt_in else "reminder_declined", target=f"pensioner:{pensioner_id}",
              role=role, channel=ctx.conversation.channel)
    if opt_in:
        text = tr("好的，到时候我会提醒您：{due} 前 {days} 天左右提醒一次。"
                  "不想要了，随时回复“不用提醒了”。还有什么可以帮您？")
    else:
        text = tr("好的，不提醒您。记得在 {due} 前后再认证一次。还有什么可以帮您？")
    text = text.format(due=due_text(ctx), days=_days(ctx.services))
    return Finish([Reply(text, MENU_OPTIONS)])


_yes, _no, _on_input = yes_no(_answer, tr("要提醒请回复 1（{label}），不用请回复 2。", label=OPT_IN))


reminders = Dialog(
    name=NAME,
    title="认证提醒",
    fallback=tr("要提醒请回复 1，不用请回复 2。"),
    states={
        "offer": State(prompt=lambda ctx: Reply(OFFER.format(days=_days(ctx.services)), [OPT_IN, NO_THANKS]),
                       on_input=_on_input, options=[
                           Option(OPT_IN, run=_yes, intents=("affirm",)),
                           Option(NO_THANKS, run=_no, intents=("deny",))], may_go=("end",)),
    },
)

# States that only wait for the reminder answer: opting out there also ends them.
_OFFER_STATES = {(NAME, "offer"), ("family", "reminder")}


async def stop_reminders(turn: Turn) -> bool:
    """Opt-out in any state. False (nothing done) when the chat is being asked the reminder
    question right now: then "不用提醒" is that question's answer (the dialog handles it)."""
    conv = turn.conversation
    assert conv is not None
    if conv.frame is not None and (conv.frame.dialog, conv.frame.state) in _OFFER_STATES:
        return False
    count = await unsubscribe_all(turn.services.db, conv.key)
    turn.events.append({"action": "reminder_opt_out", "target": conv.key, "subscriptions": count})
    if count:
        text = tr("好的，以后不再给您发认证提醒了。下次认证成功后，想要提醒还可以再开。")
    else:
        text = tr("您现在没有开启认证提醒，不会收到提醒消息。")
    turn.say(text, [] if conv.frame is not None else MENU_OPTIONS)
    return True


DIALOGS = (reminders,)
