"""The embedded NLU backend: jieba words plus character n-grams, and a linear classifier.

Trained from ``nlu/data/nlu.yml`` at start-up (about a tenth of a second, plus the
one-time load of jieba's dictionary). Out-of-scope messages are handled in three layers:

1. a vocabulary guard: a message that shares no character pair and no word with the
   training data (``啊啊啊啊``, ``asdf``) gets no intent at all;
2. the trained ``out_of_scope`` intent (weather, pension amounts, medical insurance,
   chit-chat), which the router answers politely with what the assistant can do;
3. the confidence threshold (``nlu.intent_threshold``) applied by the router; below it the
   router tries FAQ retrieval, then asks a clarifying question.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import jieba
import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from nlu import entities, training_data
from nlu.base import IntentScore, ParseResult
from nlu.rules import match_command, normalise

log = logging.getLogger(__name__)


class TextNormaliser:
    """Punctuation out, lower case, and domain synonyms mapped to one canonical word.

    Only synonyms of plain wording are applied (年审 -> 认证, 退休金 -> 养老金); entity
    synonyms (爸 -> 父亲) are applied to entity values instead, see nlu/entities.py.
    """

    def __init__(self, data: training_data.TrainingData) -> None:
        lookup_values = {value for values in data.lookups.values() for value in values}
        pairs = [(variant.lower(), canonical) for variant, canonical in data.synonyms.items()
                 if variant not in lookup_values and canonical not in lookup_values]
        self.pairs = sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)

    def __call__(self, text: str) -> str:
        cleaned = normalise(text)
        for variant, canonical in self.pairs:
            if variant in cleaned:
                cleaned = cleaned.replace(variant, canonical)
        return cleaned


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
        self.single_chars: set[str] = set()
        self.data: training_data.TrainingData | None = None

    # ------------------------------------------------------------ training

    def load_tokenizer(self) -> None:
        """Load jieba's dictionary once (the slow part of start-up, ~0.8 s)."""
        if self.tokenizer is None:
            logging.getLogger("jieba").setLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            self.tokenizer = tokenizer

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
        self.single_chars = {text for text in texts if len(text) == 1}
        labels = [e.intent for e in data.examples]
        self.char_vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        self.word_vectorizer = TfidfVectorizer(tokenizer=self._words, token_pattern=None,
                                               lowercase=False, sublinear_tf=True)
        features = hstack([self.char_vectorizer.fit_transform(texts),
                           self.word_vectorizer.fit_transform(texts) * self.word_weight]).tocsr()
        self.model = LinearSVC(C=self.c)
        self.model.fit(features, labels)
        self.labels = [str(label) for label in self.model.classes_]

    async def start(self) -> None:
        if self.model is None:
            await asyncio.to_thread(self.train)

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------ parsing

    def _features(self, cleaned: str) -> csr_matrix:
        assert self.char_vectorizer is not None and self.word_vectorizer is not None
        return hstack([self.char_vectorizer.transform([cleaned]),
                       self.word_vectorizer.transform([cleaned]) * self.word_weight]).tocsr()

    def known(self, cleaned: str) -> bool:
        """Whether the message shares enough with the training data to be classified.

        Accepted: one known character pair or one known word of two characters or more;
        or, for short messages, at least two different characters that are all known
        (是啊, 回见); a repeated character only if it is a whole example by itself.
        Rejected: repeated filler (啊啊啊啊, 嗯嗯嗯嗯) and unknown strings.
        """
        assert self.char_vectorizer is not None and self.word_vectorizer is not None
        chars = self.char_vectorizer.vocabulary_
        if any(cleaned[i:i + 2] in chars for i in range(len(cleaned) - 1)):
            return True
        words = self.word_vectorizer.vocabulary_
        if any(len(w) >= 2 and w in words for w in self._words(cleaned)):
            return True
        distinct = set(cleaned)
        if len(distinct) == 1:  # 不不不 yes (不 is an example on its own), 啊啊啊啊 no
            return cleaned[0] in self.single_chars
        return all(ch in chars for ch in distinct)

    def scores(self, cleaned: str) -> np.ndarray:
        """Softmax over the classifier's margins (sums to one)."""
        assert self.model is not None
        margins = self.model.decision_function(self._features(cleaned))[0] * self.temperature
        margins = margins - margins.max()
        exp = np.exp(margins)
        return np.asarray(exp / exp.sum())

    def parse_sync(self, text: str) -> ParseResult:
        """Parse without awaiting (used by benchmarks and the evaluation command)."""
        result = ParseResult(text=text, backend=self.name)
        command = match_command(text)
        if command:
            result.intents.append(command)
            return result
        if self.model is None:
            self.train()
        assert self.normaliser is not None
        result.entities = entities.extract(text)
        cleaned = self.normaliser(text)
        if not cleaned or not self.known(cleaned):
            return result
        probabilities = self.scores(cleaned)
        order = np.argsort(probabilities)[::-1][: self.top_k]
        result.intents = [IntentScore(self.labels[i], float(probabilities[i])) for i in order]
        return result

    async def parse(self, text: str) -> ParseResult:
        return self.parse_sync(text)
