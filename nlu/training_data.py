"""Reads Rasa 3.x NLU training data (``nlu.yml``): intents, entities, synonyms, regexes, lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
# [text](type) or [text]{"entity": "type", ...}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<type>[^)]+)\)|\{(?P<json>[^}]+)\})")


@dataclass
class Example:
    text: str
    intent: str
    entities: list[tuple[str, str, int, int]] = field(default_factory=list)


@dataclass
class TrainingData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant -> canonical
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def by_intent(self) -> dict[str, list[Example]]:
        grouped: dict[str, list[Example]] = {}
        for example in self.examples:
            grouped.setdefault(example.intent, []).append(example)
        return grouped


def strip_annotations(raw: str) -> tuple[str, list[tuple[str, str, int, int]]]:
    """Plain text plus (type, value, start, end) for each annotated entity."""
    text_parts: list[str] = []
    entities: list[tuple[str, str, int, int]] = []
    position = 0
    cursor = 0
    for match in _ANNOTATION.finditer(raw):
        before = raw[cursor:match.start()]
        text_parts.append(before)
        position += len(before)
        value = match.group("text")
        entity_type = match.group("type")
        if entity_type is None:
            found = re.search(r'"entity"\s*:\s*"([^"]+)"', match.group("json") or "")
            entity_type = found.group(1) if found else "unknown"
        entities.append((entity_type, value, position, position + len(value)))
        text_parts.append(value)
        position += len(value)
        cursor = match.end()
    text_parts.append(raw[cursor:])
    return "".join(text_parts), entities


def _items(block: str) -> list[str]:
    return [line.strip()[2:].strip() for line in block.splitlines() if line.strip().startswith("- ")]


def load(path: Path | str = DATA_DIR / "nlu.yml") -> TrainingData:
    """Parse one Rasa NLU YAML file."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data = TrainingData()
    for item in document.get("nlu", []):
        if "intent" in item:
            for raw in _items(item.get("examples", "")):
                text, entities = strip_annotations(raw)
                data.examples.append(Example(text=text, intent=item["intent"], entities=entities))
        elif "synonym" in item:
            for variant in _items(item.get("examples", "")):
                data.synonyms[variant] = item["synonym"]
        elif "regex" in item:
            data.regexes[item["regex"]] = _items(item.get("examples", ""))
        elif "lookup" in item:
            data.lookups[item["lookup"]] = _items(item.get("examples", ""))
    return data
