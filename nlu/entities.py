"""Rule-based entity extraction shared by every backend.

- ``id_number``: 18-digit resident ID, validated with the GB 11643-1999 checksum; an
  18-character candidate with a bad checksum is returned as ``id_number_invalid`` so the
  user can be told exactly that.
- ``phone``: mainland mobile numbers.
- ``relationship``: family words from the ``relationship`` lookup table of nlu.yml,
  normalised with its synonyms (爸, 老爹, 阿大 -> 父亲), the surface form in ``extra``.
- ``region``: Qinghai prefectures and cities from the ``region`` lookup table, normalised
  to the short prefecture name (海西蒙古族藏族自治州, 格尔木 -> 海西).
- ``date``: absolute dates (2024年3月5日, 2024-03-05, 3月5号) and a few relative words
  (今天, 昨天, 去年 ...) as ISO ``YYYY-MM-DD`` (``YYYY`` for a bare year).
- ``last_certified`` (:func:`extract_last_certified`): when the pensioner last certified
  (去年3月认证的, 2025年5月, 半年前, 一年多没认证了, 上个月刚认证), as whole months ago.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.idnumber import id_checksum_ok as id_checksum_ok  # re-exported for callers
from bot.core.idnumber import with_check_digit as with_check_digit
from bot.core.understanding import Entity
from nlu.training_data import DATA_DIR, TrainingData, load

_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
_FULLWIDTH = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789xX")
_DIGIT_GAP = re.compile(r"(?<=\d)[\s\-]+(?=[\dXx])")
_ANY_DIGIT = re.compile(r"\d")  # full-width digits are \d too


# Spoken digits (voice transcripts): 幺 for 1, 洞 for 0, 叉 for X.
_SPOKEN_DIGITS = {"零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "二": "2", "两": "2",
                  "三": "3", "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_SPOKEN_RUN = re.compile(r"[零〇洞一幺二两三四五六七八九\d][零〇洞一幺二两三四五六七八九\d\s，,、]{9,}"
                         r"[零〇洞一幺二两三四五六七八九\dXx叉]")


def _spoken_to_digits(match: re.Match[str]) -> str:
    run = re.sub(r"[\s，,、]", "", match.group(0))
    if sum(ch in _SPOKEN_DIGITS for ch in run) < 3:
        return match.group(0)  # ASCII digits already; nothing spoken to convert
    converted = "".join(_SPOKEN_DIGITS.get(ch, "X" if ch in "叉Xx" else ch) for ch in run)
    return converted if len(converted) in (11, 18) else match.group(0)


def normalise_digits(text: str) -> str:
    """Full-width digits to ASCII, spaces inside digit runs removed, and a spoken run of
    11 or 18 Chinese digits (六三零一…, 幺三八…) written as digits."""
    text = text.translate(_FULLWIDTH)
    if any(ch in _SPOKEN_DIGITS for ch in text):
        text = _SPOKEN_RUN.sub(_spoken_to_digits, text)
    return _DIGIT_GAP.sub("", text)


def extract_numbers(text: str) -> list[Entity]:
    """ID numbers (valid or not) and phone numbers in ``text``."""
    if _ANY_DIGIT.search(text) is None and not _spoken_digit_run(text):
        return []  # both need digits; most chat messages have none
    cleaned = normalise_digits(text)
    entities: list[Entity] = []
    for match in _ID_CANDIDATE.finditer(cleaned):
        value = match.group(1).upper()
        kind = "id_number" if id_checksum_ok(value) else "id_number_invalid"
        entities.append(Entity(kind, value, match.start(1), match.end(1)))
    for match in _PHONE.finditer(cleaned):
        entities.append(Entity("phone", match.group(1), match.start(1), match.end(1)))
    return entities


def _spoken_digit_run(text: str) -> bool:
    return sum(ch in _SPOKEN_DIGITS for ch in text) >= 11


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9, "十": 10}
_NUM = r"(?:\d{1,4}|[零〇一二两三四五六七八九十]{1,4})"
_ABSOLUTE_DATE = re.compile(
    rf"(?:(?P<year>\d{{4}}|[零〇一二三四五六七八九]{{4}})\s*年\s*)?(?P<month>{_NUM})\s*月\s*"
    rf"(?:(?P<day>{_NUM})\s*[日号])?"
)
_ISO_DATE = re.compile(r"(?<!\d)(?P<year>\d{4})[-/.](?P<month>\d{1,2})[-/.](?P<day>\d{1,2})(?!\d)")
_YEAR_ONLY = re.compile(r"(?<!\d)(?P<year>(?:19|20)\d{2})\s*年(?!\s*\d{1,2}\s*月)")
_RELATIVE_DAYS = {"前天": -2, "昨天": -1, "今天": 0, "今儿": 0, "明天": 1, "明儿": 1, "后天": 2}
_RELATIVE_YEARS = {"前年": -2, "去年": -1, "今年": 0, "明年": 1}
# No two relative words can overlap (none ends with a character another starts with), so
# one pass finds exactly the occurrences that a search per word would find.
_RELATIVE = re.compile("|".join(re.escape(word) for word in (*_RELATIVE_DAYS, *_RELATIVE_YEARS)))
# Every date pattern needs one of these: 月 (absolute), 年 (bare or relative year), 天/儿
# (relative day) or digits around - / . (ISO). Without any, there is no date to look for.
_MAYBE_DATE = re.compile(r"[年月天儿]|\d[-/.]\d")


def _number(token: str) -> int | None:
    """Arabic or Chinese numerals (一九五四, 十二, 二十五) to int."""
    if token.isdigit():
        return int(token)
    if all(ch in _CN_DIGITS and ch != "十" for ch in token):  # digit by digit: 一九五四
        return int("".join(str(_CN_DIGITS[ch]) for ch in token))
    if "十" in token:
        tens, _, ones = token.partition("十")
        high = _CN_DIGITS.get(tens, 0) if tens else 1
        low = _CN_DIGITS.get(ones, 0) if ones else 0
        return high * 10 + low
    return None


class DateSpans:
    """Date entities found in ``text``, each kept only when it overlaps none found before."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: list[Entity] = []
        self.taken: list[tuple[int, int]] = []

    def add(self, value: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in self.taken):
            return
        self.taken.append((start, end))
        self.found.append(Entity("date", value, start, end, {"text": self.text[start:end]}))

    def add_written_dates(self, today: dt.date) -> None:
        """ISO dates, then "2024年3月5日"-style dates (a month alone is ``YYYY-MM``), then years."""
        for match in _ISO_DATE.finditer(self.text):
            try:
                value = dt.date(int(match["year"]), int(match["month"]), int(match["day"])).isoformat()
            except ValueError:
                continue
            self.add(value, match.start(), match.end())
        for match in _ABSOLUTE_DATE.finditer(self.text):
            year = _number(match["year"]) if match["year"] else today.year
            month = _number(match["month"])
            day = _number(match["day"]) if match["day"] else None
            if year is None or month is None or not 1 <= month <= 12:
                continue
            if day is None:
                self.add(f"{year:04d}-{month:02d}", match.start(), match.end())
                continue
            try:
                self.add(dt.date(year, month, day).isoformat(), match.start(), match.end())
            except ValueError:
                continue
        for match in _YEAR_ONLY.finditer(self.text):
            self.add(match["year"], match.start(), match.end())

    def in_order(self) -> list[Entity]:
        return sorted(self.found, key=lambda entity: entity.start)


