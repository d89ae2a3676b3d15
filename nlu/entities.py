"""Rule-based entity extraction shared by every backend.

- ``id_number``: 18-digit resident ID, validated with the GB 11643-1999 checksum; an
  18-character candidate with a bad checksum is returned as ``id_number_invalid`` so the
  user can be told exactly that.
- ``phone``: mainland mobile numbers.
"""

from __future__ import annotations

import re

from nlu.base import Entity

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
_FULLWIDTH = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789xX")


def id_checksum_ok(id_number: str) -> bool:
    """True if ``id_number`` is 18 characters with a valid GB 11643 check digit."""
    if not re.fullmatch(r"\d{17}[\dXx]", id_number):
        return False
    total = sum(int(d) * w for d, w in zip(id_number[:17], _WEIGHTS, strict=True))
    return _CHECK[total % 11] == id_number[17].upper()


def with_check_digit(first17: str) -> str:
    """Complete 17 digits with the right check digit (for demo and test data)."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return first17 + _CHECK[total % 11]


def normalise_digits(text: str) -> str:
    """Full-width digits to ASCII, spaces inside digit runs removed."""
    text = text.translate(_FULLWIDTH)
    return re.sub(r"(?<=\d)[\s\-]+(?=[\dXx])", "", text)


def extract(text: str) -> list[Entity]:
    """ID numbers (valid or not) and phone numbers in ``text``."""
    cleaned = normalise_digits(text)
    entities: list[Entity] = []
    for match in _ID_CANDIDATE.finditer(cleaned):
        value = match.group(1).upper()
        kind = "id_number" if id_checksum_ok(value) else "id_number_invalid"
        entities.append(Entity(kind, value, match.start(1), match.end(1)))
    for match in _PHONE.finditer(cleaned):
        entities.append(Entity("phone", match.group(1), match.start(1), match.end(1)))
    return entities
