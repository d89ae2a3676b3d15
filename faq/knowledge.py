"""FAQ knowledge base (``faq/knowledge.yml``) and retrieval.

Each entry has an id, the intent it answers (optional), example questions, a short
answer (long ones split into steps), follow-up options and a source note. Retrieval is
TF-IDF over character n-grams of the questions, returning scored candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer

from nlu.fastvec import CompiledTfidf, dense_columns
from nlu.rules import normalise

KNOWLEDGE_FILE = Path(__file__).resolve().parent / "knowledge.yml"


@dataclass
class FaqEntry:
    id: str
    answer: list[str]
    questions: list[str] = field(default_factory=list)
    intent: str | None = None
    options: list[str] = field(default_factory=list)
    source: str = ""


@dataclass(frozen=True)
class FaqHit:
    entry: FaqEntry
    score: float


class KnowledgeBase:
    """Loads the entries and answers questions by similarity."""

    def __init__(self, path: Path | str = KNOWLEDGE_FILE) -> None:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        self.entries: list[FaqEntry] = []
        for raw in document.get("entries", []):
            answer = raw["answer"]
            self.entries.append(FaqEntry(
                id=raw["id"],
                answer=[answer] if isinstance(answer, str) else list(answer),
                questions=list(raw.get("questions", [])),
                intent=raw.get("intent"),
                options=list(raw.get("options", [])),
                source=raw.get("source", ""),
            ))
        self.by_id = {entry.id: entry for entry in self.entries}
        self.by_intent = {entry.intent: entry for entry in self.entries if entry.intent}
        self._rows: list[int] = []
        corpus: list[str] = []
        for index, entry in enumerate(self.entries):
            for question in entry.questions or [entry.id]:
                corpus.append(normalise(question))
                self._rows.append(index)
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self._matrix = dense_columns(vectorizer.fit_transform(corpus))
        self._vectorize = CompiledTfidf(vectorizer).vector

    def for_intent(self, intent: str) -> FaqEntry | None:
        return self.by_intent.get(intent)

    def search(self, question: str, limit: int = 3) -> list[FaqHit]:
        """Entries ranked by similarity to ``question``, best first, one hit per entry."""
        cleaned = normalise(question)
        if not cleaned:
            return []
        indices, weights = self._vectorize(cleaned)
        if not len(indices):
            return []
        scores = self._matrix[:, indices] @ weights
        best: dict[int, float] = {}
        for row in np.flatnonzero(scores > 0):
            score = scores[row]
            entry_index = self._rows[row]
            if score > best.get(entry_index, 0.0):
                best[entry_index] = float(score)
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [FaqHit(self.entries[i], score) for i, score in ranked]
