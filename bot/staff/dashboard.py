"""The agency's dashboard (issue 22): ``/staff/dashboard`` and ``GET /api/staff/stats``
(its ``routes`` table, mounted by ``bot.staff.web.setup``).

Supervisors only (agents: 403). Both read :class:`bot.records.stats.DashboardStats` for a
range of local dates, ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (default: the last 30 days;
at most :data:`bot.records.stats.MAX_RANGE_DAYS`; bad dates: 400 JSON).
``&format=csv&table=<key>`` downloads one figure as CSV (UTF-8 with BOM, for Excel).

The page draws its charts on the server as inline SVG (nothing from a CDN, no script): it
works offline. Only aggregates are shown; cells under 5 people read "<5".
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import keys
from bot.core.errors import BadRequest, Forbidden
from bot.records.stats import (
    MAX_RANGE_DAYS,
    MIN_CELL,
    SUPPRESSED,
    TABLE_KEYS,
    DashboardStats,
    DateRange,
    table,
)
from bot.staff.auth import StaffSession
from bot.staff.guards import api, html_page, page

TEMPLATE = Path(__file__).resolve().parent / "templates" / "dashboard.html"
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
DEFAULT_DAYS = 30
COLORS = {"started": "#5b8def", "id_given": "#4aa3c7", "selfie_sent": "#46b08c", "passed": "#2e7d32",
          "failed": "#d9534f", "review": "#e69500", "approved": "#1f4e79"}
CAUSE_COLORS = ["#d9534f", "#8e44ad", "#7f8c8d", "#e67e22", "#c0392b"]
routes = web.RouteTableDef()


# ---------------------------------------------------------------- request handling


def _require_supervisor(staff: StaffSession) -> None:
    if not staff.is_supervisor:
        raise Forbidden("supervisors only", user_message="只有主管可以查看数据看板。")


def parse_range(query: Any, tz: ZoneInfo, today: date | None = None) -> DateRange:
    """``from``/``to`` as local dates; 400 when malformed, reversed or too long."""
    today = today or datetime.now(tz).date()

    def one(name: str) -> date | None:
        raw = query.get(name)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or not DATE_RE.match(raw):
            raise BadRequest(f"{name} must be YYYY-MM-DD", code="invalid_date",
                             user_message="日期格式不对，请用 年-月-日，例如 2026-12-01。")
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            raise BadRequest(f"{name} is not a date", code="invalid_date",
                             user_message="没有这个日期，请检查后再试。") from None
        if not EARLIEST <= value <= LATEST:
            raise BadRequest(f"{name} out of range", code="invalid_date",
                             user_message="日期要在 2000 年到 2100 年之间。")
        return value

    end = one("to") or today
    start = one("from") or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRequest("from is after to", code="invalid_range", user_message="开始日期不能晚于结束日期。")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise BadRequest("range too long", code="invalid_range",
                         user_message=f"时间范围最长 {MAX_RANGE_DAYS} 天。")
    return DateRange(start, end)


async def _stats(request: web.Request, staff: StaffSession) -> tuple[DateRange, dict[str, Any]]:
    _require_supervisor(staff)
    services = request.app[keys.SERVICES]
    tz = ZoneInfo(services.settings.staff.timezone)
    period = parse_range(request.query, tz)
    return period, await DashboardStats(services.db, services.settings.staff.timezone).compute(period)


def csv_response(stats: dict[str, Any], key: str, period: DateRange) -> web.Response:
    columns, rows = table(stats, key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    name = f"stats-{key}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return web.Response(body=("\ufeff" + buffer.getvalue()).encode("utf-8"),
                        content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})


@routes.get("/api/staff/stats")
@api
async def api_stats(request: web.Request, staff: StaffSession) -> web.Response:
    """``GET /api/staff/stats?from=&to=[&format=csv&table=<key>]`` (supervisors)."""
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv", code="invalid_format", user_message="格式只能是 json 或 csv。")
    key = request.query.get("table")
    if fmt == "csv" and key not in TABLE_KEYS:
        raise BadRequest("table must be one of " + ", ".join(TABLE_KEYS), code="invalid_table",
                         user_message="请指定要下载的表格。")
    period, stats = await _stats(request, staff)
    if fmt == "csv":
        assert key is not None
        return csv_response(stats, key, period)
    response = web.json_response(stats, dumps=functools.partial(json.dumps, ensure_ascii=False))
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/staff/dashboard")
@html_page
async def dashboard_page(request: web.Request, staff: StaffSession) -> web.Response:
    """The supervisors' page: every figure as an SVG chart and a table."""
    period, stats = await _stats(request, staff)
    return page("数据看板", render(stats, period), staff)


