"""Spotting card numbers in free text, so paykit never stores one an application passed by mistake.

Pure functions without imports from the rest of paykit: the models validate with
them, and :mod:`paykit._decisions` re-exports them for the service.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

__all__ = ["contains_card_number"]

_MIN_DIGITS: Final = 13
_MAX_DIGITS: Final = 19
# Digit groups joined by one space or dash: "4111 1111 1111 1111", "4111-1111-1111-1111".
_RUN: Final = re.compile(r"[0-9]+(?:[ -][0-9]+)*")


def _luhn_sums(digits: str) -> tuple[list[int], list[int]]:
    """Prefix sums of Luhn terms, doubling even (first list) or odd (second) positions.

    The Luhn sum of ``digits[i:j]`` doubles the positions ``m`` with ``m % 2 == j % 2``,
    so it is ``sums[j % 2][j] - sums[j % 2][i]``: every span is checked in O(1).
    """
    even, odd = [0], [0]
    for position, char in enumerate(digits):
        value = ord(char) - 48
        doubled = value * 2 - 9 if value > 4 else value * 2
        even.append(even[-1] + (doubled if position % 2 == 0 else value))
        odd.append(odd[-1] + (doubled if position % 2 else value))
    return even, odd


def contains_card_number(text: str) -> bool:
    """Whether ``text`` holds what looks like a payment card number.

    A card number here is 13 to 19 ASCII digits, not starting with 0, written in
    one piece or in groups separated by single spaces or dashes, that passes the
    Luhn check. Within a longer run of groups, every span of whole groups is
    checked (``"4111 1111 1111 1111 12/29"`` is caught); a single unbroken run of
    more than 19 digits is an id, not a card. Luhn-invalid numbers, and numbers
    of fewer than 13 digits (order, invoice and phone numbers), are not card numbers.

    .. versionadded:: 0.1.0
    """
    for match in _RUN.finditer(text):
        run = match.group()
        digits = run.replace(" ", "").replace("-", "")
        if len(digits) < _MIN_DIGITS:
            continue
        # Where whole groups start and end, as offsets into ``digits``.
        bounds = [0]
        for group in re.split(r"[ -]", run):
            bounds.append(bounds[-1] + len(group))
        sums = _luhn_sums(digits)
        for index, start in enumerate(bounds[:-1]):
            if digits[start] == "0":
                continue
            low = bisect.bisect_left(bounds, start + _MIN_DIGITS, index + 1)
            high = bisect.bisect_right(bounds, start + _MAX_DIGITS, low)
            for end in bounds[low:high]:
                table = sums[end % 2]
                if (table[end] - table[start]) % 10 == 0:
                    return True
    return False
