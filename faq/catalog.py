"""Babel extractor for the knowledge base: answers and option labels go to the catalog.

Used by ``make i18n-extract`` (``babel.cfg``). Questions are input patterns and stay out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import yaml


def extract_knowledge(fileobj: IO[bytes], keywords: Any, comment_tags: Any,
                      options: Any) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """(line, function, message, comments) for each answer part and option label."""
    text = fileobj.read().decode("utf-8")
    lines = text.splitlines()
    document = yaml.safe_load(text) or {}
    for raw in document.get("entries", []):
        entry_id = str(raw["id"])
        line = next((i + 1 for i, row in enumerate(lines) if row.strip() == f"- id: {entry_id}"), 0)
        answer = raw.get("answer", [])
        parts = [answer] if isinstance(answer, str) else list(answer)
        for index, part in enumerate(parts, 1):
            yield line, None, str(part), [f"FAQ {entry_id}: answer part {index} of {len(parts)}"]
        for label in raw.get("options", []):
            yield line, None, str(label), [f"FAQ {entry_id}: option label (the user may type it back)"]