# ---------------------------------------------------------------- SVG charts


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def hbar_chart(name: str, title: str, rows: list[tuple[str, Any, str]], width: int = 560) -> str:
    """Horizontal bars: (label, value, colour). "<5" draws no bar, only the text."""
    label_w, bar_h, gap = 130, 24, 8
    top = 6
    height = top + len(rows) * (bar_h + gap) + 4
    biggest = max([_num(v) for _, v, _ in rows] + [1.0])
    room = width - label_w - 70
    parts = [f'<svg class="chart" data-chart="{escape(name)}" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, color) in enumerate(rows):
        y = top + i * (bar_h + gap)
        length = round(room * _num(value) / biggest, 1)
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="lbl">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{max(length, 0)}" height="{bar_h}" '
                     f'fill="{color}" data-value="{escape(_shown(value))}"><title>{escape(label)}：'
                     f'{escape(_shown(value))}</title></rect>')
        parts.append(f'<text x="{label_w + length + 6}" y="{y + 17}" class="val">{escape(_shown(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(name: str, title: str, rows: list[tuple[str, list[Any]]],
                  parts_legend: list[tuple[str, str]], width: int = 560) -> str:
    """One horizontal bar per row, stacked from parts (a "<5" part draws nothing)."""
    label_w, bar_h, gap, top = 70, 22, 7, 26
    height = top + len(rows) * (bar_h + gap) + 4
    biggest = max([sum(_num(v) for v in values) for _, values in rows] + [1.0])
    room = width - label_w - 20
    out = [f'<svg class="chart" data-chart="{escape(name)}" role="img" aria-label="{escape(title)}" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    x_legend = 4
    for label, color in parts_legend:
        out.append(f'<rect x="{x_legend}" y="4" width="11" height="11" fill="{color}"/>'
                   f'<text x="{x_legend + 14}" y="14" class="axis">{escape(label)}</text>')
        x_legend += 16 + 13 * len(label)
    for i, (label, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="lbl">{escape(label)}</text>')
        x = float(label_w)
        for (part, color), value in zip(parts_legend, values, strict=True):
            length = room * _num(value) / biggest
            out.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{length:.1f}" height="{bar_h}" '
                       f'fill="{color}" data-value="{escape(_shown(value))}"><title>{escape(label)} '
                       f'{escape(part)}：{escape(_shown(value))}</title></rect>')
            x += length
    out.append("</svg>")
    return "".join(out)


def column_chart(name: str, title: str, days: list[str], series: list[tuple[str, str, list[Any]]],
                 width: int = 1140, height: int = 230) -> str:
    """Columns per day for a few series (label, colour, values), with a legend."""
    left, bottom, top = 44, 36, 26
    plot_w, plot_h = width - left - 10, height - bottom - top
    biggest = max([_num(v) for _, _, values in series for v in values] + [1.0])
    slot = plot_w / max(len(days), 1)
    col_w = max(1.0, slot * 0.8 / max(len(series), 1))
    parts = [f'<svg class="chart" data-chart="{escape(name)}" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{biggest * frac:g}</text>')
    for s_i, (label, color, values) in enumerate(series):
        parts.append(f'<rect x="{left + s_i * 110}" y="4" width="12" height="12" fill="{color}"/>'
                     f'<text x="{left + s_i * 110 + 16}" y="15" class="axis">{escape(label)}</text>')
        for d_i, value in enumerate(values):
            h = plot_h * _num(value) / biggest
            x = left + d_i * slot + slot * 0.1 + s_i * col_w
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{col_w:.1f}" '
                         f'height="{h:.1f}" fill="{color}" data-value="{escape(_shown(value))}">'
                         f'<title>{escape(days[d_i])} {escape(label)}：{escape(_shown(value))}</title></rect>')
    step = max(1, len(days) // 10)
    for d_i in range(0, len(days), step):
        x = left + d_i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" class="axis">'
                     f'{escape(days[d_i][5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_table(columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    body = "".join("<tr>" + "".join(
        f'<td class="{"sup" if row.get(key) == SUPPRESSED else ""}">{escape(_shown(row.get(key)))}</td>'
        for key, _ in columns) + "</tr>" for row in rows)
    return f'<table class="figures"><tr>{head}</tr>{body}</table>'


