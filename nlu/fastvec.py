"""A fast path for TF-IDF + linear scoring of one short message.

scikit-learn's ``transform``/``predict_proba`` spend ~3 ms per call validating inputs,
which dominates a chat turn. After fitting, :class:`CompiledTfidf` keeps the analyzer,
vocabulary and idf weights and produces the same normalised vector as sklearn for one
text as (indices, weights) arrays; scoring is then a small dense slice and dot product.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


class CompiledTfidf:
    """Same output as ``TfidfVectorizer.transform([text])`` for a fitted vectorizer."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.analyzer = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = dict(vectorizer.vocabulary_)
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.use_idf = bool(vectorizer.use_idf)
        self.norm = vectorizer.norm
        if self.norm not in ("l2", None):
            raise ValueError("only l2 or no normalisation is supported")

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, weights): in-vocabulary terms in order of first occurrence, as sklearn."""
        index_of = self.vocabulary.get
        counts: dict[int, int] = {}
        for term in self.analyzer(text):
            index = index_of(term)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        indices = np.array(list(counts), dtype=np.intp)
        # Short messages rarely repeat a term. With every count 1, the term frequency is 1.0
        # (also sublinear: 1 + log 1) and multiplying by it changes nothing, so it is skipped.
        weights = self.idf[indices] if self.use_idf else np.ones(len(indices))
        if any(count > 1 for count in counts.values()):
            tf = np.array(list(counts.values()), dtype=np.float64)
            if self.sublinear:
                tf = 1.0 + np.log(tf)
            weights = tf * weights
        if self.norm == "l2":
            length = float(np.sqrt(np.dot(weights, weights)))
            if length > 0:
                weights = weights / length
        return indices, weights


def dense_columns(matrix: Any) -> np.ndarray:
    """A (rows x vocabulary) matrix as a column-major dense array for fast column slices."""
    array = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    return np.asfortranarray(array, dtype=np.float64)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()
