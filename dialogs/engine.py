"""A small engine for declarative dialogs whose state lives in Redis.

A :class:`Dialog` is a table of named :class:`State` s. Each state has a prompt, numbered
:class:`Option` s, and optionally a handler for free input. Handlers return a
:class:`Step` (what happens next) and never send anything. The engine keeps the
position in the conversation's :class:`bot.core.conversation.Frame`, which the pipeline
saves to Redis after every turn, so any server process can continue any dialog.

Forms (:class:`Form`) collect slots with one ``validate_<slot>`` method per slot and
may fill several slots from one message, like rasa-sdk's ``FormValidationAction``.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from bot.core.conversation import Conversation, Frame
from bot.core.i18n import tr
from bot.core.messages import Reply
from bot.core.pipeline import Turn
from bot.core.services import CoreServices
from bot.records.cases import HandoffService
from bot.records.events import CertificationEvents
from bot.records.pensioners import PensionerRegistry
from faq.knowledge import KnowledgeBase
from nlu.rules import normalise

# ---------------------------------------------------------------- steps


@dataclass
class Goto:
    """Move to another state of this dialog (after saying ``replies``)."""

    state: str
    replies: list[Reply] = field(default_factory=list)


@dataclass
class Saying:
    """The base of the steps that carry nothing but ``replies`` to say."""

    replies: list[Reply] = field(default_factory=list)


@dataclass
class Stay(Saying):
    """Remain in this state; say ``replies`` and ask again."""


@dataclass
class Finish:
    """End this dialog; say ``replies`` (the caller's dialog, if any, resumes).

    ``then`` names an intent the router answers next, as if the user had asked it
    (``MAIN_MENU`` for the main menu)."""

    replies: list[Reply] = field(default_factory=list)
    then: str | None = None


MAIN_MENU = "greet"  # Finish(then=MAIN_MENU): show the main menu


@dataclass
class StartDialog:
    """Replace this dialog with another one (``slots`` pre-filled)."""

    dialog: str
    replies: list[Reply] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)


@dataclass
class Handoff:
    """Hand the chat to a person for ``reason``."""

    reason: str
    replies: list[Reply] = field(default_factory=list)


@dataclass
class Defer(Saying):
    """The answer comes later through the outbox (e.g. a face verdict)."""


@dataclass
class Back(Saying):
    """Go back to the previous question (like the global command 返回)."""


@dataclass
class NotUnderstood:
    """The input fits nothing in this state."""

    hint: str | None = None


Step = Goto | Stay | Finish | StartDialog | Handoff | Defer | Back | NotUnderstood

# ---------------------------------------------------------------- context


@dataclass
class DialogContext:
    """What a handler sees: the turn, the frame's slots and the conversation memory."""

    turn: Turn
    frame: Frame

    @property
    def slots(self) -> dict[str, Any]:
        return self.frame.slots

    @property
    def conversation(self) -> Conversation:
        assert self.turn.conversation is not None
        return self.turn.conversation

    @property
    def memory(self) -> dict[str, Any]:
        """Facts kept across dialogs for this chat (e.g. a validated ID number)."""
        return self.conversation.memory

    @property
    def services(self) -> ChatServices:
        return chat_services(self.turn)

    @property
    def text(self) -> str:
        return self.turn.msg.content

    def intent(self) -> str | None:
        parse = self.turn.parse
        if parse is None:
            return None
        return parse.intent(self.turn.services.settings.nlu.intent_threshold)

    def event(self, action: str, **details: Any) -> None:
        """Record something for the audit log (written by the pipeline)."""
        self.turn.events.append({"action": action, **details})


Prompt = str | Reply | Callable[[DialogContext], Reply | list[Reply] | Awaitable[Any]]
InputHandler = Callable[[DialogContext, str], Awaitable[Step]]
OptionAction = Callable[[DialogContext], Awaitable[Step]]

# ---------------------------------------------------------------- table


@dataclass
class Option:
    """A numbered choice. Picked by number, by its words, or by an NLU intent."""

    label: str
    goto: str | None = None
    start: str | None = None
    run: OptionAction | None = None
    intents: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    set: dict[str, Any] = field(default_factory=dict)
    # Shown (and matched) only when this returns True, e.g. when another dialog exists.
    when: Callable[[DialogContext], bool] | None = None
    # Picking it goes back to the previous question, like 返回.
    back: bool = False
    # Picking it leaves the flow (回主菜单, 不申请了): a way out, not an answer to the question.
    leaves: bool = False
    # Where a ``run`` action may lead (states, dialog names or "end"), for the diagram only.
    may_go: tuple[str, ...] = ()
    # Picked by its NLU intent only when this accepts the message (e.g. not "网络挺好的").
    intent_if: Callable[[str], bool] | None = None

    def visible(self, ctx: DialogContext) -> bool:
        return self.when is None or bool(self.when(ctx))

    def target(self) -> str:
        if self.goto:
            return self.goto
        if self.start:
            return f"dialog:{self.start}"
        return getattr(self.run, "__name__", "run") if self.run else "end"


@dataclass
class State:
    """One question of a dialog."""

    prompt: Prompt
    options: list[Option] = field(default_factory=list)
    on_input: InputHandler | None = None
    on_enter: Callable[[DialogContext], Awaitable[Step | None]] | None = None
    # Extra edges the free-input handler may take, for the diagram only.
    may_go: tuple[str, ...] = ()
    # What 返回 does here instead of the previous question (e.g. a form un-asks a slot);
    # returning None falls back to the previous question.
    on_back: Callable[[DialogContext], Awaitable[Step | None]] | None = None
    # The flow's work is done here (a recommendation, a result): a message that is not
    # one of its options ends the flow instead of asking to resume it.
    final: bool = False
    # The question said more simply, for "没看懂" / "说简单点" (a generic one otherwise).
    explain: str | None = None

    def visible_options(self, ctx: DialogContext) -> list[Option]:
        return [option for option in self.options if option.visible(ctx)]


@dataclass
class Dialog:
    """A declarative dialog: entry intents, states, fallbacks and a timeout.

    A run begins at ``start``, by default the first state of ``states``."""

    name: str
    title: str
    states: dict[str, State]
    start: str = ""
    entry_intents: tuple[str, ...] = ()
    timeout_s: int | None = 1800
    fallback: str = tr("没听明白，请回复选项前面的数字，或者说“转人工”。")
    max_misunderstood: int = 2
    # A form that asks for personal data: a question about it ("上门认证是谁来？") gets the
    # knowledge answer and an offer to begin (``title``), not the first question of the form.
    answers_questions_first: bool = False
    # Said before the first step when the opening message is about someone else (a parent):
    # what differs when a family member asks for them.
    for_someone_else: str = ""

    def __post_init__(self) -> None:
        self.start = self.start or next(iter(self.states), "")
        for name, state in self.states.items():
            for option in state.options:
                if option.goto and option.goto not in self.states:
                    raise ValueError(f"{self.name}.{name}: option goes to unknown state {option.goto}")
        if self.start not in self.states:
            raise ValueError(f"{self.name}: unknown start state {self.start}")

    def _node(self, target: str) -> str:
        if target in self.states:
            return target
        return "[*]" if target == "end" else f"dialog_{target}"

    def to_mermaid(self) -> str:
        """The state diagram generated from the table (kept beside each dialog)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.start}"]
        for name, state in self.states.items():
            for option in state.options:
                if option.back:
                    lines.append(f"    %% {name}: {option.label} = back to the previous question")
                    continue
                condition = f" (if {getattr(option.when, '__name__', 'shown')})" if option.when else ""
                if option.run and option.may_go:
                    for target in option.may_go:
                        lines.append(f"    {name} --> {self._node(target)}: {option.label}{condition}")
                    continue
                target = option.goto or (f"dialog_{option.start}" if option.start else "[*]")
                lines.append(f"    {name} --> {target}: {option.label}{condition}")
            for target in state.may_go:
                lines.append(f"    {name} --> {self._node(target)}: 输入")
        return "\n".join(dict.fromkeys(lines)) + "\n"


class DialogRegistry:
    """All dialogs by name, and which intent starts which."""

    def __init__(self) -> None:
        self.dialogs: dict[str, Dialog] = {}
        self.by_intent: dict[str, str] = {}

    def add(self, dialog: Dialog) -> None:
        self.dialogs[dialog.name] = dialog
        for intent in dialog.entry_intents:
            self.by_intent[intent] = dialog.name

    def get(self, name: str) -> Dialog:
        return self.dialogs[name]

    def for_intent(self, intent: str | None) -> Dialog | None:
        name = self.by_intent.get(intent or "")
        return self.dialogs.get(name) if name else None


# ---------------------------------------------------------------- matching

_CHINESE_NUMBERS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUMBER = re.compile(r"^(?:第|选|回复|选择)?([0-9０-９༠-༩]{1,2}|[一二两三四五六七八九])(?:个|项|号)?$")
_DIGITS = str.maketrans("０１２３４５６７８９༠༡༢༣༤༥༦༧༨༩", "01234567890123456789")  # full-width, Tibetan


def option_number(text: str) -> int | None:
    """"1", "１", "༡", "第一个", "选2" -> the 1-based number, else None."""
    match = _NUMBER.match(normalise(text))
    if not match:
        return None
    token = match.group(1)
    if token in _CHINESE_NUMBERS:
        return _CHINESE_NUMBERS[token]
    return int(token.translate(_DIGITS))



def match_option(options: Sequence[Option], text: str, intent: str | None) -> Option | None:
    """Which option the user picked, by number, words, or intent."""
    number = option_number(text)
    if number is not None:
        return options[number - 1] if 1 <= number <= len(options) else None
    cleaned = normalise(text)
    if not cleaned:
        return None
    for option in options:
        if cleaned == normalise(option.label) or cleaned in {normalise(w) for w in option.words}:
            return option
    # The longest word found inside the message wins ("不会用" beats "会用").
    best: tuple[int, Option] | None = None
    for option in options:
        for word in option.words:
            word = normalise(word)
            if len(word) >= 2 and word in cleaned and (best is None or len(word) > best[0]):
                best = (len(word), option)
    if best is not None:
        return best[1]
    # A part of one label ("该找谁" for "认证有问题该找谁"), when only one label has it.
    if len(cleaned) >= 3:
        holding = [option for option in options if cleaned in normalise(option.label)]
        if len(holding) == 1:
            return holding[0]
    if intent:
        for option in options:
            if intent in option.intents and (option.intent_if is None or option.intent_if(text)):
                return option
    return None


# ---------------------------------------------------------------- engine


async def _render(prompt: Prompt, ctx: DialogContext) -> list[Reply]:
    if isinstance(prompt, str):
        return [Reply(prompt)]
    if isinstance(prompt, Reply):
        return [Reply(prompt.text, list(prompt.options), prompt.image)]
    value = prompt(ctx)
    if inspect.isawaitable(value):
        value = await value
    if isinstance(value, Reply):
        return [value]
    return list(value)


async def render_state(dialog: Dialog, state_name: str, ctx: DialogContext) -> list[Reply]:
    """The prompt of a state, with its options attached to the last message."""
    state = dialog.states[state_name]
    replies = await _render(state.prompt, ctx)
    options = state.visible_options(ctx)
    if options and replies and not replies[-1].options:
        replies[-1].options = [option.label for option in options]
    return replies


@dataclass
class EngineResult:
    """What the engine decided for the router."""

    replies: list[Reply] = field(default_factory=list)
    handoff: str | None = None
    deferred: bool = False
    understood: bool = True
    finished: bool = False
    then: str | None = None  # an intent to answer next (from Finish.then)


class DialogEngine:
    """Interprets dialogs against the conversation's frame stack."""

    def __init__(self, registry: DialogRegistry) -> None:
        self.registry = registry

    async def begin(self, turn: Turn, name: str, slots: dict[str, Any] | None = None) -> EngineResult:
        """Start dialog ``name`` on top of the stack and ask its first question."""
        conversation = turn.conversation
        assert conversation is not None
        dialog = self.registry.get(name)
        frame = Frame(dialog=name, state=dialog.start, slots=dict(slots or {}))
        heard = conversation.memory.get("heard")
        if isinstance(heard, dict) and heard.get("name") and "_opening_name" not in frame.slots:
            # The name the opening message gave, for a name question asked turns later
            # ("俺叫马福海 查认证" -> the ID number -> the name is not asked again).
            frame.slots["_opening_name"] = heard["name"]
        conversation.stack.append(frame)
        result = EngineResult()
        await self._enter(turn, dialog, frame, dialog.start, result)
        return result

    def expired(self, frame: Frame) -> bool:
        dialog = self.registry.dialogs.get(frame.dialog)
        if dialog is None:
            return True
        return bool(dialog.timeout_s) and time.time() - frame.updated_at > (dialog.timeout_s or 0)

    async def handle(self, turn: Turn) -> EngineResult:
        """Feed the message to the dialog on top of the stack."""
        conversation = turn.conversation
        assert conversation is not None and conversation.frame is not None
        frame = conversation.frame
        dialog = self.registry.get(frame.dialog)
        state = dialog.states[frame.state]
        ctx = DialogContext(turn, frame)
        text = turn.msg.content
        option = match_option(state.visible_options(ctx), text, ctx.intent())
        step: Step
        if option is not None:
            frame.slots.update(option.set)
            if option.back:
                step = Back()
            elif option.run:
                step = await option.run(ctx)
            elif option.goto:
                step = Goto(option.goto)
            elif option.start:
                step = StartDialog(option.start)
            else:
                step = Finish()
        elif state.on_input is not None and (text or turn.msg.image is not None):
            step = await state.on_input(ctx, text)
        else:
            step = NotUnderstood()
        result = EngineResult()
        await self._apply(turn, dialog, frame, step, result)
        return result

    async def back(self, turn: Turn) -> EngineResult:
        """Return to the previous question of the current dialog."""
        conversation = turn.conversation
        assert conversation is not None and conversation.frame is not None
        frame = conversation.frame
        dialog = self.registry.get(frame.dialog)
        result = EngineResult()
        await self._back(turn, dialog, frame, result)
        return result

    async def _back(self, turn: Turn, dialog: Dialog, frame: Frame, result: EngineResult,
                    depth: int = 0) -> None:
        ctx = DialogContext(turn, frame)
        state = dialog.states[frame.state]
        frame.updated_at = time.time()
        if state.on_back is not None:
            step = await state.on_back(ctx)
            if step is not None:
                await self._apply(turn, dialog, frame, step, result, depth + 1)
                return
        if not frame.history:
            result.replies.append(Reply(tr("已经是第一步了。")))
            result.replies.extend(await render_state(dialog, frame.state, ctx))
            return
        frame.state = frame.history.pop()
        result.replies.extend(await render_state(dialog, frame.state, ctx))

    async def reprompt(self, turn: Turn) -> list[Reply]:
        """The current question again (to resume after an interruption)."""
        conversation = turn.conversation
        assert conversation is not None and conversation.frame is not None
        frame = conversation.frame
        dialog = self.registry.get(frame.dialog)
        return await render_state(dialog, frame.state, DialogContext(turn, frame))

    async def _enter(self, turn: Turn, dialog: Dialog, frame: Frame, state_name: str,
                     result: EngineResult, depth: int = 0) -> None:
        frame.state = state_name
        frame.updated_at = time.time()
        state = dialog.states[state_name]
        ctx = DialogContext(turn, frame)
        if state.on_enter is not None and depth < 10:
            step = await state.on_enter(ctx)
            if step is not None:
                await self._apply(turn, dialog, frame, step, result, depth + 1)
                return
        result.replies.extend(await render_state(dialog, state_name, ctx))

    async def _apply(self, turn: Turn, dialog: Dialog, frame: Frame, step: Step,
                     result: EngineResult, depth: int = 0) -> None:
        conversation = turn.conversation
        assert conversation is not None
        frame.updated_at = time.time()
        if isinstance(step, Goto):
            result.replies.extend(step.replies)
            if step.state != frame.state:
                frame.history.append(frame.state)
            await self._enter(turn, dialog, frame, step.state, result, depth)
        elif isinstance(step, Stay):
            result.replies.extend(step.replies)
            ctx = DialogContext(turn, frame)
            result.replies.extend(await render_state(dialog, frame.state, ctx))
        elif isinstance(step, Finish):
            result.replies.extend(step.replies)
            self._pop(conversation, frame)
            result.finished = True
            result.then = step.then or result.then
        elif isinstance(step, StartDialog):
            result.replies.extend(step.replies)
            self._pop(conversation, frame)
            sub = await self.begin(turn, step.dialog, step.slots)
            result.replies.extend(sub.replies)
            result.handoff = result.handoff or sub.handoff
            result.deferred = result.deferred or sub.deferred
            result.then = result.then or sub.then
        elif isinstance(step, Handoff):
            result.replies.extend(step.replies)
            self._pop(conversation, frame)
            result.handoff = step.reason
        elif isinstance(step, Defer):
            result.replies.extend(step.replies)
            result.deferred = True
        elif isinstance(step, Back):
            result.replies.extend(step.replies)
            if depth < 10:
                await self._back(turn, dialog, frame, result, depth + 1)
        elif isinstance(step, NotUnderstood):
            result.understood = False
            hint = step.hint or dialog.fallback
            result.replies.append(Reply(hint))
            result.replies.extend(await render_state(dialog, frame.state, DialogContext(turn, frame)))

    @staticmethod
    def _pop(conversation: Conversation, frame: Frame) -> None:
        if frame in conversation.stack:
            conversation.stack.remove(frame)


# ---------------------------------------------------------------- forms


class Invalid(Exception):
    """Raised by ``validate_<slot>``: the value is refused with this user message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Form:
    """Collects ``slots`` one at a time; subclasses define ask/validate/submit.

    - ``questions[slot]``, a fixed question for a slot, or ``ask_<slot>(ctx) -> Reply | str``
      where the question depends on the chat;
    - ``async validate_<slot>(value, ctx) -> value`` normalises or raises :class:`Invalid`;
    - ``extract(ctx, text) -> dict`` may find several slots in one message
      (default: the requested slot takes the whole text);
    - ``async submit(ctx) -> Step`` runs once every slot is valid.
    """

    slots: tuple[str, ...] = ()
    questions: dict[str, str] = {}

    def requested(self, ctx: DialogContext) -> str | None:
        return next((s for s in self.slots if ctx.slots.get(s) in (None, "")), None)

    def extract(self, ctx: DialogContext, text: str) -> dict[str, Any]:
        requested = self.requested(ctx)
        return {requested: text.strip()} if requested and text.strip() else {}

    async def _validate(self, slot: str, value: Any, ctx: DialogContext) -> Any:
        validator = getattr(self, f"validate_{slot}", None)
        if validator is None:
            return value
        return await validator(value, ctx)

    def ask(self, ctx: DialogContext) -> list[Reply]:
        slot = self.requested(ctx)
        if slot is None:
            return []
        asker = getattr(self, f"ask_{slot}", None)
        question = self.questions[slot] if asker is None else asker(ctx)
        return [question if isinstance(question, Reply) else Reply(str(question))]

    async def fill(self, ctx: DialogContext, text: str) -> Step:
        """Validate what this message offers; ask for the next slot or submit."""
        candidates = self.extract(ctx, text)
        problems: list[Reply] = []
        requested = self.requested(ctx)
        for slot in self.slots:
            if slot not in candidates:
                continue
            try:
                ctx.slots[slot] = await self._validate(slot, candidates[slot], ctx)
            except Invalid as refused:
                if slot == requested or ctx.slots.get(slot) in (None, ""):
                    problems.append(Reply(refused.message))
        if self.requested(ctx) is None:
            return await self.submit(ctx)
        return Stay(problems)

    async def submit(self, ctx: DialogContext) -> Step:
        raise NotImplementedError

    async def prefill(self, ctx: DialogContext) -> list[Reply]:
        """Slots the message that started the form already gave (validated); problems said."""
        return []

    async def unask(self, ctx: DialogContext) -> Step | None:
        """返回 inside a form: forget the last slot filled and ask it again."""
        requested = self.requested(ctx)
        before = self.slots if requested is None else self.slots[: self.slots.index(requested)]
        filled = [slot for slot in before if ctx.slots.get(slot) not in (None, "")]
        if not filled:
            return None
        ctx.slots[filled[-1]] = None
        return Stay()

    def state(self, **extra: Any) -> State:
        """A State that runs this form (prompt = the next missing slot's question)."""

        async def on_input(ctx: DialogContext, text: str) -> Step:
            return await self.fill(ctx, text)

        async def on_enter(ctx: DialogContext) -> Step | None:
            problems: list[Reply] = []
            if not ctx.slots.get("_prefill_done"):
                ctx.slots["_prefill_done"] = True
                problems = await self.prefill(ctx)
            if self.requested(ctx) is None:
                return await self.submit(ctx)
            return Stay(problems) if problems else None

        extra.setdefault("on_back", self.unask)
        return State(prompt=lambda ctx: self.ask(ctx), on_input=on_input, on_enter=on_enter, **extra)


# ---------------------------------------------------------------- services


class ChatServices(CoreServices, Protocol):
    """The services as dialogs and handlers see them: the foundation's plus records and FAQ."""

    registry: PensionerRegistry
    handoff: HandoffService
    events: CertificationEvents
    faq: KnowledgeBase
    dialogs: DialogRegistry


def chat_services(turn: Turn) -> ChatServices:
    """The turn's services with the members dialogs and handlers use (the assembly's
    ``Services`` provides them; ``bot.services.as_chat_services`` checks that with mypy)."""
    return cast(ChatServices, turn.services)


# ---------------------------------------------------------------- hooks

EnterHook = Callable[[DialogContext], Awaitable[Step | None]]


def once(flag: str) -> Callable[[EnterHook], EnterHook]:
    """Decorates an ``on_enter`` shortcut (e.g. "the opening message already answered this")
    so that it is taken at most once per run of the dialog: ``slots[flag]`` marks it taken,
    and 返回 to the state asks its question after all."""

    def decorate(hook: EnterHook) -> EnterHook:
        async def on_enter(ctx: DialogContext) -> Step | None:
            if ctx.slots.get(flag):
                return None
            step = await hook(ctx)
            if step is not None:
                ctx.slots[flag] = True
            return step

        on_enter.__name__ = getattr(hook, "__name__", "on_enter")
        return on_enter

    return decorate
