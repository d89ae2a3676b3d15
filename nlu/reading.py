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
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from nlu import entities

_SMARTPHONE_NO = re.compile(
    r"(?:不会|不太会|不大会|不咋会|不懂|用不来|玩不转|不识|不能)(?:用|玩|弄|使)?(?:智能)?(?:手机|微信|智能机)|"
    r"(?:手机|微信|智能机)[^，,。]{0,4}(?:不会|不太会|不大会|用不来|不懂|玩不转|弄不来|不行)|没有(?:智能)?手机|"
    r"老年机|不会上网|(?:不太会|不大会|不咋会|不会|不怎么会)(?:用|弄)(?!支付宝|青海|掌上|12333|中国领事)")
_SMARTPHONE_YES = re.compile(r"会用(?:智能)?(?:手机|微信)|(?:手机|微信)[^，,。不]{0,3}(?:会用|会一点|还行)|会一点|"
                             r"能用(?:手机|微信)|会视频")
_FAMILY_NO = re.compile(r"没(?:有)?人(?:能)?帮|没人管|一个人(?:住|过)?|独居|"
                        r"(?:子女|孩子|儿女|娃娃|娃|儿子|女儿)们?[^，,。]{0,4}(?:不在|都在外|没在|不管)|"
                        r"没有(?:子女|孩子|儿女)|也没人|(?:子女|孩子|儿女|娃娃|娃|儿子|女儿)们?[^，,。]{0,2}(?:在外地|在外面|在外头|"
                        r"不在家|不在跟前|离得远)|老两口|就我们俩|就我们两个|就我一个|家里没人|没人会")
_FAMILY_YES = re.compile(r"(?:儿子|女儿|孩子|子女|孙子|孙女|家人|家里人|娃娃|娃|儿媳|女婿|外孙)[^，,。不没]{0,4}"
                         r"(?:会|能帮|帮忙|帮我|帮俺|帮着|帮他|帮她|在身边)|有人(?:能)?帮|家里有人|有人会")
_LEAVE_NO = re.compile(r"出门[^，,。]{0,2}(?:难|不便|困难|不了|不方便)|出不了门|不能出门|没法出门|走不了|走不动|"
                       r"卧床|瘫痪|瘫了|瘫在床|下不了床|下不来床|下不来|起不来|下不了楼|腿脚[^，,。]{0,2}不(?:好|便|行)|腿不好|"
                       r"行动不便|坐轮椅|住院|中风|偏瘫|失能|骨折|去不了|去不成|出不去|走路(?:困难|不行|费劲)")
_LEAVE_YES = re.compile(r"能出门|可以出门|能走|走得动|能去")
_ABROAD_YES = re.compile(r"国外|海外|境外|出国|美国|加拿大|澳大利亚|澳洲|日本|韩国|英国|德国|法国|新西兰|新加坡|"
                         r"香港|澳门|台湾|港澳台")
# Qinghai's counties and districts: "一直在湟中" says the pensioner lives at home, not abroad.
_QINGHAI_PLACES = ("青海|西宁|海东|海北|海南州|黄南|果洛|玉树|海西|城东|城中|城西|城北|湟中|湟源|大通|互助|乐都|平安|"
                   "民和|化隆|循化|门源|祁连|海晏|刚察|同仁|尖扎|泽库|河南县|共和|同德|贵德|兴海|贵南|玛沁|班玛|"
                   "甘德|达日|久治|玛多|杂多|称多|治多|囊谦|曲麻莱|格尔木|德令哈|乌兰|都兰|天峻|茫崖|大柴旦")
_ABROAD_NO = re.compile(rf"在国内|不在国外|没出国|没出过国|没出去过|没去过国外|没在国外|"
                        rf"(?:在|住在|家在)(?:{_QINGHAI_PLACES})")
_IOS = re.compile(r"苹果|iphone|ios|爱疯", re.I)
_ANDROID = re.compile(r"安卓|华为|小米|oppo|vivo|荣耀|红米|三星|魅族|一加|android", re.I)
_APPS = (("app_qinghai", re.compile(r"青海人[社设事]\s*[通同]|人[社设]\s*通|人社同|仁社通")),
         ("app_12333", re.compile(r"掌上\s*12333|12333\s*(?:app|APP|软件|应用)|国家社会保险公共服务平台|国家社保")),
         ("app_alipay", re.compile(r"支付宝")),
         ("app_consular", re.compile(r"中国领事|领事")))
_REASON = re.compile(r"(?:卧床|瘫痪|瘫了|瘫在床|行动不便|腿脚不好|腿脚不便|腿脚不行|走不了|走不动|下不了床|下不来床|下不来|"
                     r"起不来|生病|病重|重病|住院|残疾|中风|偏瘫|骨折|失能|高龄|出不了门|不能出门|坐轮椅|老年痴呆|痴呆|糊涂)"
                     r"[^，,。；;\s]{0,10}")
