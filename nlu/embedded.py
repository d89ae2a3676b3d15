"""The embedded NLU backend: jieba words plus character n-grams, and a linear classifier.

Trained from ``nlu/data/nlu.yml`` at start-up (about a tenth of a second, plus the
one-time load of jieba's dictionary). Out-of-scope messages are handled in three layers:

1. the vocabulary guard (nlu/guard.py): a message that shares no character pair with
   the training data (``啊啊啊啊``, ``asdf``) gets no intent at all;
2. the trained ``out_of_scope`` intent (weather, pension amounts, medical insurance,
   chit-chat), which the router answers politely with what the assistant can do;
3. the confidence threshold (``nlu.intent_threshold``) applied by the router; below it the
   router tries FAQ retrieval, then asks a clarifying question.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jieba
import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from bot.core.understanding import IntentScore, ParseResult
from nlu import entities, training_data
from nlu.fastvec import CompiledTfidf
from nlu.guard import VocabularyGuard
from nlu.rules import match_command, normalise

log = logging.getLogger(__name__)
# Rankings of recent texts kept per trained model: chat repeats itself (clicked options come
# back as their label, "1", "谢谢"), and the ranking of a text never changes.
RANKING_CACHE_SIZE = 1024


@functools.cache
def jieba_tokenizer() -> jieba.Tokenizer:
    """jieba with its default dictionary, loaded once per process and read-only afterwards.

    Loading the 350k-word dictionary takes most of a second; every EmbeddedNlu of the
    process (one per application, many in the tests) shares the loaded dictionary.
    """
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


class TextNormaliser:
    """Punctuation out, lower case, and domain synonyms mapped to one canonical word.

    Only synonyms of plain wording are applied (年审 -> 认证, 退休金 -> 养老金); entity
    synonyms (爸 -> 父亲) are applied to entity values instead, see nlu/entities.py.
    """

    def __init__(self, data: training_data.TrainingData) -> None:
        lookup_values = {value for values in data.lookups.values() for value in values}
        mapping = {variant.lower(): canonical for variant, canonical in data.synonyms.items()
                   if variant not in lookup_values and canonical not in lookup_values}
        mapping.update({canonical.lower(): canonical for canonical in set(mapping.values())})
        self.mapping = mapping
        # One pass, longest match first, canonicals map to themselves: 青海人社通 stays whole.
        alternatives = sorted(mapping, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(a) for a in alternatives)) if alternatives else None

    def __call__(self, text: str) -> str:
        cleaned = normalise(text)
        if self.pattern is None:
            return cleaned
        return self.pattern.sub(lambda match: self.mapping[match.group(0)], cleaned)


class EmbeddedNlu:
    """Character 1-3 grams and jieba words (TF-IDF), one-vs-rest linear SVM, softmax scores."""

    name = "embedded"

    def __init__(self, data_path: Path | str = training_data.DATA_DIR / "nlu.yml",
                 top_k: int = 5, word_weight: float = 0.3, c: float = 1.0,
                 temperature: float = 6.0) -> None:
        self.data_path = Path(data_path)
        self.top_k = top_k
        self.word_weight = word_weight
        self.c = c
        self.temperature = temperature
        self.tokenizer: Any = None
        self.normaliser: TextNormaliser | None = None
        self.char_vectorizer: TfidfVectorizer | None = None
        self.word_vectorizer: TfidfVectorizer | None = None
        self.model: LinearSVC | None = None
        self.labels: list[str] = []
        self.guard: VocabularyGuard | None = None
        self._char_tfidf: CompiledTfidf | None = None
        self._word_tfidf: CompiledTfidf | None = None
        self._word_offset = 0
        self._coef = np.zeros((0, 0))
        self._intercept = np.zeros(0)
        self._ranking: Callable[[str], tuple[IntentScore, ...]] = self._rank
        self.data: training_data.TrainingData | None = None

    # ------------------------------------------------------------ training

    def load_tokenizer(self) -> None:
        """jieba's dictionary (the slow part of start-up, ~0.8 s once per process)."""
        if self.tokenizer is None:
            self.tokenizer = jieba_tokenizer()

    def _words(self, text: str) -> list[str]:
        assert self.tokenizer is not None
        return [w for w in self.tokenizer.lcut(text) if w.strip()]

    def train(self) -> None:
        """Fit the vectorizers and the classifier on the training file."""
        self.load_tokenizer()
        data = training_data.load(self.data_path)
        self.data = data
        self.normaliser = TextNormaliser(data)
        texts = [self.normaliser(e.text) for e in data.examples]
        self.guard = VocabularyGuard(texts)
        labels = [e.intent for e in data.examples]
        self.char_vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        self.word_vectorizer = TfidfVectorizer(tokenizer=self._words, token_pattern=None,
                                               lowercase=False, sublinear_tf=True)
        features = hstack([self.char_vectorizer.fit_transform(texts),
                           self.word_vectorizer.fit_transform(texts) * self.word_weight]).tocsr()
        # fixed seed: every server process trains the same model, so all answer alike
        self.model = LinearSVC(C=self.c, random_state=0)
        self.model.fit(features, labels)
        self.labels = [str(label) for label in self.model.classes_]
        self._prepare_fast_path()

    def _prepare_fast_path(self) -> None:
        """Vocabularies, idf and weights as plain arrays, for sub-millisecond parsing.

        sklearn's transform() costs about a millisecond per call in overhead; parsing one
        short message needs only a few dictionary look-ups and a small dot product.
        """
        assert self.model is not None and self.char_vectorizer is not None
        assert self.word_vectorizer is not None
        self._char_tfidf = CompiledTfidf(self.char_vectorizer)
        self._word_tfidf = CompiledTfidf(self.word_vectorizer)
        self._word_offset = len(self.char_vectorizer.vocabulary_)
        self._coef = np.ascontiguousarray(np.asarray(self.model.coef_).T)  # features x classes
        self._intercept = np.asarray(self.model.intercept_)
        # A new cache with each trained model: a retrained model never answers from the old one.
        self._ranking = functools.lru_cache(maxsize=RANKING_CACHE_SIZE)(self._rank)

    async def start(self) -> None:
        if self.model is None:
            await asyncio.to_thread(self.train)

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------ parsing

    def _features(self, cleaned: str) -> csr_matrix:
        """The training-time feature vector, computed by sklearn (reference for tests)."""
        assert self.char_vectorizer is not None and self.word_vectorizer is not None
        return hstack([self.char_vectorizer.transform([cleaned]),
                       self.word_vectorizer.transform([cleaned]) * self.word_weight]).tocsr()

    def fast_features(self, cleaned: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (indices, values) equal to ``_features`` without sklearn's overhead."""
        assert self._char_tfidf is not None and self._word_tfidf is not None
        char_idx, char_val = self._char_tfidf.vector(cleaned)
        word_idx, word_val = self._word_tfidf.vector(cleaned)
        return (np.concatenate([char_idx, word_idx + self._word_offset]),
                np.concatenate([char_val, word_val * self.word_weight]))

    def known(self, cleaned: str) -> bool:
        """Whether the message shares enough with the training data (nlu/guard.py)."""
        assert self.guard is not None
        return self.guard.known(cleaned)

    def scores(self, cleaned: str) -> np.ndarray:
        """Softmax over the classifier's margins (sums to one)."""
        indices, values = self.fast_features(cleaned)
        margins = self._intercept + (values @ self._coef[indices] if len(indices) else 0.0)
        margins = (margins - margins.max()) * self.temperature
        exp = np.exp(margins)
        return np.asarray(exp / exp.sum())

    def parse_sync(self, text: str, *, rules_applied: bool = False) -> ParseResult:
        """Parse without awaiting (used by benchmarks and the evaluation command).

        ``rules_applied``: the caller has checked the commands and extracts the rule
        entities itself (see NluBackend); only the classifier's ranking is returned.
        """
        result = ParseResult(text=text, backend=self.name)
        if not rules_applied:
            command = match_command(text)
            if command:
                result.intents.append(command)
                return result
        if self.model is None:
            self.train()
        assert self.normaliser is not None
        if not rules_applied:
            result.entities = entities.extract(text)
        cleaned = self.normaliser(text)
        if not cleaned or not self.known(cleaned):
            return result
        result.intents = list(self._ranking(cleaned))
        return result

    def _rank(self, cleaned: str) -> tuple[IntentScore, ...]:
        """The ``top_k`` intents for a normalised, known text, best first."""
        probabilities = self.scores(cleaned)
        order = np.argsort(probabilities)[::-1][: self.top_k]
        return tuple(IntentScore(self.labels[i], float(probabilities[i])) for i in order)

    async def parse(self, text: str, *, rules_applied: bool = False) -> ParseResult:
        return self.parse_sync(text, rules_applied=rules_applied)