def extract_dates(text: str, today: dt.date | None = None) -> list[Entity]:
    """Dates in ``text`` as ISO strings; relative words are resolved against ``today``."""
    if _MAYBE_DATE.search(text) is None:
        return []
    today = today or dt.date.today()
    spans = DateSpans(text)
    spans.add_written_dates(today)
    for match in _RELATIVE.finditer(text):
        word = match.group(0)
        if word in _RELATIVE_DAYS:
            value = (today + dt.timedelta(days=_RELATIVE_DAYS[word])).isoformat()
        else:
            value = str(today.year + _RELATIVE_YEARS[word])
        spans.add(value, match.start(), match.end())
    return spans.in_order()


@dataclass
class LookupExtractor:
    """Longest-match lookup-table entities with synonym normalisation (Rasa-like)."""

    tables: dict[str, list[str]]
    synonyms: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        terms = [(term, entity_type) for entity_type, values in self.tables.items() for term in values]
        terms.sort(key=lambda item: len(item[0]), reverse=True)
        self._terms = terms
        self._pattern = re.compile("|".join(re.escape(term) for term, _ in terms)) if terms else None
        self._types = dict((term, entity_type) for term, entity_type in reversed(terms))

    @classmethod
    def from_training_data(cls, data: TrainingData, types: tuple[str, ...] = ("relationship", "region")
                           ) -> LookupExtractor:
        return cls({t: data.lookups.get(t, []) for t in types}, dict(data.synonyms))

    def canonical(self, value: str) -> str:
        """The synonym's canonical value (EntitySynonymMapper), or the value itself."""
        return self.synonyms.get(value, value)

    def extract(self, text: str) -> list[Entity]:
        if self._pattern is None:
            return []
        return [Entity(self._types[m.group(0)], self.canonical(m.group(0)), m.start(), m.end(),
                       {"text": m.group(0)})
                for m in self._pattern.finditer(text)]


