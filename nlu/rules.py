"""Deterministic rules that run before any statistical model.

Global commands (back, restart, cancel, a person) must work the same every time, so
they are exact patterns, not guesses. The result is merged ahead of the model's
candidates with confidence 1.0.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.core.understanding import IntentScore
from nlu.cues import CUES

_STRIP = re.compile(r"[\s，。！？、,.!?~～…\u0F0D-\u0F14]+|\u0F0B(?=[\s\u0F0D-\u0F14]|$)")  # + Tibetan shad, final tsheg


@lru_cache(maxsize=8192)  # a turn normalises the same option labels and message many times
def normalise(text: str) -> str:
    """Lower-case and drop spaces and punctuation (Chinese, Tibetan), for matching."""
    return _STRIP.sub("", text).lower()


# intent -> the whole messages (after stripping punctuation and spaces) that are this command
COMMAND_WORDS: dict[str, tuple[str, ...]] = {
    "cmd_back": ("返回", "上一步", "回去", "退回", "返回上一步", "back", "ཕྱིར་ལོག", "སྔ་མར་ལོག", "ཕྱིར་ལོག་རོགས"),
    "cmd_restart": ("重新开始", "主菜单", "菜单", "回到主菜单", "从头开始", "重来", "restart", "menu",
                    "/start", "འདེམས་ཐོ", "འདེམས་ཐོ་གཙོ་བོ", "ཡང་བསྐྱར་འགོ་འཛུགས"),
    "cmd_cancel": ("算了", "取消", "不办了", "不用了", "退出", "cancel", "/cancel", "དོར", "དོར་རོགས", "མཚམས་འཇོག"),
    "human_handoff": ("转人工", "人工", "人工服务", "人工客服", "找人工", "我要人工", "转接人工", "找客服",
                      "真人", "找真人", "ལས་བྱེད་པ་འབོད", "ལས་བྱེད་པ", "མི་དངོས"),
}
COMMAND_PATTERNS: dict[str, re.Pattern[str]] = {
    intent: re.compile("^(" + "|".join(re.escape(normalise(word)) for word in words) + ")$", re.I)
    for intent, words in COMMAND_WORDS.items()
}
# All commands in one pass; the first intent (in the order above) that matches wins.
_ANY_COMMAND = re.compile(
    "|".join(f"(?P<{intent}>{pattern.pattern})" for intent, pattern in COMMAND_PATTERNS.items()), re.I
)
# re.I compares character by character, so a match is exactly as long as its word.
_LONGEST_COMMAND = max(len(word) for words in COMMAND_WORDS.values() for word in words)


# Cue phrases in nlu/data/cues.yml: opting out of certification reminders (issue 20) as the
# whole message, in any state ("不用提醒了", "取消提醒"...), and giving up on waiting for a
# person ("算了吧", "不等了", "我自己弄吧"...). Only short messages give up: a longer one says
# more than that (a question for the person, who will read it).
STOP_REMINDERS, _GIVES_UP = CUES.take("stop_reminders", "gives_up")
_GIVES_UP_LONGEST = 14


def gives_up_waiting(text: str) -> bool:
    """A short message that says the person no longer wants to wait for (or talk to) staff."""
    cleaned = normalise(text)
    return len(cleaned) <= _GIVES_UP_LONGEST and bool(_GIVES_UP.search(cleaned))


def match_command(text: str) -> IntentScore | None:
    """The global command this whole message is, if any."""
    cleaned = normalise(text)
    if len(cleaned) <= 20 and STOP_REMINDERS.match(cleaned):
        return IntentScore("cmd_stop_reminders", 1.0)
    if len(cleaned) > _LONGEST_COMMAND:
        return None  # most messages: longer than any command
    match = _ANY_COMMAND.match(cleaned)
    if match is None:
        return None
    intent = next(name for name, value in match.groupdict().items() if value is not None)
    return IntentScore(intent, 1.0)


# A message of nothing but emoji, read as the words they stand for: WeChat sends its own as
# text codes ("[强]", "[抱拳]"), phones send Unicode ones. Older people answer with them.
EMOJI_WORDS: dict[str, str] = {
    "[强]": "好的", "[OK]": "好的", "[ok]": "好的", "[好的]": "好的", "[微笑]": "好的", "[呲牙]": "好的",
    "👍": "好的", "👌": "好的", "🙂": "好的", "😊": "好的", "✅": "好的",
    "[抱拳]": "谢谢", "[握手]": "谢谢", "[玫瑰]": "谢谢", "[爱心]": "谢谢", "[合十]": "谢谢",
    "🙏": "谢谢", "🌹": "谢谢", "❤️": "谢谢", "❤": "谢谢", "💐": "谢谢",
}
_EMOJI_PATTERN = re.compile("|".join(re.escape(code) for code in sorted(EMOJI_WORDS, key=len, reverse=True)))


def emoji_as_words(text: str) -> str | None:
    """The word a message made only of emoji stands for ("[强][强]" -> 好的), else None."""
    codes = _EMOJI_PATTERN.findall(text)
    rest = _EMOJI_PATTERN.sub("", text)
    if not codes or rest.strip(" \u200d\ufe0f\n，,。!！"):
        return None
    return EMOJI_WORDS[codes[0]]

