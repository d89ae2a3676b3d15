"""The vocabulary guard: no intent for messages that share nothing with the training data.

A statistical classifier always picks *some* intent, even for 啊啊啊啊. Before asking it,
every backend checks that the message has something in common with ``nlu.yml``:

- accepted: one known character pair (every known word of two or more characters
  contains one); or two different known characters (是啊, 回见); or a repeated character
  that is a whole training example by itself (不不不, 对对);
- rejected: filler (啊啊啊啊, 嗯啊啊啊, 嗯嗯嗯嗯) and strings made of unknown characters.

Tibetan is written in syllables of several code points, so character pairs say little; a
message mostly in Tibetan script is accepted when it is a whole training example (ཡིན།),
has a pair of syllables from the training data (ལག་ཁྱེར), or one of its content syllables
(སྤྲོད, ཁྱིམ, བཀྲ), never for grammar alone (ཀྱི་འདུག་གམ).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from nlu import training_data
from nlu.rules import normalise

_TIBETAN_LETTER = re.compile(r"[\u0F40-\u0FBC]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SYLLABLE_BREAK = re.compile(r"[\u0F0B-\u0F14\s]+")
# Grammar and very common words: they alone never make a Tibetan message understood.
TIBETAN_FUNCTION_WORDS = frozenset(
    "པ བ མ བོ མོ ཀྱི གི གྱི འི ཡི ཀྱིས གིས གྱིས འདུག གམ ངམ དམ ནམ བམ མམ འམ རམ ལམ སམ ཏམ ནས ལ དུ སུ "
    "ཏུ ར རུ ན ཡིན རེད ཡོད མེད མི ཅི ག རེ ཞིག ཅིག དང བྱེད བྱས དགོས འདོད རོགས ཐུབ ཆོག ང ངས ངའི "
    "ཁྱེད རང འདི དེ ཀྱང ཡང གང སོང ཟིན ཚར ལགས སོ ཞུ གནང ཤོད ལྟ".split())


def tibetan_syllables(text: str) -> list[str]:
    """The syllables of a Tibetan text (split on tsheg, shad and spaces)."""
    return [s for s in _SYLLABLE_BREAK.split(text) if s]


def mostly_tibetan(text: str) -> bool:
    return len(_TIBETAN_LETTER.findall(text)) > len(_HAN.findall(text))


class VocabularyGuard:
    """Character and character-pair vocabulary of the (normalised) training examples."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.chars: set[str] = set()
        self.pairs: set[str] = set()
        self.single_chars: set[str] = set()
        self.tibetan_examples: set[str] = set()
        self.tibetan_pairs: set[tuple[str, str]] = set()
        self.tibetan_content: set[str] = set()
        for text in texts:
            if mostly_tibetan(text):
                syllables = tibetan_syllables(text)
                self.tibetan_examples.add("".join(syllables))
                self.tibetan_pairs.update(zip(syllables, syllables[1:], strict=False))
                self.tibetan_content.update(s for s in syllables if s not in TIBETAN_FUNCTION_WORDS)
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
        if mostly_tibetan(cleaned):
            syllables = tibetan_syllables(cleaned)
            return ("".join(syllables) in self.tibetan_examples
                    or any(pair in self.tibetan_pairs and not set(pair) <= TIBETAN_FUNCTION_WORDS
                           for pair in zip(syllables, syllables[1:], strict=False))
                    or any(s in self.tibetan_content for s in syllables))
        if any(cleaned[i:i + 2] in self.pairs for i in range(len(cleaned) - 1)):
            return True
        distinct = set(cleaned)
        if len(distinct) == 1:
            return cleaned[0] in self.single_chars
        return len(cleaned) <= 2 and distinct <= self.chars
