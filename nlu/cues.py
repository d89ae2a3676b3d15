"""Cue phrases, the ways people say things, compiled from ``nlu/data/cues.yml``.

The file is language data, like the ``regex:`` and ``lookup:`` tables of ``nlu.yml``, but it
is not training data: nothing trains on it. It is read once, when this module is imported
(relative to this file, not the working directory), and every pattern is compiled then. A
missing file, a malformed pattern, one that matches an empty message, a key written twice
or a cue the code asks for that the file lacks raises :class:`CueError` naming it, at
import, never a pattern that silently matches nothing or everything.

Sections of the file (its header says more):

- ``lists``: named word lists; ``{name}`` in a pattern stands for their words as alternatives;
- ``yes_no``: per slot, the ``'no'`` and ``'yes'`` patterns (``Cues.yes_no_table``);
- ``choices``: per slot, value -> pattern, the first that matches wins (``Cues.choice_table``);
- ``patterns``: name -> pattern (``Cues.take``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

PATH = Path(__file__).resolve().parent / "data" / "cues.yml"

Pattern = re.Pattern[str]
YesNoRow = tuple[str, Pattern, Pattern]  # (slot, "no" pattern, "yes" pattern)
ChoiceRow = tuple[str, tuple[tuple[str, Pattern], ...]]  # (slot, ((value, pattern), ...))

_SECTIONS = ("lists", "yes_no", "choices", "patterns")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # {qinghai_places}; {0,4} is a repeat
_T = TypeVar("_T")


class CueError(ValueError):
    """The cue file is missing or malformed, or lacks a cue the code asks for."""


@dataclass(frozen=True)
class Cues:
    """The compiled cues of one file (read-only)."""

    source: str
    yes_no: Mapping[str, tuple[Pattern, Pattern]]
    choices: Mapping[str, tuple[tuple[str, Pattern], ...]]
    patterns: Mapping[str, Pattern]

    def _get(self, section: Mapping[str, _T], section_name: str, name: str) -> _T:
        if name not in section:
            raise CueError(f"{self.source}: no cue {section_name}.{name} (there are: {', '.join(section)})")
        return section[name]

    def take(self, *names: str) -> tuple[Pattern, ...]:
        """The ``patterns`` of these names, in this order."""
        return tuple(self._get(self.patterns, "patterns", name) for name in names)

    def yes_no_table(self, *slots: str) -> tuple[YesNoRow, ...]:
        """(slot, no, yes) for these slots, in this order."""
        return tuple((slot, *self._get(self.yes_no, "yes_no", slot)) for slot in slots)

    def choice_table(self, *slots: str) -> tuple[ChoiceRow, ...]:
        """(slot, ((value, pattern), ...)) for these slots, in this order."""
        return tuple((slot, self._get(self.choices, "choices", slot)) for slot in slots)


def _check_unique_keys(node: yaml.Node | None, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; a cue written twice is an error."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise CueError(f"{source}: line {key.start_mark.line + 1}: {key.value!r} written twice")
                seen.add(key.value)
            _check_unique_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_unique_keys(item, source)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CueError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            hint = " (quote it: YAML reads a bare no/yes as false/true)" if isinstance(key, bool) else ""
            raise CueError(f"{where}: {key!r} is not a name{hint}")
    return value


def _flags(value: Any, where: str) -> re.RegexFlag:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise CueError(f"{where}: flags is a list of re flag names, such as [IGNORECASE]")
    flags = re.RegexFlag(0)
    for name in names:
        if not isinstance(name, str) or name not in re.RegexFlag.__members__:
            raise CueError(f"{where}: {name!r} is not a re flag (such as IGNORECASE)")
        flags |= re.RegexFlag[name]
    return flags


def _compile(value: Any, where: str, lists: Mapping[str, str]) -> Pattern:
    """A pattern: a string, a list of alternatives, or {pattern: ..., flags: [...]}."""
    flags = re.RegexFlag(0)
    if isinstance(value, dict):
        if "pattern" not in value or set(value) - {"pattern", "flags"}:
            raise CueError(f"{where}: a mapping has 'pattern' and optional 'flags', not {sorted(map(str, value))}")
        flags = _flags(value.get("flags", []), where)
        value = value["pattern"]
    alternatives = value if isinstance(value, list) else [value]
    if not alternatives or not all(isinstance(part, str) and part for part in alternatives):
        raise CueError(f"{where}: a pattern is a non-empty string or a list of them, not {value!r}")

    def words(match: re.Match[str]) -> str:
        if match.group(1) not in lists:
            raise CueError(f"{where}: {match.group(0)} names no list (lists: {', '.join(lists)})")
        return lists[match.group(1)]

    parts = [_PLACEHOLDER.sub(words, part) for part in alternatives]
    for part in parts:  # each alternative on its own, so an error names the line it is in
        try:
            re.compile(part, flags)
        except re.error as error:
            raise CueError(f"{where}: {error} in {part!r}") from error
    pattern = re.compile("|".join(parts), flags)
    if pattern.search(""):
        raise CueError(f"{where}: matches an empty message, so every message")
    return pattern


def _lists(section: dict[str, Any], where: str) -> dict[str, str]:
    """Each word list as alternatives of a pattern: 青海|西宁|…"""
    compiled = {}
    for name, words in section.items():
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise CueError(f"{where}.{name}: a list is a non-empty list of words")
        compiled[name] = "|".join(re.escape(word) for word in words)
    return compiled


def _yes_no(value: Any, where: str, lists: Mapping[str, str]) -> tuple[Pattern, Pattern]:
    entry = _mapping(value, where)
    if set(entry) != {"no", "yes"}:
        raise CueError(f"{where}: needs exactly 'no' and 'yes' (quoted), not {sorted(map(str, entry))}")
    return _compile(entry["no"], f"{where}.no", lists), _compile(entry["yes"], f"{where}.yes", lists)


def _choices(value: Any, where: str, lists: Mapping[str, str]) -> tuple[tuple[str, Pattern], ...]:
    entry = _mapping(value, where)
    if not entry:
        raise CueError(f"{where}: no values")
    return tuple((choice, _compile(pattern, f"{where}.{choice}", lists)) for choice, pattern in entry.items())


def load(path: Path = PATH) -> Cues:
    """Read and compile a cue file; raises :class:`CueError` on anything amiss."""
    source = path.name
    try:
        text = path.read_text(encoding="utf-8")
        _check_unique_keys(yaml.compose(text, Loader=yaml.SafeLoader), source)
        document = yaml.safe_load(text)
    except OSError as error:
        raise CueError(f"cannot read the cue file {path}: {error}") from error
    except yaml.YAMLError as error:
        raise CueError(f"{source}: not valid YAML: {error}") from error
    top = _mapping(document, source)
    if set(top) - set(_SECTIONS):
        raise CueError(f"{source}: unknown sections {sorted(set(top) - set(_SECTIONS))} (known: {_SECTIONS})")
    sections = {name: _mapping(top.get(name), f"{source}: {name}") for name in _SECTIONS}
    lists = _lists(sections["lists"], f"{source}: lists")
    return Cues(
        source=source,
        yes_no=MappingProxyType({slot: _yes_no(value, f"{source}: yes_no.{slot}", lists)
                                 for slot, value in sections["yes_no"].items()}),
        choices=MappingProxyType({slot: _choices(value, f"{source}: choices.{slot}", lists)
                                  for slot, value in sections["choices"].items()}),
        patterns=MappingProxyType({name: _compile(value, f"{source}: patterns.{name}", lists)
                                   for name, value in sections["patterns"].items()}),
    )


CUES = load()