@functools.cache
def default_lookups(path: Path = DATA_DIR / "nlu.yml") -> LookupExtractor:
    """The lookup extractor built from nlu.yml (read once; immutable)."""
    return LookupExtractor.from_training_data(load(path))


def extract(text: str, today: dt.date | None = None) -> list[Entity]:
    """Every entity in ``text``: ID numbers, phones, relationships, regions, dates."""
    found = extract_numbers(text)
    found.extend(default_lookups().extract(text))
    numbers = [(e.start, e.end) for e in found if e.type in ("id_number", "id_number_invalid", "phone")]
    found.extend(d for d in extract_dates(text, today)
                 if not any(d.start < end and start < d.end for start, end in numbers))
    return found


# ---------------------------------------------------------------- names and addresses

# What follows a name in a sentence ("她叫王秀英卧床三年了", "我爸叫马福海身份证…").
_AFTER_NAME = re.compile(r"身份证|今年|卧床|瘫痪|岁|住|电话|手机|他|她|的|是|在|要|想|能|已经|行动|不|没|生病|"
                         r"得|年|和|跟|老人|现在|家|一直|腿|病|号码|认证|帮|给")
_RELATION_CUE = (r"(?:我爸爸|我妈妈|我爸|我妈|我父亲|我母亲|我爷爷|我奶奶|我外公|我外婆|我老伴|老伴|我爱人|"
                 r"我阿爸|我阿妈|老人)")
# An explicit cue (叫, 名字, 姓名) is surer than a relationship word followed by a name
# ("帮我奶奶查一下…名字张桂兰": 张桂兰, not 查一下).
_NAME_CUE = re.compile(rf"(?:{_RELATION_CUE}(?:的名字|名字|的姓名|姓名)(?:叫做|叫|是)?|{_RELATION_CUE}(?:叫做|叫|是)|"
                       r"名字叫|名字是|姓名是|姓名|名字|名叫|叫做|叫)[:：\s]*([\u4e00-\u9fff·•]{2,12})")
_RELATION_NAME = re.compile(rf"{_RELATION_CUE}[:：\s]*([\u4e00-\u9fff·•]{{2,12}})")
# "我是马福海 …", "我就是张桂兰": introducing oneself at the start of a message or a clause.
_SELF_NAME = re.compile(r"(?:^|[\s，,。；;！!]|你好|您好|喂)(?:我是|我就是|本人是|本人)([\u4e00-\u9fff·•]{2,12})")
_NOT_A_NAME = re.compile(
    r"[了吗呢吧啊嘛呀哦哈嗯么咋啥谁哪呗]|不|没|床|瘫|病|残|痪|住院|提交|认证|人工|工作|身份|电话|手机|号码|"
    r"地址|县|市|村|路|乡|镇|街|区|小区|确认|修改|取消|退出|返回|主菜单|谢谢|你好|您好|我们|你们|他们|自己|"
    r"老人|家人|儿子|女儿|妈妈|爸爸|父亲|母亲|可以|知道|不行|怎么|什么|为什么|帮忙|麻烦|行动|方便|出门|"
    r"上门|刷脸|照片|拍照|申请|登记|办理|查询|状态|失败|成功|下一步|好的|对的|是的|明白|看懂|一下|查查|看看|问问")
