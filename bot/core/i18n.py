"""Languages and message catalogs: every user-facing text goes through :func:`tr`.

Simplified Chinese is the source language: a text is written once, in Chinese, as the
msgid of a gettext catalog (``locale/<lang>/LC_MESSAGES/messages.po``, managed with Babel:
``make i18n-extract / i18n-update / i18n-compile / i18n-check``).

Most texts are built before the chat's language is known (module constants, option
labels, f-string-like messages inside dialogs). So :func:`tr` does not translate at once:
it returns a :class:`Text`, a ``str`` whose value is the Chinese rendering (everything that
compares, logs or stores Chinese keeps working) and which also remembers its msgid and
named parameters. At the end of the turn (``handlers.middleware.ConversationState``) and in
the outbox, :func:`localize` renders each reply, its options included, in the
conversation's language. A plain ``str`` that is exactly a msgid is translated too; any
other plain string passes unchanged (a test keeps Chinese literals out of user paths).

Input goes the other way (:func:`to_source`): Tibetan digits become Arabic digits and a
message that is exactly a translated label becomes its Chinese msgid before NLU, so a
Tibetan label picks the same option as the Chinese one.
"""

from __future__ import annotations

import functools
import gettext
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

ZH = "zh"  # the source language (Simplified Chinese): msgids are written in it
BO = "bo"  # Tibetan
LANGUAGES: tuple[str, ...] = (ZH, BO)
LANGUAGE_NAMES = {ZH: "中文", BO: "藏文"}  # for the staff console (staff read Chinese)
# The menu option that switches to a language, in both scripts so either reader finds it.
LANGUAGE_OPTIONS = {BO: "བོད་ཡིག 藏文", ZH: "རྒྱ་ཡིག 中文"}
LOCALE_DIR = Path(__file__).resolve().parents[2] / "locale"
DOMAIN = "messages"

TIBETAN_DIGITS = "༠༡༢༣༤༥༦༧༨༩"
_TO_ARABIC = str.maketrans(TIBETAN_DIGITS, "0123456789")
_TO_TIBETAN = str.maketrans("0123456789", TIBETAN_DIGITS)
_TIBETAN_LETTER = re.compile(r"[\u0F40-\u0FBC]")  # consonants, vowel signs, subjoined letters
_OTHER_LETTER = re.compile(r"[\u4e00-\u9fffA-Za-z]")


def language_of_state(raw: bytes | str | None) -> str:
    """The language saved in a conversation's raw Redis state; Chinese when absent or unreadable."""
    if not raw:
        return ZH
    try:
        language = orjson.loads(raw).get("language", ZH)
    except (orjson.JSONDecodeError, AttributeError):
        return ZH
    return language if language in LANGUAGES else ZH


class Text(str):
    """A catalog text: its Chinese value, plus the msgid and parameters to translate it.

    ``translate=False`` makes a template that is not itself in the catalog (joins,
    concatenations): only its parameters are translated.
    """

    msgid: str
    params: dict[str, Any]
    catalogued: bool  # False: a join or template not itself in the catalog
    sep: str | None = None  # set for joins (concat/join): the separator

    def __new__(cls, msgid: str, params: Mapping[str, Any] | None = None, *,
                translate: bool = True) -> Text:
        params = dict(params or {})
        # A parameter given later (``.format``) stays a placeholder until then.
        value = msgid.format_map(_Missing(params)) if params else msgid
        text = super().__new__(cls, value)
        text.msgid = msgid
        text.params = params
        text.catalogued = translate
        return text

    def __add__(self, other: str) -> Text:  # type: ignore[override]
        """``tr(a) + tr(b)`` keeps both translatable."""
        return concat(self, other)

    def __radd__(self, other: str) -> Text:
        return concat(other, self)

    def format(self, *args: Any, **params: Any) -> str:  # type: ignore[override]
        """``tr("共{n}步").format(n=3)`` stays translatable (named parameters only)."""
        if args:
            return super().format(*args, **params)
        text = Text(self.msgid, {**self.params, **params}, translate=self.catalogued)
        text.sep = self.sep
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.msgid, self.params, self.catalogued, self.sep))


def _rebuild(msgid: str, params: dict[str, Any], translate: bool, sep: str | None = None) -> Text:
    text = Text(msgid, params, translate=translate)
    text.sep = sep
    return text


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Digits(str):
    """A number shown in the reader's digits (Tibetan digits in ``bo``), e.g. in dates."""


def tr(msgid: str, **params: Any) -> str:
    """Mark a user-facing Chinese text for the catalog: ``tr("共{n}步", n=3)``.

    Parameters are named (``{name}``) so a translation can reorder them. The returned
    value is the Chinese rendering; the translation happens at the end of the turn.
    (Typed ``str`` so lists of labels stay ``list[str]``; it is a :class:`Text`.)
    """
    return Text(msgid, params)


def concat(*parts: str, sep: str = "") -> Text:
    """Join texts (translated ones and plain values) keeping each part translatable."""
    names = [f"p{i}" for i in range(len(parts))]
    template = sep.replace("{", "{{").replace("}", "}}").join("{" + name + "}" for name in names)
    text = Text(template, dict(zip(names, parts, strict=True)), translate=False)
    text.sep = sep
    return text


def join(sep: str, parts: Iterable[str]) -> Text:
    """``sep.join(parts)`` that keeps each part translatable."""
    return concat(*parts, sep=sep)


