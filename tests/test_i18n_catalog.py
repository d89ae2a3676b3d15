"""Every user-facing Chinese text goes through the message catalog (issue 19).

A static check: in the modules whose strings reach users, a string constant with Han
characters must be the argument of ``tr()`` unless it is an input pattern (a keyword list,
a regular expression, a comparison), a docstring or a log message. And the catalog is
complete: every text the code marks is in ``locale/bo/LC_MESSAGES/messages.po``, translated.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot.core import i18n
from bot.core.i18n import BO, ZH, Text, concat, render, to_source, tr

ROOT = Path(__file__).resolve().parent.parent
HAN = re.compile(r"[\u4e00-\u9fff]")

# Modules whose strings reach users (dialogs, handlers, channel adapters, records services
# that word messages, errors, face advice).
USER_FACING = sorted(
    [p for p in (ROOT / "dialogs").glob("*.py") if p.name not in ("diagrams.py", "__init__.py")]
    + [ROOT / "handlers" / name for name in ("router.py", "listening.py", "middleware.py", "protect.py",
                                              "language.py")]
    + [ROOT / "bot" / "core" / name for name in ("errors.py", "facts.py", "messages.py", "outbox.py")]
    + [ROOT / "bot" / "records" / name for name in ("cases.py", "reminders.py", "pensioners.py",
                                                    "proxy_links.py")]
    + [ROOT / "bot" / "channels" / name for name in ("web.py", "telegram.py", "wechat.py", "wechat_api.py",
                                                     "adapter.py")]
    + [ROOT / "bot" / name for name in ("safety.py", "app.py")]
    + [ROOT / "face" / name for name in ("quality.py", "liveness.py", "enrol.py")]
)
# Input patterns: these name what people type, never what they read.
PATTERN_CALLS = {"compile", "search", "match", "sub", "findall", "fullmatch", "finditer", "split",
                 "startswith", "endswith", "replace", "count", "find", "get", "pop", "strip", "rstrip",
                 "lstrip", "partition", "_words", "escape", "removesuffix", "removeprefix"}
LOG_CALLS = {"debug", "info", "warning", "error", "exception", "critical"}
CATALOG_CALLS = {"tr", "Text"}
PATTERN_KEYWORDS = {"words", "intents", "title"}
PATTERN_NAMES = re.compile(r"WORDS|PATTERN|_RE$|KEYWORDS|_YES|_NO$|NUMBERS|CUES")
# Strings that are allowed as they are, with the reason.
ALLOWED = {
    ("bot/records/pensioners.py", "张桂兰"), ("bot/records/pensioners.py", "马福海"),  # demo data
    ("bot/records/pensioners.py", "李德明"), ("bot/records/pensioners.py", "西宁"),
    ("bot/records/pensioners.py", "海东"), ("bot/records/pensioners.py", "海西"),
    ("dialogs/engine.py", ": 输入"),  # a diagram edge label, for developers
    ("bot/core/i18n.py", "中文"), ("bot/core/i18n.py", "藏文"),
    # the satisfaction answer as staff read it in the case (never sent to the user)
    ("bot/records/cases.py", "解决了"), ("bot/records/cases.py", "部分解决"), ("bot/records/cases.py", "没解决"),
}


def _context(node: ast.AST) -> str | None:
    """Why a Han string constant may stay as it is (None: it must go through tr())."""
    current = node
    while (parent := getattr(current, "_parent", None)) is not None:
        if isinstance(parent, ast.Expr) and isinstance(parent.value, ast.Constant):
            return "docstring"
        if isinstance(parent, ast.Compare):
            return "comparison"
        if isinstance(parent, ast.Dict) and current in parent.keys:
            return "key"
        if isinstance(parent, ast.Subscript) and current is parent.slice:
            return "key"
        if isinstance(parent, ast.keyword) and parent.arg in PATTERN_KEYWORDS:
            return "pattern"
        if isinstance(parent, ast.Call):
            func = parent.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in CATALOG_CALLS:
                return "catalog"
            if name in PATTERN_CALLS or name in LOG_CALLS:
                return "pattern"
        if isinstance(parent, ast.Assign | ast.AnnAssign):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            for target in targets:
                name = getattr(target, "id", getattr(target, "attr", ""))
                if PATTERN_NAMES.search(name):
                    return "pattern"
        if isinstance(parent, ast.Tuple | ast.Set) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) and len(e.value) <= 6
                for e in parent.elts) and len(parent.elts) >= 2:
            return "pattern"  # a tuple of short words: keywords to match
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            return None
        current = parent
    return None


def untranslated(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child._parent = parent  # type: ignore[attr-defined]
    found = []
    relative = path.relative_to(ROOT).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and any(
                isinstance(v, ast.Constant) and HAN.search(str(v.value)) for v in node.values):
            if _context(node) is None and not any((relative, v.value) in ALLOWED for v in node.values
                                                  if isinstance(v, ast.Constant)):
                found.append(f"{relative}:{node.lineno}: f-string {ast.unparse(node)[:60]}")
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and HAN.search(node.value):
            if isinstance(getattr(node, "_parent", None), ast.JoinedStr):
                continue
            if (relative, node.value) in ALLOWED or _context(node) is not None:
                continue
            found.append(f"{relative}:{node.lineno}: {node.value[:60]!r}")
    return found


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_facing_chinese_goes_through_the_catalog(path: Path) -> None:
    assert untranslated(path) == []


def test_the_static_check_finds_a_bare_literal(tmp_path: Path) -> None:
    """The check itself: a bare Chinese reply is found; wrapped, patterns and docstrings are not."""
    module = tmp_path / "sample.py"
    module.write_text('"""说明。"""\nimport re\nfrom bot.core.i18n import tr\n'
                      'A = tr("您好")\nB = "您好"\nC = re.compile("认证|刷脸")\n'
                      'def f(x):\n    return f"共{x}步"\n', encoding="utf-8")
    found = untranslated_at(module)
    assert [line.split(": ", 1)[1] for line in found] == ["'您好'", "f-string f'共{x}步'"]


def untranslated_at(path: Path) -> list[str]:
    global ROOT
    saved, ROOT = ROOT, path.parent
    try:
        return untranslated(path)
    finally:
        ROOT = saved


# ---------------------------------------------------------------- rendering


def test_text_is_its_chinese_value_and_renders_in_tibetan() -> None:
    text = tr("第{number}步（共{total}步）：{body}", number=1, total=3, body=tr("下一步"))
    assert text == "第1步（共3步）：下一步" and isinstance(text, Text)
    assert render(text, ZH) == "第1步（共3步）：下一步"
    tibetan = render(text, BO)
    assert not HAN.search(tibetan) and "1" in tibetan


def test_joins_and_format_keep_parts_translatable() -> None:
    joined = tr("换个说法：") + tr("下一步")
    assert joined == "换个说法：下一步"
    assert not HAN.search(render(joined, BO))
    assert not HAN.search(render(concat(tr("下一步"), tr("上一步"), sep="\n"), BO))
    assert not HAN.search(render(tr("好的，我会在 {due} 前 {days} 天左右提醒您。还有什么可以帮您？").format(
        due="2027", days=30), BO))


def test_dates_use_the_tibetan_order_and_digits() -> None:
    from datetime import date

    from bot.core.facts import format_date

    day = format_date(date(2027, 3, 15))
    assert day == "2027年3月15日"
    tibetan = render(day, BO)
    assert "༢༠༢༧" in tibetan and "༣" in tibetan and "༡༥" in tibetan and not HAN.search(tibetan)


def test_tibetan_labels_and_digits_read_as_chinese() -> None:
    assert to_source("༢", BO) == "2"
    label = render(tr("转人工"), BO)
    assert label != "转人工" and to_source(label, BO) == "转人工"
    assert to_source("随便说点什么", BO) == "随便说点什么"


def test_the_catalog_is_complete() -> None:
    """Every msgid of the template is translated in Tibetan (make i18n-check)."""
    from bot import i18n_check

    assert i18n_check.main([]) == 0
    assert i18n.catalog(BO)


def test_catalogs_load_at_start_up_not_in_a_turn() -> None:
    """``serve`` reads the catalogs before freezing the start-up heap: afterwards a Tibetan
    label is found without reading a file again."""
    i18n.catalog.cache_clear()
    i18n._labels.cache_clear()
    i18n.load_catalogs()
    loaded = i18n.catalog.cache_info().currsize
    assert loaded >= 1 and len(i18n.catalog(BO)) > 100
    assert to_source(render(tr("回主菜单"), BO), BO) == "回主菜单"
    assert i18n.catalog.cache_info().currsize == loaded  # nothing read in the "turn"


def test_a_text_the_template_has_not_seen_is_reported(tmp_path: Path) -> None:
    """A new tr() text fails the check until `make i18n-extract i18n-update` took it in."""
    from babel.messages.catalog import Catalog

    from bot import i18n_check

    (tmp_path / "babel.cfg").write_text("[python: bot/**.py]\n", encoding="utf-8")
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "texts.py").write_text(
        'from bot.core.i18n import tr\nOLD = tr("旧的话")\nNEW = tr("新说的话")\n', encoding="utf-8")
    template = Catalog()
    template.add("旧的话")
    assert i18n_check.not_extracted(template, tmp_path) == ["新说的话"]
    assert i18n_check.not_extracted(i18n_check.load(ROOT / "locale" / "messages.pot"), ROOT) == []