# Han surnames that start most names; names without one (Tibetan, Mongolian) are checked by
# their first syllable.
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁"
    "尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时"
    "穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾"
    "隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮"
    "粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬"
    "来扈晁芮都普阿次旦多扎才卓尼格拉贡仁洛达更完央德丹其乌额斯那宝特图央措拉加切索南看公保羊"
    "喇赛且夏冶鲜哈撒拜伏")
_NAME_SHAPE = re.compile(r"^[\u4e00-\u9fff]{2,6}$|^[\u4e00-\u9fff]{1,6}[·•][\u4e00-\u9fff]{1,8}$")


# Words of a sentence, never of a name (ར་སྤྲོད certify, བྱེད do, འདོད want, དགོས need...).
_TIBETAN_NOT_A_NAME = re.compile(r"ར་སྤྲོད|བྱེད|འདོད|དགོས|ཡིན|ཡོད|རོགས|ཐུབ|འགྲོ|ཁ་པར|ལག་ཁྱེར|(?:^|་)(?:མི|མ|ཅི|ག་རེ)་")
_TIBETAN_NAME = re.compile(r"^[\u0F40-\u0FBC]+(?:[\u0F0B ][\u0F40-\u0FBC]+){0,4}[\u0F0B\u0F0D]?$")


def plausible_name(value: str) -> bool:
    """A plausible personal name: 张桂兰, 马福海, 才让卓玛, 扎西, 阿依古丽·买买提, བཀྲ་ཤིས་སྒྲོལ་མ.

    Never an option label, a command, a reason (卧床) or a sentence.
    """
    if _TIBETAN_NAME.match(value.strip()):  # བཀྲ་ཤིས་སྒྲོལ་མ: 1-5 syllables in Tibetan script
        return not _TIBETAN_NOT_A_NAME.search(value)
    name = "".join(value.split())
    if not _NAME_SHAPE.match(name) or _NOT_A_NAME.search(name):
        return False
    if len(name) > 4 and "·" not in name and "•" not in name:
        return False
    return name[0] in _SURNAMES


def extract_name(text: str) -> str | None:
    """A personal name given after 叫/姓名/名字 ("她叫王秀英，卧床三年了" -> 王秀英), else right
    after a relationship word ("我爸马福海认证过没有" -> 马福海), else after "我是" at the start
    of a clause ("我是马福海 …")."""
    for match in (*_NAME_CUE.finditer(text), *_RELATION_NAME.finditer(text), *_SELF_NAME.finditer(text)):
        candidate = match.group(1)
        cut = _AFTER_NAME.search(candidate, 2)
        if cut is not None:
            candidate = candidate[: cut.start()]
        if plausible_name(candidate):
            return candidate
    return None


_ADDRESS_CUE = re.compile(r"(?:住址是?|地址是?|家住在?|住在|家在)[:：\s]*([\u4e00-\u9fff\d\-#]{2,60})")
_ADDRESS = re.compile(r"(?:[\u4e00-\u9fff\d\-#]{1,12}?(?:省|自治州|州|市|县|区|镇|乡|村|社区|小区|路|街|巷|"
                      r"组|号院|号楼|号|栋|单元|室|楼))+")
_ADDRESS_UNIT = re.compile(r"省|州|市|县|区|镇|乡|村|社区|小区|路|街|巷|组|号|栋|单元|室")
_NOT_ADDRESS = re.compile(r"认证|身份证|电话|手机|卧床|瘫痪|行动|不便|生病|怎么|哪个|哪里|去哪|办")


def extract_address(text: str) -> str | None:
    """An address: after 住在/地址, or a run of place units (西宁市城东区八一路12号)."""
    cue = _ADDRESS_CUE.search(text)
    if cue is not None:
        value = cue.group(1)
        cut = _NOT_ADDRESS.search(value)
        value = value[: cut.start()] if cut else value
        if len(value) >= 2 and _ADDRESS_UNIT.search(value):
            return value
    best = ""
    for match in _ADDRESS.finditer(text):
        value = match.group(0)
        cut = _NOT_ADDRESS.search(value)
        value = value[: cut.start()] if cut else value
        units = len(_ADDRESS_UNIT.findall(value))
        if units >= 2 and len(value) > len(best):
            best = value
    return best or None


# ---------------------------------------------------------------- when they last certified

