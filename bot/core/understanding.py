"""The one interface every NLU backend implements: ranked, scored candidates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True)
class Entity:
    type: str
    value: str
    start: int = 0
    end: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class ParseResult:
    """Intents ranked best first, plus entities. ``intents`` may be empty."""

    text: str
    intents: list[IntentScore] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    backend: str = ""

    @property
    def top(self) -> IntentScore | None:
        return self.intents[0] if self.intents else None

    def intent(self, threshold: float = 0.0) -> str | None:
        """The best intent if its confidence reaches ``threshold``."""
        top = self.top
        return top.name if top and top.confidence >= threshold else None

    def entity(self, entity_type: str) -> Entity | None:
        return next((e for e in self.entities if e.type == entity_type), None)


class NluBackend(Protocol):
    """Parses one message. Implementations must not block the event loop.

    By itself a backend applies the rules too: a global command (nlu/rules.py) is the
    answer, and rule entities (nlu/entities.py) are included where the backend has none of
    its own. With ``rules_applied`` the caller has already found no command and extracts the
    rule entities itself (bot/services.py), so the backend skips both: no work twice.
    """

    name: str

    async def parse(self, text: str, *, rules_applied: bool = False) -> ParseResult: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
