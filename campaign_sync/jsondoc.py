"""Decoding Batch's JSON answers without losing or refusing any number, and without crashing.

Python's `json` reads `1e400` as infinity, reads the non-standard `NaN`/`Infinity`
literals, refuses integers of more than 4,300 digits, and raises `RecursionError` on
deep nesting. Here every number Python cannot carry exactly keeps its text as an
`UnrepresentableNumber` (a `str`), and every failure to decode is one `UnreadableJSON`.
A leaf module: the Batch client and the pure transform both decode through it.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Python refuses to convert integers longer than this (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300


class UnreadableJSON(ValueError):
    """The bytes are not a JSON document we can decode (syntax, encoding or nesting)."""


class NestedTooDeeply(UnreadableJSON):
    """The document nests deeper than Python's decoder recurses (about 1,000 levels)."""


class UnrepresentableNumber(str):
    """A JSON number no Python float or int can hold (`1e400`, `NaN`, 5,000 digits), kept
    as the text Batch sent. `storable()` records it as a warning and stores that text."""

    __slots__ = ()


def _float(text: str) -> float | UnrepresentableNumber:
    value = float(text)
    return value if math.isfinite(value) else UnrepresentableNumber(text)


def _int(text: str) -> int | UnrepresentableNumber:
    digits = len(text) - (text[0] == "-")
    return int(text) if digits <= MAX_INT_DIGITS else UnrepresentableNumber(text)


def decode(content: bytes | str) -> Any:
    """The document in `content` (UTF-8 bytes or text); raises `UnreadableJSON`.

    Floats that overflow a double, the literals `NaN`/`Infinity`/`-Infinity` and integers
    of more than `MAX_INT_DIGITS` digits come back as `UnrepresentableNumber`.
    """
    try:
        return json.loads(
            content, parse_float=_float, parse_int=_int, parse_constant=UnrepresentableNumber
        )
    except RecursionError:
        raise NestedTooDeeply("nested too deeply to decode") from None
    except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError included
        raise UnreadableJSON(str(error)) from None
