"""The layering rules hold: the import-linter contract, and no import cycle between project
modules, counting imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "dialogs", "nlu", "faq", "face")


def import_cycles(*packages: str) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), or self-imports."""
    graph = grimp.build_graph(*(packages or PACKAGES), cache_dir=None)
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_between_project_modules() -> None:
    assert import_cycles() == []


def test_cycle_finder_sees_a_cycle(tmp_path: Path) -> None:
    """The finder itself: two modules importing each other inside functions are a cycle."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclepkg import b\n    return b\n")
    (pkg / "b.py").write_text("def g():\n    from cyclepkg import a\n    return a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert import_cycles("cyclepkg") == [["cyclepkg.a", "cyclepkg.b"]]
    finally:
        sys.path.remove(str(tmp_path))


def test_layers_contract_is_kept() -> None:
    """`lint-imports` (import-linter, configured in pyproject.toml) passes."""
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def deferred_imports_without_reason(root: Path = ROOT) -> list[str]:
    """Imports inside functions that are not a deferred third-party library with a reason:
    a project or standard-library module imported in a function, or one without a comment."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            for function in ast.walk(ast.parse(source)):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if not isinstance(node, (ast.Import, ast.ImportFrom)):
                        continue
                    names = [alias.name for alias in node.names] if isinstance(node, ast.Import) \
                        else [node.module or ""]
                    top = {name.split(".")[0] for name in names}
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    if top & (set(PACKAGES) | set(sys.stdlib_module_names)) or getattr(node, "level", 0):
                        found.append(f"{where} imports {sorted(top)} inside a function")
                    elif "#" not in lines[node.lineno - 1]:
                        found.append(f"{where} defers {sorted(top)} without a reason")
    return found


def test_imports_inside_functions_only_defer_a_library_and_say_why() -> None:
    assert deferred_imports_without_reason() == []


def test_the_deferred_import_check_finds_both_faults(tmp_path: Path) -> None:
    package = tmp_path / "bot"
    package.mkdir()
    (package / "m.py").write_text("def f():\n    import json\n    import cv2\n    import dlib  # heavy\n")
    assert deferred_imports_without_reason(tmp_path) == [
        "bot/m.py:2 imports ['json'] inside a function", "bot/m.py:3 defers ['cv2'] without a reason"]