# A certification word near the time: "去年3月认证的", "一年多没认证了", "半年前在社区认证过".
_CERTIFIED_WORD = re.compile(r"认证|认过|刷脸|刷过脸|刷完|刷好了|刷过了|年审|核验|验证过|办过|办的认证")
_CN_COUNT = r"(?:半|一|两|二|三|四|五|六|七|八|九|十|十一|十二|几|好几|\d{1,2})"
# "半年前", "三个月前", "一年多没认证", "两年没认证了", "好几年没…"
_AGO = re.compile(rf"(?P<count>{_CN_COUNT})\s*(?:个)?\s*(?P<more>多)?\s*(?P<unit>年|月)\s*(?P<more2>多)?"
                  r"(?:个月)?\s*(?P<tail>以前|之前|前|了|没|都没|也没|还没|未|没有)")
# "上个月刚认证", "这个月认证过", "上周", "前几天": recent.
_RECENT = {"上个月": 1, "上月": 1, "这个月": 0, "这月": 0, "本月": 0, "上周": 0, "上星期": 0,
           "上礼拜": 0, "前几天": 0, "前两天": 0, "前天": 0, "昨天": 0, "今天": 0, "刚刚": 0,
           "刚才": 0, "前段时间": 1, "年初": -1}
_RECENT_RE = re.compile("|".join(re.escape(word) for word in sorted(_RECENT, key=len, reverse=True)))
# "去年3月", "前年十月", "今年5月": a relative year with a month.
_YEAR_MONTH = re.compile(rf"(?P<rel>去年|前年|今年)\s*(?P<month>{_NUM})\s*(?:月|月份)")
_LONG_AGO = re.compile(r"很久|好久|好多年|好几年|多年|几年")
# A clause: the time and the certification word must be in the same one.
_CLAUSE = re.compile(r"[，,。；;！!？?\n]")
# "上个月刷脸一直失败": a failed attempt, not when they last certified.
_FAILED_WORDS = re.compile(r"失败|不通过|没通过|通不过|过不了|不是本人|不成功|没成功|没弄成|没办成|报错")


def _months_between(today: dt.date, year: int, month: int) -> int:
    return (today.year - year) * 12 + today.month - month


def _count(token: str) -> int | None:
    if token == "半":
        return 0
    if token in ("几", "好几"):
        return 2
    return _number(token)


@dataclass(frozen=True)
class LastCertified:
    """When the pensioner last certified: ``months`` ago (at least), as the person said it."""

    months: int
    said: str
    overdue: bool | None  # more than 12 months; None when the words cannot tell (去年)

    def as_slot(self) -> dict[str, object]:
        return {"months": self.months, "said": self.said, "overdue": self.overdue}


_NEGATED = re.compile(r"^[^，,。]{0,3}(?:没|未|不)")
_DONE_AFTER_YEAR = re.compile(r"^[^，,。\s没未不还要用]{0,6}(?:认证|刷脸|刷过脸|年审|核验|认过)(?:过|了|的|完)")


def _near_certified_word(clause: str, start: int, end: int, after: int = 12) -> bool:
    """The certification word within a few characters of the time, in the same clause."""
    window = clause[max(0, start - 8): end + after]
    return _CERTIFIED_WORD.search(window) is not None or "上次" in clause[max(0, start - 8): start]


def _point_in_time(clause: str, start: int, end: int, after: int = 12) -> bool:
    """A time when they certified: near the word and not negated ("今年还没认证")."""
    return _near_certified_word(clause, start, end, after) and _NEGATED.match(clause[end:]) is None


def extract_last_certified(text: str, today: dt.date | None = None) -> LastCertified | None:
    """When the pensioner last certified, from "去年3月认证的" / "一年多没认证了" / "2025年5月".

    Only past times next to a certification word count ("明年认证的时候" is not one). Months
    are whole months before ``today`` (Beijing time): 半年前 is 6, 一年多 is 13 ("more than
    a year"), 去年 alone is unknown (``overdue`` None).
    """
    if not text or _MAYBE_DATE.search(text) is None and "月" not in text and "周" not in text \
            and "天" not in text and "久" not in text and "刚" not in text and "星期" not in text \
            and "礼拜" not in text:
        return None
    today = today or dt.date.today()
    for clause in _CLAUSE.split(normalise_digits(text)):
        found = _last_certified_in(clause, today)
        if found is not None:
            return found
    return None