# ---------------------------------------------------------------- catalogs


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def catalog(language: str) -> Mapping[str, str]:
    """msgid -> translation for ``language`` (empty for the source language).

    Reads the compiled ``.mo`` when it is at least as new as the ``.po``; otherwise the
    ``.po`` itself (with Babel), so a fresh clone works before ``make i18n-compile``.
    Fuzzy and empty entries are left out: their Chinese source is shown instead.
    """
    if language == ZH:
        return {}
    po = po_path(language)
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as handle:
            translations = gettext.GNUTranslations(handle)
        return {k: v for k, v in translations._catalog.items()  # type: ignore[attr-defined]
                if isinstance(k, str) and k and v}
    if not po.exists():
        log.error("no catalog for language %s at %s", language, po)
        return {}
    from babel.messages.pofile import read_po  # deferred: Babel only when no compiled .mo exists

    with po.open("rb") as handle:
        parsed = read_po(handle)
    return {str(m.id): str(m.string) for m in parsed
            if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def translate(msgid: str, language: str) -> str:
    """The translation of one msgid (the msgid itself when there is none)."""
    if language == ZH:
        return msgid
    return catalog(language).get(msgid, msgid)


def render(value: Any, language: str) -> str:
    """A text in ``language``: a :class:`Text` translated with its parameters, a plain
    string translated when it is exactly a msgid, anything else as ``str``."""
    if isinstance(value, Text) and value.sep is not None and language == BO:
        return _join_tibetan([render(value.params[f"p{i}"], language) for i in range(len(value.params))],
                             value.sep)
    if isinstance(value, Text):
        template = translate(value.msgid, language) if value.catalogued else value.msgid
        if not value.params:
            return template
        params = {name: render(param, language) for name, param in value.params.items()}
        try:
            return template.format_map(_Missing(params))
        except (KeyError, IndexError, ValueError):  # a broken translation: say so, show the source
            log.error("bad placeholders in the %s translation of %r", language, value.msgid)
            return value.msgid.format(**params)
    if isinstance(value, Digits):
        return str(value).translate(_TO_TIBETAN) if language == BO else str(value)
    if isinstance(value, str):
        return translate(value, language) if language != ZH else str(value)
    return str(value)


_RUN_ON = re.compile(r"([\u0F0D\u0F0E])(?=[\u0F40-\u0FBC])")  # "།" directly followed by a letter


def tidy(text: str, language: str) -> str:
    """Pieces joined the Chinese way (no spaces) read run-on in Tibetan: a space after "།"."""
    return _RUN_ON.sub(r"\1 ", text) if language == BO else text


_LETTER_END = re.compile(r"[\u0F40-\u0FBC]$")
_LETTER_START = re.compile(r"^[\u0F40-\u0FBC]")


def _join_tibetan(parts: list[str], sep: str) -> str:
    """Chinese pieces join without spaces; Tibetan sentences need one where no shad ends them
    (a sentence ending in ག takes none)."""
    joined = ""
    for part in parts:
        if joined and not sep and _LETTER_END.search(joined) and _LETTER_START.search(part):
            joined += " "
        elif joined:
            joined += sep
        joined += part
    return joined


def render_all(values: Sequence[Any], language: str) -> list[str]:
    return [render(value, language) for value in values]


def number_label(number: int, language: str) -> str:
    """An option number as the reader writes it (༡ ༢ ༣ in Tibetan)."""
    return str(number).translate(_TO_TIBETAN) if language == BO else str(number)


# ---------------------------------------------------------------- input


def to_arabic_digits(text: str) -> str:
    return text.translate(_TO_ARABIC)


def tibetan_share(text: str) -> float:
    """The share of letters in ``text`` that are Tibetan (0 when it has no letters)."""
    tibetan = len(_TIBETAN_LETTER.findall(text))
    other = len(_OTHER_LETTER.findall(text))
    return tibetan / (tibetan + other) if tibetan + other else 0.0


def mostly_tibetan(text: str) -> bool:
    """A message written mostly in Tibetan script."""
    return len(_TIBETAN_LETTER.findall(text)) >= 2 and tibetan_share(text) > 0.5


_LABEL_STRIP = re.compile(r"[\s\u0F0B-\u0F14，。！？、,.!?~～…：:]+")


def _label_key(text: str) -> str:
    return _LABEL_STRIP.sub("", text).lower()


@functools.cache
def _labels(language: str) -> Mapping[str, str]:
    """Translated short texts (labels) -> their Chinese msgid."""
    labels: dict[str, str] = {}
    for msgid, translated in catalog(language).items():
        if len(msgid) <= 24 and "{" not in msgid and _label_key(translated):
            labels.setdefault(_label_key(translated), msgid)
    return labels


def load_catalogs() -> None:
    """Read every catalog and its label index now (start-up), not in the first chat turn
    that needs them (Babel parses the ``.po`` when no compiled ``.mo`` is there)."""
    for language in LANGUAGES:
        if language != ZH:
            _labels(language)


def to_source(text: str, language: str) -> str:
    """A message as the Chinese pipeline reads it: Tibetan digits as Arabic ones, and a
    message that is exactly a translated label (in any language) as that label's msgid."""
    converted = to_arabic_digits(text)
    key = _label_key(converted)
    if not key:
        return converted
    for candidate in dict.fromkeys((language, *LANGUAGES)):
        if candidate == ZH:
            continue
        msgid = _labels(candidate).get(key)
        if msgid is not None:
            return msgid
    return converted
