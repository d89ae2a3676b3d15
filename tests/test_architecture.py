"""The layering rules hold: the import-linter contract, and no import cycle between project
modules, counting imports inside functions."""

from __future__ import annotations

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
