"""The resident ID number's check digit (GB 11643): used by records and NLU alike."""

from __future__ import annotations

import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


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
