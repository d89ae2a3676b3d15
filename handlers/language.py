"""The chat's language: switching between Chinese and Tibetan, and reading Tibetan input.

``read_language`` runs before NLU. It
- switches to Tibetan on a request for it (藏文 / 藏语 / བོད་ཡིག / བོད་སྐད, "有藏文的吗")
  or on a message written mostly in Tibetan script, and back to Chinese on 汉语 / 中文 /
  汉文 / རྒྱ་ཡིག;
- rewrites the message as the Chinese pipeline reads it: Tibetan digits as Arabic ones and a
  Tibetan option label as its Chinese label (``bot.core.i18n.to_source``).

An explicit request sets ``turn.language_switch``; the router then answers a message that
asked only that with the menu (or the current question) in the new language.
"""

from __future__ import annotations

import dataclasses
import re

from bot.core.i18n import BO, ZH, mostly_tibetan, to_source
from bot.core.pipeline import NextStep, Turn
from nlu.rules import emoji_as_words

# Asking for Tibetan: the script or the language named, or "Tibetan, can't read Chinese".
_WANTS_TIBETAN = re.compile(r"藏文|藏语|藏话|藏字|བོད་ཡིག|བོད་སྐད|བོད་ཡིག|བོད་ཀྱི་སྐད")
_CANNOT_READ_CHINESE = re.compile(r"(?:汉字|中文|汉语|汉文|字)(?:\S{0,3})(?:看不懂|不懂|不认识|不会|看不太懂|认不全)|"
                                  r"不(?:太)?(?:认识|懂|会)(?:汉字|中文|汉语|汉文)")
_REFUSES = re.compile(r"不要藏|不用藏|不需要藏|别用藏")
# Asking for Chinese (only acted on while the chat is in Tibetan).
_WANTS_CHINESE = re.compile(r"汉语|中文|汉文|普通话|རྒྱ་ཡིག|རྒྱ་སྐད|རྒྱ་ནག་གི་སྐད")


def requested_language(text: str, current: str) -> str | None:
    """The language this message asks for, if it asks for one."""
    if not text:
        return None
    # "我是藏族，汉字看不太懂" alone is answered as trouble reading (handlers/listening.py), which
    # offers Tibetan in both scripts; naming the language or writing in it switches.
    if current != BO and not _REFUSES.search(text) and _WANTS_TIBETAN.search(text):
        return BO
    if current == BO and _WANTS_CHINESE.search(text) and not _CANNOT_READ_CHINESE.search(text):
        return ZH
    return None


def only_asks_language(text: str) -> bool:
    """True when a message is about the language and nothing else (no certification question)."""
    rest = _WANTS_TIBETAN.sub("", _WANTS_CHINESE.sub("", text))
    rest = re.sub(r"[\s，。！？、,.!?\u0F0B-\u0F14]+", "", rest)
    if len(rest) <= 6:
        return True
    return not re.search(r"认证|刷脸|失败|材料|上门|状态|养老金|ངོས་འཛིན|ལག་ཁྱེར", rest)


async def read_language(turn: Turn, next_step: NextStep) -> None:
    """Switch the chat's language when asked, and read Tibetan input as the Chinese pipeline does."""
    conv = turn.conversation
    assert conv is not None
    text = turn.msg.content
    if text:
        wanted = requested_language(text, conv.language)
        if wanted is not None:
            conv.language = wanted
            turn.language_switch = wanted
        elif conv.language != BO and mostly_tibetan(text):
            conv.language = BO
        source = emoji_as_words(text) or to_source(text, conv.language)  # "[强]" is "好的"
        if source != text:
            turn.msg = dataclasses.replace(turn.msg, text=source, voice_transcript=None)
    await next_step()
