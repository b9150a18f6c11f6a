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
import re
import secrets
import sys
from typing import Any

# Python refuses to convert integers longer than this (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300


class UnreadableJSON(ValueError):
    """The bytes are not a JSON document we can decode (syntax, encoding or nesting)."""


class NestedTooDeeply(UnreadableJSON):
    """The document nests deeper than the decoder reaches (at least `DECODE_DEPTH` levels,
    whatever the caller's own depth)."""


# Python's decoder recurses once per level, against the interpreter's recursion limit,
# which the caller's own frames use up too: unguarded, how deep a document decodes would
# depend on who asks (950 levels decoded under pytest, not under pytest-xdist's deeper
# stack). After a RecursionError, `_reach` lifts the limit so that every caller gets at
# least this many levels, and the document is read again.
DECODE_DEPTH = 1000


class UnrepresentableNumber(str):
    """A JSON number no Python float or int can hold (`1e400`, `1e-400`, `NaN`, 5,000
    digits), kept as the text Batch sent. `storable()` records it as a warning and
    stores that text."""

    __slots__ = ()


def _float(text: str) -> float | UnrepresentableNumber:
    value = float(text)
    if not math.isfinite(value):  # overflow: 1e400
        return UnrepresentableNumber(text)
    if value == 0.0 and any(ch in "123456789" for ch in text.partition("e")[0].partition("E")[0]):
        return UnrepresentableNumber(text)  # underflow: 1e-400 is not 0
    return value


def _int(text: str) -> int | UnrepresentableNumber:
    digits = len(text) - (text[0] == "-")
    return int(text) if digits <= MAX_INT_DIGITS else UnrepresentableNumber(text)


class UnreadableElement(str):
    """An element of an array answer that could not be decoded (nested too deeply): the
    start of its text. Not a campaign; `storable()` keeps it as text."""

    __slots__ = ()


def _reach() -> None:
    """Raise the recursion limit (never lower it) so that `DECODE_DEPTH` levels fit above
    the caller's stack, plus a margin for the parse hooks' own frames. The C scanner
    enters one recursive call per array or object (CPython's Modules/_json.c)."""
    depth, frame = 0, sys._getframe()
    while frame.f_back is not None:
        depth, frame = depth + 1, frame.f_back
    needed = depth + DECODE_DEPTH + 50
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _loads(text: bytes | str) -> Any:
    try:
        return _json_loads(text)
    except RecursionError:  # only then is the caller's depth worth the walk up its stack
        _reach()
        return _json_loads(text)


def _json_loads(text: bytes | str) -> Any:
    # strict=False: a raw control character (a TAB, a newline, U+0000...U+001F) inside a
    # string is read as that character. RFC 8259 section 7 wants them escaped, but the
    # value is unambiguous, and refusing it cost the whole list page (every campaign of
    # the type, every pass) for one name with a TAB in it. U+0000 is then repaired by
    # `storable()` like an escaped one.
    return json.loads(
        text,
        parse_float=_float,
        parse_int=_int,
        parse_constant=UnrepresentableNumber,
        strict=False,
    )


def decode(content: bytes | str) -> Any:
    """The document in `content` (UTF-8 bytes or text); raises `UnreadableJSON`.

    A raw control character inside a string is read as that character (`strict=False`).
    Floats that overflow a double, the literals `NaN`/`Infinity`/`-Infinity` and integers
    of more than `MAX_INT_DIGITS` digits come back as `UnrepresentableNumber`. Bytes that
    are not UTF-8 come back as lone surrogates (U+DC80-U+DCFF) in their strings, which
    `storable()` repairs with a warning, so one bad byte does not cost the whole answer.
    """
    try:
        try:
            return _loads(content)
        except UnicodeDecodeError:
            assert isinstance(content, bytes)
            return _loads(content.decode("utf-8", "surrogateescape"))
    except RecursionError:
        raise NestedTooDeeply("nested too deeply to decode") from None
    except (ValueError, TypeError) as error:  # JSONDecodeError included
        raise UnreadableJSON(str(error)) from None


def decode_array(content: bytes | str) -> Any:
    """Like `decode`, but an array nested too deeply somewhere is read element by element:
    each element that cannot be decoded becomes an `UnreadableElement`, and the others
    are kept. Raises `UnreadableJSON` when even that fails."""
    try:
        return decode(content)
    except NestedTooDeeply:
        text = content.decode("utf-8", "surrogateescape") if isinstance(content, bytes) else content
        elements = _top_level_elements(text)
        if elements is None:
            raise
    decoded: list[Any] = []
    for element in elements:
        try:
            decoded.append(decode(element))
        except UnreadableJSON:
            decoded.append(UnreadableElement(element.strip()[:200]))
    return decoded


# A JSON string that may be an `UnrepresentableNumber` (json.dumps writes one as a string):
# the text of a number, NaN or Infinity. A string of Batch's that looks like one only costs
# a walk of the document.
NUMBER_STRING = re.compile(r'"(?:-?(?:\d[\d.eE+-]*|Infinity)|NaN)"')


def encode(document: Any, *, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """`document` as JSON text, every `UnrepresentableNumber` written as the number Batch
    sent (`1e400`, `NaN`, 5,000 digits), not as a string: what goes back to Batch (an
    in-app update's body) holds the campaign's values as Batch holds them. json.dumps
    wrote them as strings, so an update of a campaign's name turned a number of its
    targeting query that Batch had sent as `1e400` into the string "1e400" (a review's
    find). Compact (no spaces) unless `indent` is given; `ensure_ascii` as json.dumps's
    (ASCII escapes keep a lone surrogate writable). Raises ValueError for a float NaN or
    infinity (only an `UnrepresentableNumber` may be one) and TypeError for a value that
    is not JSON."""
    separators = (",", ":") if indent is None else (",", ": ")

    def dumps(value: Any) -> str:
        return json.dumps(
            value, allow_nan=False, indent=indent, ensure_ascii=ensure_ascii, separators=separators
        )

    text = dumps(document)
    if NUMBER_STRING.search(text) is None:
        return text  # no string that may be such a number: json.dumps's text (C) as is
    numbers: list[str] = []
    marker = f"unrepresentable-number-{secrets.token_hex(16)}-"  # no document holds it

    def mark(value: Any) -> Any:
        if isinstance(value, UnrepresentableNumber):
            numbers.append(str(value))
            return f"{marker}{len(numbers) - 1}"
        if isinstance(value, dict):
            return {key: mark(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mark(item) for item in value]
        return value

    text = dumps(mark(document))
    for index, number in enumerate(numbers):
        text = text.replace(f'"{marker}{index}"', number, 1)
    return text


def _top_level_elements(text: str) -> list[str] | None:
    """The texts of a JSON array's elements, found without recursion; None if `text` is
    not one array."""
    stripped = text.strip()
    if not stripped.startswith("[") or not stripped.endswith("]"):
        return None
    body = stripped[1:-1]
    elements: list[str] = []
    depth, start, in_string, escaped = 0, 0, False, False
    for index, char in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            elements.append(body[start:index])
            start = index + 1
    if depth != 0 or in_string:
        return None
    if body[start:].strip():
        elements.append(body[start:])
    return elements
