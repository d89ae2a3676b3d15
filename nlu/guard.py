"""The vocabulary guard: no intent for messages that share nothing with the training data.

A statistical classifier always picks *some* intent, even for 啊啊啊啊. Before asking it,
every backend checks that the message has something in common with ``nlu.yml``:

- accepted: one known character pair (every known word of two or more characters
  contains one); or two different known characters (是啊, 回见); or a repeated character
  that is a whole training example by itself (不不不, 对对);
- rejected: filler (啊啊啊啊, 嗯啊啊啊, 嗯嗯嗯嗯) and strings made of unknown characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nlu import training_data
from nlu.rules import normalise


class VocabularyGuard:
    """Character and character-pair vocabulary of the (normalised) training examples."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.chars: set[str] = set()
        self.pairs: set[str] = set()
        self.single_chars: set[str] = set()
        for text in texts:
            self.chars.update(text)
            self.pairs.update(text[i:i + 2] for i in range(len(text) - 1))
            if len(text) == 1:
                self.single_chars.add(text)

    @classmethod
    def from_training_data(cls, data: training_data.TrainingData,
                           normaliser: Callable[[str], str] = normalise) -> VocabularyGuard:
        return cls(normaliser(example.text) for example in data.examples)

    def known(self, cleaned: str) -> bool:
        """Whether the normalised message may be classified at all."""
        if not cleaned:
            return False
        if any(cleaned[i:i + 2] in self.pairs for i in range(len(cleaned) - 1)):
            return True
        distinct = set(cleaned)
        if len(distinct) == 1:
            return cleaned[0] in self.single_chars
        return len(cleaned) <= 2 and distinct <= self.chars
