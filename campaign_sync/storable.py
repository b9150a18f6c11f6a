"""The one boundary that makes a value storable in PostgreSQL and SQLite alike.

Every value Batch sent passes through `storable()` before it reaches a table, typed
column or JSON, at any depth, keys included. It repairs exactly what one of the two
databases refuses, and reports each repair as a `FieldWarning` naming the field:

- U+0000 in a string or key (PostgreSQL text and jsonb refuse it): U+FFFD in its place;
- a lone surrogate (`"\\ud800"`, not valid Unicode; no UTF-8 form): U+FFFD;
- a number no float or int can hold (`1e400`, `NaN`, 5,000 digits; jsonb refuses
  `Infinity`): the text of the number, `"1e400"`; typed columns get NULL;
- nesting deeper than `MAX_DEPTH` levels (PostgreSQL's parser stack, Python's
  recursion): that part as its JSON text.

Nothing else in the code repeats these rules. Pure: no I/O, never raises on data.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from campaign_sync.jsondoc import NUMBER_STRING, UnrepresentableNumber

MAX_DEPTH = 100  # objects and arrays nested deeper are stored as JSON text (documented)
ENCODE_RECURSION_LIMIT = 4000  # the decoder stops near 1,000 levels; this is room enough
RAW_VALUE_LIMIT = 2000  # characters of a bad value kept in `sync_warnings.raw_value`

_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class FieldWarning:
    """A value kept out of a typed column or repaired for storage: one `sync_warnings` row.

    `field` is the path in Batch's document (`name`, `messages[0].title`); `raw_value`
    is what Batch sent (cut to `RAW_VALUE_LIMIT` characters), None when not worth keeping.
    """

    field: str
    raw_value: str | None
    message: str


def raw_text(value: Any) -> str | None:
    """A bad value as text for `sync_warnings.raw_value`, cut to `RAW_VALUE_LIMIT`."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            text = repr(value)
    return text[:RAW_VALUE_LIMIT]


def _storable_text(text: str) -> tuple[str, str | None]:
    """(text with U+0000 and lone surrogates replaced by U+FFFD, what was wrong or None)."""
    if _UNSTORABLE_CHARACTER.search(text) is None:
        return text, None
    problems = []
    if "\x00" in text:
        problems.append("U+0000 (NUL), which PostgreSQL cannot store")
    if re.search("[\udc80-\udcff]", text):  # how `jsondoc` reads bytes that are not UTF-8
        problems.append("bytes that are not UTF-8 (or lone surrogates U+DC80-U+DCFF)")
    if re.search("[\ud800-\udc7f\udd00-\udfff]", text):
        problems.append("a lone surrogate, which is not valid Unicode")
    clean = _UNSTORABLE_CHARACTER.sub("\ufffd", text)
    return clean, f"contains {' and '.join(problems)}; replaced by U+FFFD"


