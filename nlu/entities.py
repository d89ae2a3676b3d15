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


def normalise_digits(text: str) -> str:
    """Full-width digits to ASCII, spaces inside digit runs removed."""
    text = text.translate(_FULLWIDTH)
    return _DIGIT_GAP.sub("", text)


def extract_numbers(text: str) -> list[Entity]:
    """ID numbers (valid or not) and phone numbers in ``text``."""
    if _ANY_DIGIT.search(text) is None:
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


def extract_dates(text: str, today: dt.date | None = None) -> list[Entity]:
    """Dates in ``text`` as ISO strings; relative words are resolved against ``today``."""
    if _MAYBE_DATE.search(text) is None:
        return []
    today = today or dt.date.today()
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def add(value: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append(Entity("date", value, start, end, {"text": text[start:end]}))

    for match in _ISO_DATE.finditer(text):
        try:
            value = dt.date(int(match["year"]), int(match["month"]), int(match["day"])).isoformat()
        except ValueError:
            continue
        add(value, match.start(), match.end())
    for match in _ABSOLUTE_DATE.finditer(text):
        year = _number(match["year"]) if match["year"] else today.year
        month = _number(match["month"])
        day = _number(match["day"]) if match["day"] else None
        if year is None or month is None or not 1 <= month <= 12:
            continue
        if day is None:
            add(f"{year:04d}-{month:02d}", match.start(), match.end())
            continue
        try:
            add(dt.date(year, month, day).isoformat(), match.start(), match.end())
        except ValueError:
            continue
    for match in _YEAR_ONLY.finditer(text):
        add(match["year"], match.start(), match.end())
    for match in _RELATIVE.finditer(text):
        word = match.group(0)
        if word in _RELATIVE_DAYS:
            value = (today + dt.timedelta(days=_RELATIVE_DAYS[word])).isoformat()
        else:
            value = str(today.year + _RELATIVE_YEARS[word])
        add(value, match.start(), match.end())
    return sorted(found, key=lambda entity: entity.start)


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
