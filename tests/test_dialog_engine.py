"""The dialog engine itself: option matching, back, conditional options, forms, timeout,
and that every registered dialog's diagram file matches its code."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.core.conversation import Frame
from bot.core.messages import Reply
from bot.services import build_dialogs
from dialogs import diagrams
from dialogs.engine import (
    Dialog,
    DialogContext,
    Finish,
    Form,
    Invalid,
    Option,
    State,
    Step,
    match_option,
)
from tests.conftest import TestBot

OPTIONS = [
    Option("会用", words=("会用", "会"), intents=("affirm",)),
    Option("不会用", words=("不会用", "不会"), intents=("deny",)),
    Option("转人工", words=("人工",)),
]


@pytest.mark.parametrize(("text", "intent", "expected"), [
    ("1", None, "会用"),
    ("２", None, "不会用"),
    ("第三个", None, "转人工"),
    ("选2", None, "不会用"),
    ("4", None, None),
    ("0", None, None),
    ("会用", None, "会用"),
    ("不会用", None, "不会用"),
    ("我不会用智能手机", None, "不会用"),  # the longest word inside wins
    ("我会用的", None, "会用"),
    ("嗯嗯", "affirm", "会用"),
    ("随便说点", None, None),
    ("", None, None),
])
def test_option_matching_by_number_words_and_intent(text: str, intent: str | None,
                                                    expected: str | None) -> None:
    picked = match_option(OPTIONS, text, intent)
    assert (picked.label if picked else None) == expected


async def _finish(ctx: DialogContext) -> Step:
    return Finish()


class PairForm(Form):
    slots = ("colour", "size")

    def ask_colour(self, ctx: DialogContext) -> str:
        return "什么颜色？"

    def ask_size(self, ctx: DialogContext) -> str:
        return "多大？"

    def extract(self, ctx: DialogContext, text: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for part in text.split():
            if part in ("红", "蓝"):
                found["colour"] = part
            elif part.isdigit():
                found["size"] = part
        return found or super().extract(ctx, text)

    async def validate_size(self, value: Any, ctx: DialogContext) -> int:
        if not str(value).isdigit() or not 1 <= int(value) <= 10:
            raise Invalid("大小要写 1 到 10 的数字。")
        return int(value)

    async def submit(self, ctx: DialogContext) -> Step:
        return Finish([Reply(f"好的：{ctx.slots['colour']} {ctx.slots['size']}")])


def _visible_when_flag(ctx: DialogContext) -> bool:
    return bool(ctx.memory.get("flag"))


TEST_DIALOG = Dialog(
    name="engine_test",
    title="engine test",
    start="first",
    timeout_s=60,
    states={
        "first": State("第一问", options=[Option("去第二问", goto="second"),
                                         Option("隐藏项", run=_finish, when=_visible_when_flag)]),
        "second": State("第二问", options=[Option("去表单", goto="form"),
                                          Option("上一步", back=True)]),
        "form": PairForm().state(),
    },
)


async def _start(testbot: TestBot, state: str = "first") -> None:
    testbot.services.dialogs.add(TEST_DIALOG)
    conv = await testbot.conversation()
    conv.stack = [Frame(dialog="engine_test", state=state)]
    await testbot.services.conversations.save(conv)


async def test_back_returns_to_the_previous_question(testbot: TestBot) -> None:
    await _start(testbot)
    await testbot.say("1")
    assert "第二问" in testbot.text
    await testbot.say("返回")  # global command
    assert "第一问" in testbot.text
    await testbot.say("返回")
    assert "已经是第一步了" in testbot.text and "第一问" in testbot.text
    await testbot.say("去第二问")
    await testbot.say("2")  # the option that means back
    assert "第一问" in testbot.text
    assert (await testbot.conversation()).frame.state == "first"


async def test_conditional_option_is_shown_and_matched_only_when_true(testbot: TestBot) -> None:
    await _start(testbot)
    await testbot.say("9")
    assert testbot.options == ["去第二问"]
    await testbot.say("2")
    assert "没听明白" in testbot.text
    conv = await testbot.conversation()
    conv.memory["flag"] = True
    conv.misunderstood = 0
    await testbot.services.conversations.save(conv)
    await testbot.say("啥")
    assert testbot.options == ["去第二问", "隐藏项"]
    await testbot.say("2")
    assert (await testbot.conversation()).frame.dialog == "main_menu"  # finished: the menu


async def test_form_fills_several_slots_from_one_message(testbot: TestBot) -> None:
    await _start(testbot, "second")
    await testbot.say("去表单")
    assert "什么颜色" in testbot.text
    await testbot.say("红 3")
    assert "好的：红 3" in testbot.text


async def test_form_validates_asks_next_and_back_unasks(testbot: TestBot) -> None:
    await _start(testbot, "second")
    await testbot.say("1")
    await testbot.say("蓝")
    assert "多大" in testbot.text
    await testbot.say("返回")  # forget the colour, ask it again
    assert "什么颜色" in testbot.text
    await testbot.say("红")
    await testbot.say("99")
    assert "1 到 10" in testbot.text and "多大" in testbot.text
    await testbot.say("7")
    assert "好的：红 7" in testbot.text


async def test_dialog_times_out(testbot: TestBot) -> None:
    await _start(testbot)
    conv = await testbot.conversation()
    conv.stack[-1].updated_at = time.time() - 61
    await testbot.services.conversations.save(conv)
    await testbot.say("1")
    assert "时间太久" in testbot.text
    assert (await testbot.conversation()).frame is None or \
        (await testbot.conversation()).frame.dialog != "engine_test"


def test_every_registered_dialog_has_a_matching_diagram() -> None:
    dialogs = list(build_dialogs().dialogs.values())
    assert len(dialogs) >= 10
    assert diagrams.stale(dialogs) == [], "run: python -m dialogs.diagrams"
    for dialog in dialogs:
        text = diagrams.diagram_path(dialog).read_text(encoding="utf-8")
        assert dialog.to_mermaid() in text
        for name in dialog.states:
            assert name in text


def test_unknown_goto_target_is_refused() -> None:
    with pytest.raises(ValueError):
        Dialog(name="bad", title="bad", start="a", states={"a": State("x", [Option("y", goto="nowhere")])})