@contextlib.contextmanager
def _recursion_room() -> Iterator[None]:
    """Room to encode what the decoder accepted (it nests deeper than the encoder can from
    inside this walk): the limit is raised for the call only."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, ENCODE_RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _unique_key(name: str, taken: dict[str, Any], document: dict[Any, Any]) -> str:
    """`name` (a repaired key), or `name (2)`, `name (3)`...: the first that neither a key
    already stored nor another key of the object (`document`) holds. Without it,
    {"k\\u0000": 1, "k\\ufffd": 2} kept only one of the two values."""
    candidate, number = name, 1
    while candidate in taken or candidate in document:
        number += 1
        candidate = f"{name} ({number})"
    return candidate


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walk:
    def __init__(self) -> None:
        self.warnings: list[FieldWarning] = []

    def warn(self, path: str, raw: Any, message: str) -> None:
        self.warnings.append(FieldWarning(path or "(document)", raw_text(raw), message))

    def value(self, value: Any, path: str, depth: int) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, UnrepresentableNumber):  # stored as its text; typed reads: NULL
            self.warn(
                path,
                str(value),
                f"the number {value[:40]} fits no 64-bit float or integer; JSON keeps it as "
                "the text of the number, typed columns get NULL",
            )
            return value
        if isinstance(value, str):
            clean, problem = _storable_text(value)
            if problem:
                self.warn(path, value, problem)
            return clean
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return self.value(UnrepresentableNumber(text), path, depth)
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return self._too_deep(value, path)
            if isinstance(value, list):
                items = [
                    self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)
                ]
                return value if all(a is b for a, b in zip(items, value, strict=True)) else items
            return self._object(value, path, depth)
        self.warn(path, repr(value), f"{type(value).__name__} is not a JSON value; kept as text")
        return self.value(str(value), path, depth)

    def _object(self, document: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
        changed = False
        clean: dict[str, Any] = {}
        for key, item in document.items():
            name = key if isinstance(key, str) else str(key)
            name, problem = _storable_text(name)
            if problem:
                repaired = name
                name = _unique_key(name, clean, document)
                if name != repaired:  # two keys alike once repaired: neither value lost
                    problem += (
                        f"; another key reads the same once repaired, so this one is {name!r}"
                    )
                self.warn(f"{_join(path, name)} (key)", key, f"key {problem}")
            stored = self.value(item, _join(path, name), depth + 1)
            changed = changed or name is not key or stored is not item
            clean[name] = stored
        return clean if changed else document

    def _too_deep(self, value: Any, path: str) -> Any:
        try:
            with _recursion_room():
                text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)
        except (ValueError, RecursionError):
            self.warn(path, None, f"nested deeper than {MAX_DEPTH} levels and unreadable; "
                      "stored as null")  # fmt: skip
            return None
        self.warn(path, None, f"nested deeper than {MAX_DEPTH} levels; this part is stored "
                  "as its JSON text")  # fmt: skip
        return _storable_text(text)[0]


def storable(value: Any, field: str = "") -> tuple[Any, list[FieldWarning]]:
    """`value` made storable in both databases, and one warning per repair.

    `value` is anything JSON decodes to (objects, arrays, text, numbers, booleans, None,
    `UnrepresentableNumber`); `field` prefixes the warnings' paths. Returns the same
    object when nothing needed repair. Never raises.
    """
    if _plain_text(value) is not None:
        return value, []
    walk = _Walk()
    return walk.value(value, field, 0), walk.warnings


class JSONText(str):
    """A document's canonical JSON text: keys sorted, no spaces, characters as they are
    (not `\\u` escaped). What `transform.stable_hash` hashes, and what a jsonb column can
    take as it is, so that a document is serialised once (docs/performance.md)."""

    __slots__ = ()


# Made once: json.dumps with any option builds a new encoder per call (its own code).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)
_CANONICAL_CHECK = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    check_circular=False,
)  # fmt: skip


def canonical_json(value: Any) -> JSONText:
    """`value`'s `JSONText`; anything not JSON is written as `str()` of it. Raises
    ValueError or RecursionError on what even that cannot write (circular, too deep)."""
    return JSONText(_CANONICAL.encode(value))


@dataclass(frozen=True)
class StorableDocument:
    """A document as received (`received`), made storable (`value`, `warnings`: as
    `storable()` returns them), and `value`'s `JSONText` when it needed no repair (then
    `value is received`), else None."""

    received: Any
    value: Any
    warnings: list[FieldWarning]
    text: JSONText | None


def storable_document(document: Any) -> StorableDocument:
    """`storable(document)`, keeping the JSON text its check wrote (one serialisation of
    the document for the check, its hash and the database). Never raises."""
    text = _plain_text(document)
    if text is not None:
        return StorableDocument(document, document, [], text)
    walk = _Walk()
    return StorableDocument(document, walk.value(document, "", 0), walk.warnings, None)


def _plain_text(value: Any) -> JSONText | None:
    """`value`'s `JSONText` when `value` certainly needs no repair, told from that text
    (the encoder is C, the walk Python: the walk cost 5x more,
    docs/performance.md): no NaN or Infinity, nothing but JSON types (the
    encoder refuses the rest), no U+0000 (which it escapes), no lone surrogate, no string
    that may be an `UnrepresentableNumber`, and fewer objects and arrays than
    `MAX_DEPTH`, so no nesting that deep. None means only: let the walk decide."""
    try:
        text = _CANONICAL_CHECK.encode(value)
    except (ValueError, TypeError, RecursionError):  # TypeError: not JSON, or mixed key types
        return None
    if "\\u0000" in text or text.count("{") + text.count("[") >= MAX_DEPTH:
        return None
    if not text.isascii() and _UNSTORABLE_CHARACTER.search(text) is not None:
        return None
    return None if NUMBER_STRING.search(text) is not None else JSONText(text)


def merge_warnings(first: list[FieldWarning], more: list[FieldWarning]) -> list[FieldWarning]:
    """`first` plus the warnings of `more` about fields `first` does not mention yet:
    one warning per field, the first one found (the most precise) kept."""
    seen = {warning.field for warning in first}
    return first + [warning for warning in more if warning.field not in seen]