# "我妈今年认证了吗", "去年认证了没有": a question whether they certified, not when they did.
_ASKS_IF_CERTIFIED = re.compile(r"认证(?:了|过)(?:吗|么|没|没有|嘛)|(?:有没有|是不是|是否)(?:已经)?认证|认证没|"
                                r"认证(?:了|过)?(?:没有)?[？?]|(?:成功|通过|过)了?(?:吗|么|没有|嘛)")


def _last_certified_in(clause: str, today: dt.date) -> LastCertified | None:
    if _CERTIFIED_WORD.search(clause) is None or _FAILED_WORDS.search(clause):
        return None
    if _ASKS_IF_CERTIFIED.search(clause):
        # "认证成功了吗 我刚刚在人社通上刷完": a question next to a statement, told apart by the space
        told = [part for part in clause.split() if _CERTIFIED_WORD.search(part) and not _ASKS_IF_CERTIFIED.search(part)]
        if not told:
            return None
        clause = told[0]
    for match in _YEAR_MONTH.finditer(clause):
        month = _number(match["month"])
        if month is None or not 1 <= month <= 12 or not _point_in_time(clause, *match.span()):
            continue
        year = today.year - {"去年": 1, "前年": 2, "今年": 0}[match["rel"]]
        months = _months_between(today, year, month)
        if months >= 0:
            return LastCertified(months, match.group(0), months > 12)
    dates = extract_dates(clause, today)
    for date in dates:
        value = str(date.value)
        if len(value) == 4 or not _point_in_time(clause, date.start, date.end):
            continue  # bare years last: "三个月前认证过 今年还用吗" is three months
        said = str((date.extra or {}).get("text", value))
        year, month = int(value[:4]), int(value[5:7])
        months = _months_between(today, year, month)
        if months < 0 and len(value) == 7 and "年" not in said:
            months += 12  # "5月认证的" said in March: last year's May
        if months < 0:
            continue
        return LastCertified(months, said, months > 12)
    for match in _AGO.finditer(clause):
        if not _near_certified_word(clause, *match.span()):
            continue
        if match["tail"] == "了" and _CERTIFIED_WORD.search(clause[:match.start()]) is None \
                and not re.match(r"\s*(?:都|也|还)?(?:没|未)", clause[match.end():]):
            continue  # "瘫在床上好几年了 想申请上门认证": how long something else has lasted
        count = _count(match["count"])
        if count is None:
            continue
        more = bool(match["more"] or match["more2"])
        if match["unit"] == "年":
            months = 6 if match["count"] == "半" else count * 12 + (1 if more else 0)
        else:
            months = count + (1 if more else 0)
        if match["tail"] in ("没", "都没", "也没", "还没", "未", "没有") and months == 12 and not more:
            months = 12  # "一年没认证了": a year, due now
        said = match.group(0).rstrip("了没都也还未有")
        said = said[:-2] + "前" if said.endswith(("以前", "之前")) else said
        said = said if said.endswith("前") else said + "前"  # 一年多 -> 一年多前
        return LastCertified(months, said, months > 12)
    for match in _RECENT_RE.finditer(clause):
        if not _point_in_time(clause, *match.span()):
            continue
        months = _RECENT[match.group(0)]
        if months < 0:  # 年初: January of this year
            months = today.month - 1
        return LastCertified(months, match.group(0), False)
    for date in dates:
        value = str(date.value)
        # A bare year (2024年, 去年, 前年) counts only with a finished certification right
        # after it ("去年认证的", "前年刷过脸"), not "今年还用认证吗".
        if len(value) != 4 or not _DONE_AFTER_YEAR.match(clause[date.end:]):
            continue
        year = int(value)
        if year > today.year:
            continue
        gap = today.year - year
        months = max(0, gap * 12 - 11) if gap else 0
        said = str((date.extra or {}).get("text", value))
        return LastCertified(months, said, True if gap >= 2 else (False if gap == 0 else None))
    long_ago = _LONG_AGO.search(clause)
    if long_ago is not None and re.search(r"没(?:有)?(?:再)?认证|没(?:有)?认过|未认证", clause):
        return LastCertified(24, long_ago.group(0), True)
    return None
