"""Deterministic rules that run before any statistical model.

Global commands (back, restart, cancel, a person) must work the same every time, so
they are exact patterns, not guesses. The result is merged ahead of the model's
candidates with confidence 1.0.
"""

from __future__ import annotations

import re

from nlu.base import IntentScore

# intent -> whole-message patterns (after stripping punctuation and spaces)
COMMAND_PATTERNS: dict[str, re.Pattern[str]] = {
    "cmd_back": re.compile(r"^(返回|上一步|回去|退回|返回上一步|back)$", re.I),
    "cmd_restart": re.compile(r"^(重新开始|主菜单|菜单|回到主菜单|从头开始|重来|restart|menu|/start)$", re.I),
    "cmd_cancel": re.compile(r"^(算了|取消|不办了|不用了|退出|cancel|/cancel)$", re.I),
    "human_handoff": re.compile(
        r"^(转人工|人工|人工服务|人工客服|找人工|我要人工|转接人工|找客服|真人|找真人)$", re.I
    ),
}
_STRIP = re.compile(r"[\s，。！？、,.!?~～…]+")


def normalise(text: str) -> str:
    """Lower-case and drop spaces and punctuation, for matching."""
    return _STRIP.sub("", text).lower()


def match_command(text: str) -> IntentScore | None:
    """The global command this whole message is, if any."""
    cleaned = normalise(text)
    for intent, pattern in COMMAND_PATTERNS.items():
        if pattern.match(cleaned):
            return IntentScore(intent, 1.0)
    return None
