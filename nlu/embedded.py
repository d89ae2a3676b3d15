"""The embedded NLU backend: character n-gram TF-IDF plus a linear classifier.

Trained from ``nlu/data/nlu.yml`` at start-up (well under a second). Confidence comes
from calibrated class probabilities; below ``threshold`` or for ``out_of_scope`` the
router falls back to FAQ retrieval, then a clarifying question.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu import training_data
from nlu.base import IntentScore, ParseResult
from nlu.fastvec import CompiledTfidf, dense_columns, softmax
from nlu.rules import match_command, normalise


class EmbeddedNlu:
    """TF-IDF over character 1-4 grams and logistic regression; fast enough inline."""

    name = "embedded"

    def __init__(self, data_path: Path | str = training_data.DATA_DIR / "nlu.yml",
                 top_k: int = 5) -> None:
        self.data_path = Path(data_path)
        self.top_k = top_k
        self.vectorizer: TfidfVectorizer | None = None
        self.model: LogisticRegression | None = None
        self.labels: list[str] = []

    def train(self) -> None:
        """Fit the vectorizer and classifier on the training file."""
        data = training_data.load(self.data_path)
        texts = [normalise(e.text) for e in data.examples]
        labels = [e.intent for e in data.examples]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4),
                                          sublinear_tf=True, min_df=1)
        features = self.vectorizer.fit_transform(texts)
        self.model = LogisticRegression(C=20.0, max_iter=2000)
        self.model.fit(features, labels)
        self.labels = [str(label) for label in self.model.classes_]
        self._vectorize = CompiledTfidf(self.vectorizer).vector
        self._coef = dense_columns(self.model.coef_)
        self._intercept = np.asarray(self.model.intercept_, dtype=np.float64)

    async def start(self) -> None:
        if self.model is None:
            await asyncio.to_thread(self.train)

    async def close(self) -> None:
        return None

    def parse_sync(self, text: str) -> ParseResult:
        """Parse without awaiting (used by benchmarks and the evaluation command)."""
        result = ParseResult(text=text, backend=self.name)
        command = match_command(text)
        if command:
            result.intents.append(command)
            return result
        if self.model is None or self.vectorizer is None:
            self.train()
        assert self.model is not None and self.vectorizer is not None
        cleaned = normalise(text)
        if not cleaned:
            return result
        indices, weights = self._vectorize(cleaned)
        if not len(indices):
            return result
        probabilities = softmax(self._coef[:, indices] @ weights + self._intercept)
        order = np.argsort(probabilities)[::-1][: self.top_k]
        result.intents = [IntentScore(self.labels[i], float(probabilities[i])) for i in order]
        return result

    async def parse(self, text: str) -> ParseResult:
        return self.parse_sync(text)