def _duration(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return _shown(value)
    seconds = int(value)
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{seconds // 60}分钟"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分钟"


def _downloads(key: str, period: DateRange) -> str:
    query = f"from={period.start.isoformat()}&amp;to={period.end.isoformat()}"
    return (f'<a class="dl" href="/api/staff/stats?{query}&amp;format=csv&amp;table={key}" '
            f'download>下载CSV</a>')


STEP_COLUMNS = [("started", "开始认证"), ("id_given", "提供身份证号"), ("selfie_sent", "发送自拍"),
                ("passed", "核验通过"), ("failed", "未通过"), ("review", "人工审核"), ("approved", "认证完成")]


def render(stats: dict[str, Any], period: DateRange) -> str:
    """The page body."""
    funnel = stats["funnel"]
    causes = stats["failure_causes"]
    prefectures = stats["by_prefecture"]
    channels = stats["by_channel"]
    days = stats["by_day"]
    handoff = stats["handoff"]
    reminders = stats["reminders"]
    satisfaction = stats["satisfaction"]

    funnel_svg = hbar_chart("funnel", "认证漏斗（人数）",
                            [(r["label"], r["people"], COLORS[r["step"]]) for r in funnel])
    causes_svg = hbar_chart("failure_causes", "未通过原因（人数）",
                            [(r["label"], r["people"], CAUSE_COLORS[i % len(CAUSE_COLORS)])
                             for i, r in enumerate(causes)])
    cause_cols = [(f"failed_{r['cause']}", r["label"]) for r in causes]
    prefecture_svg = stacked_chart(
        "by_prefecture", "各州（市）未通过原因（人数）",
        [(r["label"], [r[key] for key, _ in cause_cols]) for r in prefectures],
        [(label, CAUSE_COLORS[i % len(CAUSE_COLORS)]) for i, (_, label) in enumerate(cause_cols)])
    prefecture_done_svg = hbar_chart("by_prefecture_approved", "各州（市）认证完成人数", [
        (r["label"], r["approved"], COLORS["approved"]) for r in prefectures])
    prefecture_table = html_table([("label", "州（市）"), *STEP_COLUMNS[1:], *cause_cols], prefectures)
    channel_svg = hbar_chart("by_channel", "各渠道开始认证人数",
                             [(r["label"], r["started"], COLORS["started"]) for r in channels]) \
        if channels else '<p class="meta">这段时间没有记录。</p>'
    channel_table = html_table([("label", "渠道"), *STEP_COLUMNS], channels)
    day_svg = column_chart("by_day", "每天开始认证与认证完成人数", [d["day"] for d in days], [
        ("开始认证", COLORS["started"], [d["started"] for d in days]),
        ("认证完成", COLORS["approved"], [d["approved"] for d in days])])
    buckets_svg = hbar_chart("handoff", "等待工作人员首次回复（案件数）",
                             [(b["bucket"], b["cases"], "#4aa3c7") for b in handoff["first_reply_buckets"]])
    agents = [dict(a, avg_first_reply_s=_duration(a["avg_first_reply_s"]),
                   avg_resolve_s=_duration(a["avg_resolve_s"])) for a in handoff["per_agent"]]
    agent_table = html_table([("agent", "工作人员"), ("cases", "案件"), ("answered", "已回复"),
                              ("avg_first_reply_s", "平均首次回复"), ("resolved", "已办结"),
                              ("avg_resolve_s", "平均办结用时")], agents) \
        if agents else '<p class="meta">这段时间没有工作人员处理的案件。</p>'
    reminders_svg = hbar_chart("reminders", "认证提醒", [
        ("已发送", reminders["sent"], "#5b8def"), ("已送达", reminders["delivered"], "#46b08c"),
        ("30天内完成认证", reminders["certified_within_30_days"], COLORS["approved"])])
    satisfaction_svg = hbar_chart("satisfaction", "这次帮到您了吗？（人数）", [
        (r["label"], r["people"], c) for r, c in zip(satisfaction["rows"], ["#2e7d32", "#e69500", "#d9534f"],
                                                      strict=True)])
    rate = reminders["certified_rate"]
    rate_text = f"{rate * 100:.0f}%" if isinstance(rate, float) else _shown(rate)
    values = {
        "start": period.start.isoformat(), "end": period.end.isoformat(),
        "days": str((period.end - period.start).days + 1), "min_cell": str(MIN_CELL),
        "quick": _quick_links(period),
        "funnel": funnel_svg, "funnel_dl": _downloads("funnel", period),
        "causes": causes_svg, "causes_dl": _downloads("failure_causes", period),
        "prefecture": prefecture_svg, "prefecture_done": prefecture_done_svg,
        "prefecture_table": prefecture_table,
        "prefecture_dl": _downloads("by_prefecture", period),
        "channel": channel_svg, "channel_table": channel_table, "channel_dl": _downloads("by_channel", period),
        "day": day_svg, "day_dl": _downloads("by_day", period),
        "opened": escape(_shown(handoff["opened"])), "answered": escape(_shown(handoff["answered"])),
        "first_reply": escape(_duration(handoff["avg_first_reply_s"])),
        "resolved": escape(_shown(handoff["resolved"])),
        "resolve_time": escape(_duration(handoff["avg_resolve_s"])),
        "buckets": buckets_svg, "agents": agent_table, "handoff_dl": _downloads("handoff", period),
        "reminders": reminders_svg, "reminder_rate": escape(rate_text),
        "reminders_dl": _downloads("reminders", period),
        "satisfaction": satisfaction_svg, "average": escape(_shown(satisfaction["average"])),
        "answers": escape(_shown(satisfaction["answers"])),
        "satisfaction_dl": _downloads("satisfaction", period),
        "json": f"/api/staff/stats?from={period.start.isoformat()}&amp;to={period.end.isoformat()}",
    }
    return _template().substitute(values)


@functools.cache
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))


def _quick_links(period: DateRange) -> str:
    end = period.end
    links = [("近7天", end - timedelta(days=6), end), ("近30天", end - timedelta(days=29), end),
             ("近90天", end - timedelta(days=89), end), ("今年", date(end.year, 1, 1), end)]
    return " ".join(f'<a href="/staff/dashboard?from={a.isoformat()}&amp;to={b.isoformat()}">{label}</a>'
                    for label, a, b in links)
