"""Deterministic rules that run before any statistical model.

Global commands (back, restart, cancel, a person) must work the same every time, so
they are exact patterns, not guesses. The result is merged ahead of the model's
candidates with confidence 1.0.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.core.understanding import IntentScore

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


# Opting out of certification reminders (issue 20), in any state: "不用提醒了", "取消提醒",
# "以后别再提醒我了", "关闭认证提醒"... as the whole message.
STOP_REMINDERS = re.compile(
    r"^(以后|今后|往后|下次)?(请|麻烦|你)?(就|也)?(不用|不要|别|无需|不需要|用不着|甭|取消|关闭|关掉|停止|退订|停掉)"
    r"(再)?(给我|帮我|跟我|给我们|通知)?(发)?(认证|到期|养老金)?(的)?(消息)?提醒(我|我们|了|啦|吧|服务|功能|消息)*$"
    r"|^(认证)?提醒(取消|关闭|关掉|停掉|不要|不用)(了|吧|掉)*$")


# Giving up on waiting for a person, the ways people say it besides the bare "算了" / "取消":
# "算了吧", "好吧那算了", "不等了", "不用了 谢谢", "我自己弄吧 不要人工了". Only short messages:
# a longer one says more than that (a question for the person, who will read it).
_GIVES_UP = re.compile(r"算了|不等了|不想等|等不了|不排了|不排队|取消排队|退出排队|不用了|不需要了|"
                       r"不要人工|不用人工|不找人工|我自己(?:弄|来|办|搞|试)")
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
