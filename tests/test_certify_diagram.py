"""The Mermaid diagram beside the certify dialog matches its state table."""

from __future__ import annotations

from pathlib import Path

from dialogs.certify import certify


def test_diagram_is_up_to_date() -> None:
    text = (Path(__file__).resolve().parent.parent / "dialogs" / "certify.md").read_text(encoding="utf-8")
    assert certify.to_mermaid() in text
