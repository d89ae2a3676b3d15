"""FAQ knowledge base (``faq/knowledge.yml``) and retrieval.

Each entry has an id, the intent it answers (optional), example questions, a short
answer (long ones split into steps), follow-up options and a source note. Retrieval is
TF-IDF over character n-grams of the questions, returning scored candidates; a question
that shares no character pair with any stored question gets no candidates at all.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer

from bot.core.facts import DEFAULT_FACTS, fill_text
from bot.core.i18n import tr
from nlu.fastvec import CompiledTfidf, dense_columns
from nlu.rules import normalise

KNOWLEDGE_FILE = Path(__file__).resolve().parent / "knowledge.yml"
# Rankings of recent texts kept: one turn may search the same text up to four times (the
# router's retrieval_only and retrieve, in a dialog and again outside it).
RANKING_CACHE_SIZE = 256
Ranking = tuple[tuple[int, float], ...]


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

    def __init__(self, path: Path | str = KNOWLEDGE_FILE, facts: Mapping[str, str] = DEFAULT_FACTS) -> None:
        """``facts`` fill the ``{name}`` placeholders of the answers (faq/facts.py)."""
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        self.entries: list[FaqEntry] = []
        for raw in document.get("entries", []):
            answer = raw["answer"]
            self.entries.append(FaqEntry(
                id=raw["id"],
                answer=[fill_text(part, facts) for part in ([answer] if isinstance(answer, str) else answer)],
                questions=list(raw.get("questions", [])),
                intent=raw.get("intent"),
                options=[tr(label) for label in raw.get("options", [])],
                source=raw.get("source", ""),
            ))
        self.by_id = {entry.id: entry for entry in self.entries}
        self.by_intent = {entry.intent: entry for entry in self.entries if entry.intent}
        self._rows: list[int] = []
        first_rows: list[int] = []  # each entry's questions are consecutive rows
        corpus: list[str] = []
        for index, entry in enumerate(self.entries):
            first_rows.append(len(corpus))
            for question in entry.questions or [entry.id]:
                corpus.append(normalise(question))
                self._rows.append(index)
        self._first_rows = np.array(first_rows, dtype=np.intp)
        # "char", not "char_wb": padding spaces would make every query share a feature.
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        self._matrix = dense_columns(vectorizer.fit_transform(corpus))
        self._vocabulary = vectorizer.vocabulary_
        self._vectorize = CompiledTfidf(vectorizer).vector
        self._ranking = functools.lru_cache(maxsize=RANKING_CACHE_SIZE)(self._rank)

    def for_intent(self, intent: str) -> FaqEntry | None:
        return self.by_intent.get(intent)

    def search(self, question: str, limit: int = 3) -> list[FaqHit]:
        """Entries ranked by similarity to ``question``, best first, one hit per entry."""
        ranked = self._ranking(normalise(question))[:limit]
        return [FaqHit(self.entries[i], score) for i, score in ranked]

    def _rank(self, cleaned: str) -> Ranking:
        """(entry index, score) of every entry with a positive score, best first.

        An entry scores as its most similar question; equal scores keep the file's order.
        """
        if not cleaned or not any(cleaned[i:i + 2] in self._vocabulary for i in range(len(cleaned) - 1)):
            return ()  # nothing in common but single characters (啊啊啊啊): no answer
        indices, weights = self._vectorize(cleaned)
        if not len(indices):
            return ()
        scores = self._matrix[:, indices] @ weights
        best = np.maximum.reduceat(scores, self._first_rows)
        positive = np.flatnonzero(best > 0)
        order = positive[np.argsort(-best[positive], kind="stable")]
        return tuple((int(i), float(best[i])) for i in order)
