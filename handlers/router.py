"""The router: from an understood message to a dialog step, a knowledge answer, or help.

Order, explicit and in one place:
1. platform events (subscribe, menu clicks);
2. global commands (back, restart, cancel, a person);
   then listening (``handlers/listening.py``): the message's slots are kept for the flow
   it starts or continues, and compound or off-script messages (a person wanted, "不想弄了",
   money, trouble reading, a greeting before a question, an ID number) are decided;
3. the active dialog, if any (an unrelated confident question is answered, then the
   dialog offers to resume);
4. the intent: a guided dialog, else its knowledge-base answer;
5. FAQ retrieval above the confidence floor;
6. a clarifying question; then the offer of a person; then a case.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from bot.core.i18n import BO, LANGUAGE_OPTIONS, ZH, tr
from bot.core.messages import Reply
from bot.core.pipeline import Turn
from bot.records.cases import CaseLimited
from dialogs.common import looks_like_question
from dialogs.engine import Dialog, DialogEngine, EngineResult, chat_services, option_number
from dialogs.menu import GREETING, MENU_LABELS, WELCOME_BACK
from dialogs.reminders import stop_reminders
from faq.knowledge import FaqEntry, FaqHit
from handlers.language import only_asks_language
from handlers.listening import listen
from handlers.protect import BEREAVED
from nlu.reading import read
from nlu.rules import normalise
from nlu.safety import mentions_death

log = logging.getLogger(__name__)
RETRIEVAL_ONLY_FLOOR = 0.6
RETRIEVAL_ONLY_MARGIN = 0.2
# Inside a flow, a message that asks nothing interrupts it with a knowledge answer only
# from this score up (a question needs the usual ``nlu.faq_threshold``).
IN_FLOW_STATEMENT_FLOOR = 0.45
# Knowledge entries about a pensioner's death (answered only where a death was told).
DEATH_ENTRIES = frozenset({"pensioner_died", "pension_after_death"})
SMALL_TALK = {"greet", "thanks", "goodbye", "affirm", "deny"}


def faq_replies(entry: FaqEntry) -> list[Reply]:
    """A knowledge entry as messages; follow-up options on the last one."""
    replies = [Reply(part) for part in entry.answer]
    if replies:
        replies[-1].options = list(entry.options) or list(MENU_LABELS)
    return replies


def part_of_one(labels: list[str], text: str) -> str | None:
    """The one offered label that contains this message ("该找谁"), if exactly one does."""
    cleaned = normalise(text)
    if len(cleaned) < 3:
        return None
    holding = [str(label) for label in labels if cleaned in normalise(str(label))]
    return holding[0] if len(holding) == 1 and normalise(holding[0]) != cleaned else None


# Asking how to apply is asking to apply: those questions begin the form.
_WANTS_TO_APPLY = re.compile(r"申请|办理|登记|怎么(?:弄|办|做|搞)|咋(?:弄|办|整|搞)")
# What a form would take from a message (nlu.reading): a question that says any of it
# ("我妈卧床了，能上门吗") gets its answer and the form begins with those answers kept.
_FORM_FACTS = ("name", "id_number", "phone", "address", "reason", "relationship")
_ASKING_VERB = re.compile(r"申请|办理|登记|预约")
DECLINE_WORDS = "不用了"  # what a declined offer is read as (NLU input, never shown)
_DECLINING = re.compile(r"不(?:用|要|想|申请|办|登记|预约|了|必)|别|算了|先不")


def _tells_about_someone(text: str) -> bool:
    slots = read(text).slots
    return any(slots.get(fact) for fact in _FORM_FACTS)


def asked_for_one(labels: list[str], text: str) -> str | None:
    """The one offered label whose verb this message asks for ("那我申请一个" → "申请上门认证").

    Declining it ("不申请了") reads as ``DECLINE_WORDS``: the words alone sound like an appeal (申诉)."""
    verbs = set(_ASKING_VERB.findall(text))
    holding = [str(label) for label in labels if any(verb in str(label) for verb in verbs)]
    if len(holding) != 1:
        return None
    return DECLINE_WORDS if _DECLINING.search(text) else holding[0]


class Router:
    """Decides what to answer. Knows dialogs, the FAQ and escalation, nothing else."""

    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine

    async def __call__(self, turn: Turn) -> None:
        """Route one message; remember the options shown outside a dialog so "2" works."""
        conv = turn.conversation
        assert conv is not None
        offered = conv.memory.pop("offered_options", None)
        number = option_number(turn.msg.content) if turn.msg.content else None
        label = None
        if offered and number is not None and conv.frame is None and 1 <= number <= len(offered):
            label = str(offered[number - 1])
        elif offered and conv.frame is None and turn.msg.content:
            label = part_of_one(offered, turn.msg.content) or asked_for_one(offered, turn.msg.content)
        if label in LANGUAGE_OPTIONS.values():  # the option shows the other language
            conv.language = turn.language_switch = ZH if conv.language == BO else BO
        if label is not None:
            turn.msg = dataclasses.replace(turn.msg, text=label, voice_transcript=None)
            turn.parse = await turn.services.understand(label)
        await self.route(turn)
        if conv.frame is None and turn.replies and turn.replies[-1].options:
            conv.memory["offered_options"] = list(turn.replies[-1].options)

    async def route(self, turn: Turn) -> None:
        conv = turn.conversation
        assert conv is not None
        services = chat_services(turn)
        threshold = services.settings.nlu.intent_threshold
        intent = turn.parse.intent(threshold) if turn.parse else None
        text = turn.parse.text if turn.parse is not None else ""

        if turn.msg.event:
            await self.on_event(turn)
            return
        if turn.language_switch and only_asks_language(turn.msg.content):
            await self.language_switched(turn)
            return
        if conv.is_new and conv.returning and not turn.msg.content and turn.msg.image is None:
            await self.show_menu(turn, WELCOME_BACK)
            return

        if intent == "cmd_restart":
            conv.stack.clear()
            if conv.is_new:  # Telegram's first "/start": a welcome, not "从头开始"
                await self.show_menu(turn, GREETING)
                return
            await self.show_menu(turn, tr("好的，我们从头开始。请回复数字选择："))
            return
        if intent == "cmd_cancel":
            conv.stack.clear()
            await self.show_menu(turn, tr("好的，已经取消。还需要帮什么忙吗？"))
            return
        if intent == "cmd_stop_reminders":  # opting out of reminders works in any state
            if await stop_reminders(turn):  # False: this is the answer to the reminder question
                if conv.frame is not None:
                    turn.replies.extend(await self.engine.reprompt(turn))
                return
        if intent == "cmd_back":
            if conv.frame and conv.frame.dialog != "main_menu":
                await self.apply(turn, await self.engine.back(turn))
            else:
                await self.show_menu(turn, MENU_PROMPT_TEXT)
            return
        # "转人工" typed exactly (a rule) always works; a model's guess of human_handoff
        # lets an active dialog try first (e.g. the option "工作人员会做什么").
        by_rule = turn.parse is not None and turn.parse.backend == "rules"
        if intent == "human_handoff" and (by_rule or conv.frame is None):
            await self.escalate(turn, "user_request")
            return

        frame = conv.frame
        if frame is not None and self.engine.expired(frame):
            conv.stack.clear()
            frame = None
            turn.say(tr("刚才的步骤时间太久，已经结束了。"))
        if await listen(self, turn, intent):
            return
        frame = conv.frame  # listening may have ended a finished flow
        if turn.parse is not None and turn.parse.text != text:  # a greeting was dropped
            intent = turn.parse.intent(threshold)
        if frame is not None:
            result = await self.engine.handle(turn)
            if result.understood:
                conv.misunderstood = 0
                await self.apply(turn, result)
                return
            if self.at_final_state(turn, frame):
                # The flow's work was done: a later question is answered on its own and
                # the flow is not offered again.
                conv.stack.clear()
                frame = None
        if frame is not None:
            # Not an answer to the question: a confident other question is answered,
            # then the dialog offers to resume.
            only = self.retrieval_only(turn)
            if only is not None and frame.dialog != "main_menu":
                await self.answer_and_resume(turn, only)
                return
            if intent and intent not in SMALL_TALK and intent != "out_of_scope":
                if await self.answer_intent(turn, intent, resume=frame.dialog != "main_menu"):
                    return
            hit = self._best_hit(turn)
            entry = hit.entry if hit is not None and hit.score >= services.settings.nlu.faq_threshold else None
            if entry is not None and entry.intent in SMALL_TALK:
                entry = None  # "好的" / "不是" entries are never an answer inside a flow
            if hit is not None and not looks_like_question(turn.msg.content or "") \
                    and hit.score < IN_FLOW_STATEMENT_FLOOR:
                entry = None  # "还是不行" is no question: a faint likeness does not interrupt the flow
            if entry is not None and frame.dialog != "main_menu":
                await self.answer_and_resume(turn, entry)
                return
            if frame.dialog != "main_menu":
                await self.misunderstood(turn, result)
                return
            conv.stack.clear()

        if intent == "greet" or (conv.is_new and not turn.msg.content):
            await self.show_menu(turn, WELCOME_BACK if conv.returning and conv.is_new else GREETING)
            return
        only = self.retrieval_only(turn)  # an FAQ answer that comes before any intent
        if only is None and intent and await self.answer_intent(turn, intent):
            return
        entry = only if only is not None else self.retrieve(turn)
        if entry is not None and only is None and entry.intent and not intent \
                and chat_services(turn).dialogs.for_intent(entry.intent) is not None \
                and not looks_like_question(turn.msg.content or ""):
            # "我想帮我父亲认证": the model was unsure, the knowledge base is sure, and it is
            # a request, not a question: its flow begins, as the intent would have begun it.
            if await self.answer_intent(turn, entry.intent):
                return
        if entry is not None:
            conv.misunderstood = 0
            turn.replies.extend(faq_replies(entry))
            return
        if turn.msg.image is not None:
            conv.memory["photo_waiting"] = True
            turn.say(tr("收到您的照片。要刷脸认证的话，请先告诉我您要办认证，我会一步一步带您。"),
                     MENU_LABELS)
            return
        await self.misunderstood(turn, None)

    async def on_event(self, turn: Turn) -> None:
        event = turn.msg.event or ""
        if event == "subscribe":
            await self.show_menu(turn, GREETING)
        elif event.startswith("menu:"):
            intent = event.split(":", 1)[1]
            if not await self.answer_intent(turn, intent):
                await self.show_menu(turn, GREETING)
        else:
            turn.outcome = "ignored_event"

    async def language_switched(self, turn: Turn) -> None:
        """The chat now speaks another language: the current question again, or the menu."""
        conv = turn.conversation
        assert conv is not None
        said = SWITCHED_TO_TIBETAN if conv.language == BO else SWITCHED_TO_CHINESE
        if conv.frame is not None and conv.frame.dialog != "main_menu" and not self.engine.expired(conv.frame):
            turn.say(said)
            turn.replies.extend(await self.engine.reprompt(turn))
            return
        await self.show_menu(turn, concat_menu_prompt(said))

    async def show_menu(self, turn: Turn, text: str) -> None:
        conv = turn.conversation
        assert conv is not None
        conv.stack.clear()
        conv.misunderstood = 0
        result = await self.engine.begin(turn, "main_menu")
        turn.replies.append(Reply(text, result.replies[-1].options if result.replies else MENU_LABELS))

    async def answer_and_resume(self, turn: Turn, entry: FaqEntry) -> None:
        """Answer a question asked in the middle of a dialog, then ask its question again."""
        turn.replies.extend(faq_replies(entry))
        turn.replies.append(Reply(tr("我们接着刚才的步骤：")))
        turn.replies.extend(await self.engine.reprompt(turn))

    def at_final_state(self, turn: Turn, frame: object) -> bool:
        dialog = chat_services(turn).dialogs.dialogs.get(getattr(frame, "dialog", ""))
        state = dialog.states.get(getattr(frame, "state", "")) if dialog else None
        return state is not None and state.final

    def retrieval_only(self, turn: Turn) -> FaqEntry | None:
        """A clear match with a knowledge entry that no intent covers (e.g. fingerprints).

        The classifier only knows intents, so it confidently misfiles such questions; a
        strong, unambiguous retrieval hit on an intent-less entry wins over it.
        """
        text = turn.msg.content
        if not text:
            return None
        hits = [hit for hit in chat_services(turn).faq.search(text, limit=3) if self._may_answer(turn, hit.entry)][:2]
        if not hits or hits[0].entry.intent is not None or hits[0].score < RETRIEVAL_ONLY_FLOOR:
            return None
        if len(hits) > 1 and hits[1].score > hits[0].score - RETRIEVAL_ONLY_MARGIN:
            return None
        return hits[0].entry

    def _best_hit(self, turn: Turn) -> FaqHit | None:
        """The best knowledge match that may answer this chat (a death entry may not)."""
        text = turn.msg.content
        if not text:
            return None
        hits = [hit for hit in chat_services(turn).faq.search(text, limit=3) if self._may_answer(turn, hit.entry)]
        return hits[0] if hits else None

    def retrieve(self, turn: Turn) -> FaqEntry | None:
        hit = self._best_hit(turn)
        if hit is not None and hit.score >= turn.services.settings.nlu.faq_threshold:
            return hit.entry
        return None

    @staticmethod
    def _may_answer(turn: Turn, entry: FaqEntry) -> bool:
        """Entries about a death answer only a message or a chat that speaks of one ("老伴"
        alone, "钱能退吗" after a scam, are not)."""
        if entry.id not in DEATH_ENTRIES:
            return True
        conv = turn.conversation
        return mentions_death(turn.msg.content or "") or bool(conv is not None and conv.memory.get(BEREAVED))

    async def answer_intent(self, turn: Turn, intent: str, resume: bool = False) -> bool:
        """Answer an intent with its dialog or its knowledge entry. False if neither."""
        services = chat_services(turn)
        if intent == "human_handoff":
            await self.escalate(turn, "user_request")
            return True
        if intent in ("greet",):
            await self.show_menu(turn, GREETING)
            return True
        if intent in LANGUAGE_INTENTS:  # the menu option or the WeChat menu entry
            conv = turn.conversation
            assert conv is not None
            conv.language = LANGUAGE_INTENTS[intent]
            conv.stack.clear()
            await self.language_switched(turn)
            return True
        dialog = services.dialogs.for_intent(intent)
        if dialog is not None and resume and turn.msg.content and (
                looks_like_question(turn.msg.content)):
            # A question in the middle of a flow: its short answer, then the flow goes on.
            entry = services.faq.for_intent(intent)
            if entry is not None:
                turn.replies.extend(faq_replies(entry))
                turn.replies.append(Reply(tr("我们接着刚才的步骤：")))
                turn.replies.extend(await self.engine.reprompt(turn))
                return True
        if dialog is not None and not resume and self._asks_about(dialog, turn.msg.content):
            entry = services.faq.for_intent(intent)
            if entry is not None:  # the answer first
                answer = faq_replies(entry)
                if not _tells_about_someone(turn.msg.content or ""):  # then the way in
                    answer[-1].options = [dialog.title, *[o for o in entry.options if o != dialog.title]]
                    turn.replies.extend(answer)
                    return True
                answer[0].options = []  # its gist, then the form with what the message said
                turn.replies.append(answer[0])
        if dialog is not None:
            conv = turn.conversation
            assert conv is not None
            conv.stack.clear()
            if dialog.for_someone_else and read(turn.msg.content or "").slots.get("relationship"):
                turn.replies.append(Reply(dialog.for_someone_else))
            await self.apply(turn, await self.engine.begin(turn, dialog.name))
            return True
        entry = services.faq.for_intent(intent)
        if entry is None:
            return False
        turn.replies.extend(faq_replies(entry))
        if resume:
            turn.replies.append(Reply(tr("我们接着刚才的步骤：")))
            turn.replies.extend(await self.engine.reprompt(turn))
        return True

    @staticmethod
    def _asks_about(dialog: Dialog, text: str | None) -> bool:
        """A question about a form's subject (who comes, whether it costs), not how to apply."""
        return bool(dialog.answers_questions_first and text and looks_like_question(text)
                    and not _WANTS_TO_APPLY.search(text))

    async def apply(self, turn: Turn, result: EngineResult) -> None:
        conv = turn.conversation
        assert conv is not None
        turn.replies.extend(result.replies)
        turn.deferred = turn.deferred or result.deferred
        menu_intent = result.then
        if result.handoff:
            await self.escalate(turn, result.handoff)
            return
        if menu_intent:
            if not await self.answer_intent(turn, menu_intent):
                await self.show_menu(turn, GREETING)
            return
        if result.finished and conv.frame is None and not any(r.options for r in turn.replies):
            await self.show_menu(turn, tr("还有什么可以帮您？"))

    async def misunderstood(self, turn: Turn, result: EngineResult | None) -> None:
        """Clarify once, then offer a person, then open a case."""
        conv = turn.conversation
        assert conv is not None
        conv.misunderstood += 1
        turn.outcome = "fallback"
        if conv.misunderstood >= 3:
            await self.escalate(turn, "fallback")
            return
        if result is not None:
            turn.replies.extend(result.replies)
            if conv.misunderstood == 2:
                turn.say(tr("如果说不清楚，也可以回复“转人工”，让工作人员帮您。"))
            return
        count = conv.misunderstood
        if count == 1:
            await self.show_menu(turn, tr("抱歉，我没太明白。您是想问下面哪一件事？回复数字就行："))
        else:
            conv.stack.clear()
            await self.apply(turn, await self.engine.begin(turn, "offer_person"))
        conv.misunderstood = count

    async def escalate(self, turn: Turn, reason: str) -> None:
        conv = turn.conversation
        assert conv is not None
        handoff = chat_services(turn).handoff
        conv.stack.clear()
        conv.misunderstood = 0
        try:
            case_id = await handoff.escalate(conv, reason, client_address=turn.msg.client_address)
        except CaseLimited as limited:  # said plainly; the chat stays with the bot
            turn.events.append({"action": "handoff_limited", "reason": reason})
            turn.outcome = "case_limited"
            turn.say(limited.user_message, MENU_LABELS)
            return
        turn.events.append({"action": "handoff", "target": f"case:{case_id}", "reason": reason})
        turn.outcome = "handoff"
        turn.say(handoff.queue_text(await handoff.position(case_id) or 1, first=True))


MENU_PROMPT_TEXT = tr("请问您要办什么？回复数字就行：")
LANGUAGE_INTENTS = {"lang_bo": BO, "lang_zh": ZH}
SWITCHED_TO_TIBETAN = tr("好的，下面用藏文跟您说。想换回汉语，请回复“中文”。")
SWITCHED_TO_CHINESE = tr("好的，下面用汉语跟您说。想用藏文，请回复“藏文”。")


def concat_menu_prompt(said: str) -> str:
    return tr("{said}请回复数字选择：", said=said)
