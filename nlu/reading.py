"""What a message says besides its intent: the slots it fills and what the person asks for.

Every message is read, including the one that starts a flow (Rasa forms' ``from_entity``
mapping applied at activation), so nobody is asked for what they just typed. The reading
is rule based and shared by every NLU backend:

- ``slots``: ID number, name, relationship, address, phone, the reason for a home visit,
  phone type, app, abroad, can use a smartphone, family can help, can leave home, when
  they last certified (``last_certified``: months ago, the words, overdue or not);
- requests that change the course of a flow: a person (``wants_person``), stopping
  (``quits``), money or fees (``money``), trouble reading Chinese (``reading_trouble``),
  an appeal (``appeal``), a greeting in front of a question (``after_greeting``), a
  reminder (``remind``), small print or poor eyesight (``small_print``, not reading
  trouble). Stopping may come with a remark ("算了 我让儿子带他去"). Qinghai's places
  mean "not abroad"; both a foreign and a home place leave ``abroad`` unknown.

Negations and hedges are read before the plain word: 不会用 / 不太会 are "no", 会一点 is
"yes" (a little).

The cue phrases (regular expressions) are language data in ``nlu/data/cues.yml``, compiled
once at import by ``nlu/cues.py``; this module holds how they are read.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from nlu import entities
from nlu.cues import CUES

# The cue phrases are language data, in nlu/data/cues.yml (compiled by nlu/cues.py).
# (slot, "no" pattern, "yes" pattern), read in this order; the "no" is read first.
_YES_NO = CUES.yes_no_table("smartphone", "family_help", "leave_home", "abroad")
# (slot, ((value, pattern), ...)): the first value whose pattern matches fills the slot.
_CHOICES = CUES.choice_table("phone_type", "app")
(_REASON, _REASON_END, _PERSON, _QUIT, _QUIT_LEAD, _QUESTION, _MONEY, _SMALL_PRINT, _READING_TROUBLE,
 _READING_TROUBLE_OF_ANOTHER, _REMIND, _REMIND_OFF, _APPEAL, _GREETING) = CUES.take(
    "reason", "reason_end", "person", "quit", "quit_lead", "question", "money", "small_print", "reading_trouble",
    "reading_trouble_of_another", "remind", "remind_off", "appeal", "greeting")


@dataclass
class Reading:
    """What one message says (see the module docstring)."""

    slots: dict[str, Any] = field(default_factory=dict)
    id_invalid: bool = False
    wants_person: bool = False
    quits: bool = False
    money: bool = False
    reading_trouble: bool = False
    appeal: bool = False
    remind: bool = False
    small_print: bool = False
    after_greeting: str | None = None


def _yes_no(text: str, no: re.Pattern[str], yes: re.Pattern[str]) -> bool | None:
    if no.search(text):
        return False
    if yes.search(text):
        return True
    return None


BEIJING = ZoneInfo("Asia/Shanghai")


def read(text: str, today: dt.date | None = None) -> Reading:
    """Read ``text`` (a chat message or a voice transcript); ``today`` in Beijing time."""
    reading = Reading()
    if not text:
        return reading
    slots = reading.slots
    found = entities.extract(text)
    for entity in found:
        if entity.type == "id_number":
            slots.setdefault("id_number", str(entity.value).upper())
        elif entity.type == "id_number_invalid":
            reading.id_invalid = True
        elif entity.type == "phone":
            slots.setdefault("phone", entity.value)
        elif entity.type == "relationship":
            slots.setdefault("relationship", entity.value)
    if "id_number" in slots:
        reading.id_invalid = False
    name = entities.extract_name(text)
    if name is None and "id_number" in slots:  # "查认证状态 6301… 张桂兰"
        rest = text.upper().replace(str(slots["id_number"]), " ")
        name = next((token for token in re.split(r"[\s，,。；;：:、]+", rest)
                     if 2 <= len(token) <= 4 and entities.plausible_name(token)), None)
    if name and slots.get("relationship") and re.search(
            rf"(?:我|俺)(?:叫|是|的名字叫|的名字是|名字叫){re.escape(name)}", text):
        name = None  # "我叫李明 帮我妈查一下": the family member's own name, not the pensioner's
    if name:
        slots["name"] = name
    address = entities.extract_address(text)
    if address:
        slots["address"] = address
    reason = _REASON.search(text)
    if reason:
        said = reason.group(0)
        end = _REASON_END.search(said, 2)
        slots["reason"] = (said[: end.start()] if end else said).strip()
    last = entities.extract_last_certified(text, today or dt.datetime.now(BEIJING).date())
    if last is not None:
        slots["last_certified"] = last.as_slot()
    for slot, no, yes in _YES_NO:
        if slot == "abroad" and no.search(text) and yes.search(no.sub(" ", text)):
            continue  # "我爸在国外 我在国内": whose country is unclear, so it is asked
        if slot == "abroad" and no.search(text):
            slots[slot] = False  # "不在国外": the "国外" inside it says nothing more
            continue
        value = _yes_no(text, no, yes)
        if value is not None:
            slots[slot] = value
    for slot, choices in _CHOICES:  # phone type, app
        choice = next((choice for choice, pattern in choices if pattern.search(text)), None)
        if choice is not None:
            slots[slot] = choice
    cleaned = re.sub(r"[\s，,。！!？?~～、]+", "", text)
    reading.wants_person = bool(_PERSON.search(text)) and "人工审核" not in text
    reading.quits = (len(cleaned) <= 12 and bool(_QUIT.match(cleaned))) or (
        bool(_QUIT_LEAD.match(text.strip())) and not _QUESTION.search(text))
    reading.remind = bool(_REMIND.search(text)) and not _REMIND_OFF.search(text)
    reading.money = bool(_MONEY.search(text))
    reading.small_print = bool(_SMALL_PRINT.search(text))
    reading.reading_trouble = bool(_READING_TROUBLE.search(text)) and not reading.small_print \
        and not _READING_TROUBLE_OF_ANOTHER.search(text)
    reading.appeal = bool(_APPEAL.search(text))
    greeting = _GREETING.match(text)
    if greeting and greeting.end() > 0:
        rest = text[greeting.end():].strip()
        if len(rest) >= 4:
            reading.after_greeting = rest
    return reading


# Facts about the pensioner's situation kept for the whole conversation (not identity).
SITUATION = ("smartphone", "family_help", "leave_home", "abroad", "phone_type", "relationship",
             "last_certified", "reason")  # reason: why they cannot leave home (a visit form uses it)