# Where a reason stops: the request that follows it ("瘫在床上下不来 能不能派人来").
_REASON_END = re.compile(r"能不能|能否|可不可以|可以|怎么|咋|想|要|申请|认证|派人|上门|吗|呢")
_PERSON = re.compile(r"找人工|转人工|要人工|人工服务|人工客服|转接人工|找真人|(?<![是个])真人|找客服|工作人员联系我|让工作人员|"
                     r"叫工作人员|找工作人员|打电话给我|给我打电话|给我回电话|找个人|有没有人|让人联系我|联系我吧")
_QUIT = re.compile(r"^(?:算了|我|那|哎|唉)?(?:不想|不|先不|不要|懒得)(?:弄|办|搞|做|认证|整|查|申请|填)了?(?:吧|啦)?"
                   r"(?:退出|算了)?$|^(?:不弄了|不办了|不搞了|不整了)?(?:退出|退出吧|算了吧|不要了)$")
_MONEY = re.compile(r"\d+\s*(?:块|元|百|千)|[一二两三四五六七八九十百千]+\s*(?:块|元)|交钱|收费|给钱|转账|红包|手续费|"
                    r"多少钱|花钱|付钱|要钱|交.{0,4}钱|收.{0,4}钱|保证金|押金")
# Poor eyesight or small print: not trouble reading Chinese, and not poor light.
_SMALL_PRINT = re.compile(r"字(?:太|很|有点|特别)?小|眼睛(?:不好|花了|看不清)|眼神不好|看不清(?:字|屏幕上的字|手机上的字)")
_READING_TROUBLE = re.compile(r"(?:汉字|中文|汉语|字)[^，,。]{0,3}(?:看不懂|看不太懂|不认识|认不得|不会|不好|看不清|认不全)|"
                              r"不识字|不认字|不认得字|文盲|看不懂汉字|不会汉语|不会说汉语|普通话不好")
# "不办了 让儿子带他去社区": stopping, then a remark (no question).
_QUIT_LEAD = re.compile(r"^(?:哎|唉|那)?(?:(?:算了|不弄了|不办了|不搞了|不整了|不申请了|不查了|不想弄了|不想办了|不认证了)"
                        r"(?:吧|啦)?)+[\s，,。！!]+")
# Asking to be reminded (not "不用提醒了", a global command).
_REMIND = re.compile(r"提醒(?:我|俺|一下|下|我们|着)|提个醒|到时候(?:通知|告诉)我|通知我|记得叫我")
_APPEAL = re.compile(r"申诉|复核|人工审核|重新审核")
_GREETING = re.compile(r"^(?:喂+|你好|您好|哈喽|嗨|在吗|在不在|请问|麻烦问一下|打扰一下|那个|嗯|哎|唉)"
                       r"(?:[，,。！!？?\s~～]*(?:喂+|你好|您好|在吗|请问|我想问一下|想问一下|问一下|那个|嗯))*"
                       r"[，,。！!？?\s~～]*")


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
    for slot, no, yes in (("smartphone", _SMARTPHONE_NO, _SMARTPHONE_YES),
                          ("family_help", _FAMILY_NO, _FAMILY_YES),
                          ("leave_home", _LEAVE_NO, _LEAVE_YES),
                          ("abroad", _ABROAD_NO, _ABROAD_YES)):
        if slot == "abroad" and no.search(text) and yes.search(no.sub(" ", text)):
            continue  # "我爸在国外 我在国内": whose country is unclear, so it is asked
        if slot == "abroad" and no.search(text):
            slots[slot] = False  # "不在国外": the "国外" inside it says nothing more
            continue
        value = _yes_no(text, no, yes)
        if value is not None:
            slots[slot] = value
    if _IOS.search(text):
        slots["phone_type"] = "ios"
    elif _ANDROID.search(text):
        slots["phone_type"] = "android"
    for app, pattern in _APPS:
        if pattern.search(text):
            slots["app"] = app
            break
    cleaned = re.sub(r"[\s，,。！!？?~～、]+", "", text)
    reading.wants_person = bool(_PERSON.search(text)) and "人工审核" not in text
    reading.quits = (len(cleaned) <= 12 and bool(_QUIT.match(cleaned))) or (
        bool(_QUIT_LEAD.match(text.strip())) and not re.search(r"[?？吗呢]\s*$|怎么|咋|能不能|可不可以|什么|啥|哪|多少", text))
    reading.remind = bool(_REMIND.search(text)) and not re.search(r"不用|不要|别|取消|关闭|不想", text)
    reading.money = bool(_MONEY.search(text))
    reading.small_print = bool(_SMALL_PRINT.search(text))
    reading.reading_trouble = bool(_READING_TROUBLE.search(text)) and not reading.small_print
    reading.appeal = bool(_APPEAL.search(text))
    greeting = _GREETING.match(text)
    if greeting and greeting.end() > 0:
        rest = text[greeting.end():].strip()
        if len(rest) >= 4:
            reading.after_greeting = rest
    return reading


# Facts about the pensioner's situation kept for the whole conversation (not identity).
SITUATION = ("smartphone", "family_help", "leave_home", "abroad", "phone_type", "relationship",
             "last_certified")
