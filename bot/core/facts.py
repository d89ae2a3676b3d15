"""Facts told in more than one place, written once: one answer per fact.

Knowledge entries (faq/knowledge.yml) name them as ``{name}`` placeholders, filled when the
knowledge base loads; dialogs import the same constants. Facts that depend on the
configuration (office hours, photo retention) are built from the settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from bot.core.config import Settings
from bot.core.i18n import Digits, Text, tr

# "未建模": the same explanation and the same place to go, in a flow and as a question.
NO_MODEL = tr("“未建模”就是系统里还没有老人的人脸照片，没法比对，这不是认证失败。"
            "第一次刷脸要先采集人像（建模）：按APP提示做；做不了就带身份证到当地社保经办机构当场采集。")
# Back pay after a missed certification.
BACKPAY = tr("补认证通过后会恢复发放，停发期间没发的养老金会补发，一起补给您。")
BACKPAY_WHEN = tr("具体哪天到账、几天恢复，各地办理时间不一样，请问当地社保经办机构或打12333。")
# Where to certify in person.
WHERE_OFFLINE = tr("所在地的社保经办机构（社保局、人社服务大厅）或邮储银行网点")

_BEIJING = tr("北京时间")
_ZONE_NAMES = {"Asia/Shanghai": _BEIJING, "Asia/Chongqing": _BEIJING, "Asia/Harbin": _BEIJING,
               "Asia/Urumqi": _BEIJING, "PRC": _BEIJING, "Etc/GMT-8": _BEIJING}
_DAY_NAMES = {"Mon": tr("周一"), "Tue": tr("周二"), "Wed": tr("周三"), "Thu": tr("周四"), "Fri": tr("周五"),
              "Sat": tr("周六"), "Sun": tr("周日")}


def office_hours_text(spec: str, timezone: str) -> str:
    """"Mon-Fri 09:00-17:30", Asia/Shanghai -> "北京时间周一至周五 09:00-17:30"."""
    days, _, hours = spec.partition(" ")
    first, _, last = days.partition("-")
    start = _DAY_NAMES.get(first, first)
    named = tr("{first}至{last}", first=start, last=_DAY_NAMES.get(last, last)) if last else start
    zone = _ZONE_NAMES.get(timezone) or tr("{zone} 时间", zone=timezone)
    return tr("{zone}{days} {hours}", zone=zone, days=named, hours=hours)


def photo_keep_text(retention_days: int) -> str:
    if retention_days <= 0:
        return tr("核验完就不保存您的照片")
    return tr("照片最多保存{days}天，到期自动删除", days=retention_days)


def facts_for(settings: Settings) -> dict[str, str]:
    """Every placeholder of the knowledge base, for this configuration."""
    return {
        "no_model": NO_MODEL,
        "backpay": BACKPAY,
        "backpay_when": BACKPAY_WHEN,
        "where_offline": WHERE_OFFLINE,
        "office_hours": office_hours_text(settings.staff.office_hours, settings.staff.timezone),
        "photo_keep": photo_keep_text(settings.face.photo_retention_days),
    }


DEFAULT_FACTS: Mapping[str, str] = facts_for(Settings())
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(text: str, facts: Mapping[str, str]) -> str:
    """Replace ``{name}`` with its fact; an unknown name is a KeyError (found at start-up)."""
    return _PLACEHOLDER.sub(lambda match: facts[match.group(1)], text)


def fill_text(text: str, facts: Mapping[str, str]) -> Text:
    """A catalog text whose ``{name}`` placeholders are facts (translated with it)."""
    return Text(text, {name: facts[name] for name in _PLACEHOLDER.findall(text)})


def format_date(day: date) -> str:
    """A date as the reader writes it (the catalog has the Tibetan order and digits)."""
    return tr("{year}年{month}月{day}日", year=Digits(day.year), month=Digits(day.month), day=Digits(day.day))
