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

# "未建模": the same explanation and the same place to go, in a flow and as a question.
NO_MODEL = ("“未建模”就是系统里还没有老人的人脸照片，没法比对，这不是认证失败。"
            "第一次刷脸要先采集人像（建模）：按APP提示做；做不了就带身份证到当地社保经办机构当场采集。")
# Back pay after a missed certification.
BACKPAY = "补认证通过后会恢复发放，停发期间没发的养老金会补发，一起补给您。"
BACKPAY_WHEN = "具体哪天到账、几天恢复，各地办理时间不一样，请问当地社保经办机构或打12333。"
# Where to certify in person.
WHERE_OFFLINE = "所在地的社保经办机构（社保局、人社服务大厅）或邮储银行网点"

_ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "Asia/Harbin": "北京时间",
               "Asia/Urumqi": "北京时间", "PRC": "北京时间", "Etc/GMT-8": "北京时间"}
_DAY_NAMES = {"Mon": "周一", "Tue": "周二", "Wed": "周三", "Thu": "周四", "Fri": "周五", "Sat": "周六",
              "Sun": "周日"}


def office_hours_text(spec: str, timezone: str) -> str:
    """"Mon-Fri 09:00-17:30", Asia/Shanghai -> "北京时间周一至周五 09:00-17:30"."""
    days, _, hours = spec.partition(" ")
    first, _, last = days.partition("-")
    named = _DAY_NAMES.get(first, first) + (f"至{_DAY_NAMES.get(last, last)}" if last else "")
    zone = _ZONE_NAMES.get(timezone, f"{timezone} 时间")
    return f"{zone}{named} {hours}"


def photo_keep_text(retention_days: int) -> str:
    if retention_days <= 0:
        return "核验完就不保存您的照片"
    return f"照片最多保存{retention_days}天，到期自动删除"


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


def format_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"
